// The client's knowledge, free of the DOM and of the network: conversations
// and their messages in ID order without duplicates, the outbox of sends
// waiting for their ack (keyed by client_id), read marks, typing, presence,
// the conversation list's order and the catch-up plan after a reconnect.
// ChatClient (client.ts) feeds it frames; a UI reads it.
import { applyPageChange, applyToRecord, indexOfId, newerCopy, settlePending } from './changes.js';
import { compareIds, isId, maxId, mergeMessages } from './ids.js';
const CLIENT_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** A fresh client_id: printable ASCII, well under the 64-character limit. */
export function newClientId(now = Date.now, random = Math.random) {
    let r = '';
    for (let i = 0; i < 12; i++)
        r += CLIENT_ID_ALPHABET[Math.floor(random() * CLIENT_ID_ALPHABET.length)];
    return `w${now().toString(36)}-${r}`;
}
/** Whether a message body is acceptable to the server: 1–4096 code points, not only white space. */
export function validBody(body) {
    if (typeof body !== 'string')
        return false;
    const n = [...body].length;
    return n >= 1 && n <= 4096 && /\S/u.test(body);
}
export const TYPING_SHOW_MS = 5000;
export const TYPING_SEND_EVERY_MS = 3000;
/** Saved unsent messages older than this are not resent without asking (the server's dedup window is at least 10 minutes). */
export const OUTBOX_STALE_MS = 5 * 60 * 1000;
/** Send errors that are retried without asking, and how many tries in all. */
export const RETRYABLE_SEND_ERRORS = new Set(['rate_limited', 'unavailable', 'timeout']);
export const AUTO_SEND_TRIES = 4;
/** Catch-up pages to fetch for one conversation before giving up on the gap and reloading its newest page. */
export const MAX_CATCHUP_PAGES = 5;
/** Sends `typing` at most once per interval while the user keeps typing. */
export class Throttle {
    interval;
    now;
    last;
    constructor(intervalMs = TYPING_SEND_EVERY_MS, now = Date.now) {
        this.interval = intervalMs;
        this.now = now;
        this.last = -Infinity;
    }
    /** Whether the caller may act now; if so, the interval starts again. */
    take() {
        const t = this.now();
        if (t - this.last < this.interval)
            return false;
        this.last = t;
        return true;
    }
    reset() {
        this.last = -Infinity;
    }
}
export function displayName(user) {
    if (!user)
        return 'Unknown';
    return user.display_name || user.username || 'Unknown';
}
/**
 * All the client's knowledge: who is signed in, users, conversations and
 * their messages, and the outbox. Methods change it; the UI reads it.
 */
export class ChatState {
    now;
    random;
    /**
     * Whether every conversation is followed from the first hello on (bots,
     * integrations, tests), rather than only those whose newest page was
     * loaded (a UI that loads history when a conversation is opened).
     */
    followAll;
    me = null;
    /** User ID -> User with `online`. */
    users = new Map();
    convs = new Map();
    /** Conversation IDs, most recent activity first. */
    order = [];
    /** client_id -> outbox entry. */
    outbox = new Map();
    connected = false;
    hellos = 0;
    constructor({ now = Date.now, random = Math.random, followAll = false } = {}) {
        this.now = now;
        this.random = random;
        this.followAll = followAll;
    }
    #blank(id) {
        return {
            id,
            kind: 'direct',
            title: '',
            members: [],
            lastMessage: null,
            unread: 0,
            messages: [],
            // Whether the newest page of history was ever loaded; until then the
            // list holds only what arrived live (a contiguous tail).
            loaded: false,
            // Cursor for the next older page: undefined before any page, null when
            // nothing older remains.
            nextBefore: undefined,
            tracked: false,
            reads: new Map(),
            typing: new Map(),
            changeCursor: null,
            changesBehind: null,
            pendingChanges: [],
        };
    }
    #rememberUser(u) {
        if (!u || !u.id)
            return;
        const old = this.users.get(u.id) || {};
        const merged = { ...old, ...u };
        if (typeof u.online !== 'boolean')
            merged.online = old.online ?? false;
        this.users.set(u.id, merged);
    }
    user(id) {
        return this.users.get(id) || null;
    }
    conv(id) {
        return this.convs.get(id) || null;
    }
    /** Adds or refreshes a conversation from a server Conversation object. */
    upsertConversation(c, { front = false, keepCounts = false } = {}) {
        if (!c || !c.id)
            return null;
        const found = this.convs.get(c.id);
        const isNew = !found;
        const rec = found ?? this.#blank(c.id);
        if (isNew)
            this.convs.set(c.id, rec);
        if (c.kind)
            rec.kind = c.kind;
        if (typeof c.member_count === 'number')
            rec.memberCount = c.member_count;
        if (typeof c.title === 'string')
            rec.title = c.title;
        if (Array.isArray(c.members)) {
            for (const m of c.members) {
                this.#rememberUser(m);
                // Servers may add a member's read mark; use it when they do.
                const x = m;
                const mark = x.last_read_id ?? x.last_read ?? x.read_id;
                if (isId(mark))
                    this.#moveMark(rec, m.id, mark);
            }
            rec.members = c.members.map((m) => m.id);
            rec.memberCount = rec.members.length;
        }
        if (c.last_message && isId(c.last_message.id))
            this.#noteLast(rec, c.last_message);
        if (typeof c.unread === 'number' && (isNew || !keepCounts))
            rec.unread = c.unread;
        if (isNew) {
            if (front)
                this.order.unshift(c.id);
            else
                this.order.push(c.id);
        }
        else if (front) {
            this.#toFront(c.id);
        }
        return rec;
    }
    #noteLast(rec, m) {
        const last = rec.lastMessage;
        if (!last)
            rec.lastMessage = m;
        else {
            const c = compareIds(m.id, last.id);
            if (c > 0 || (c === 0 && newerCopy(last, m) === m))
                rec.lastMessage = m;
        }
    }
    #toFront(id) {
        const i = this.order.indexOf(id);
        if (i > 0) {
            this.order.splice(i, 1);
            this.order.unshift(id);
        }
        else if (i < 0) {
            this.order.unshift(id);
        }
    }
    /**
     * Applies a `hello` frame. Returns the catch-up plan: for every
     * conversation with a known message, the ID after which history must be
     * fetched to fill whatever was missed while disconnected. The plan is
     * computed here, before any later frame is applied, because a live
     * message arriving next would otherwise move "newest known" past the gap.
     */
    applyHello(hello) {
        this.hellos++;
        this.connected = true;
        const plan = [];
        if (this.me && hello.user && this.me.id !== hello.user.id) {
            // A different account: nothing known applies.
            this.convs.clear();
            this.order = [];
            this.outbox.clear();
            this.users.clear();
        }
        this.me = hello.user || this.me;
        this.#rememberUser(this.me);
        for (const c of this.convs.values()) {
            const after = this.newestKnownId(c.id);
            let p = null;
            if (after && c.loaded)
                p = { conversation: c.id, after };
            else if (c.tracked)
                p = { conversation: c.id, after: after ?? '0' };
            if (!p)
                continue;
            // Changes share the messages' ID sequence, so the same cursor (or a
            // later change's) says where the changes missed begin; an earlier
            // catch-up that did not finish begins before it. Once the history
            // catch-up is done, `changes` are paged from changesBehind.
            const from = maxId(after, c.changeCursor);
            if (from)
                c.changesBehind = c.changesBehind == null ? from : compareIds(c.changesBehind, from) < 0 ? c.changesBehind : from;
            plan.push(p);
        }
        const order = [];
        for (const c of hello.conversations || []) {
            const rec = this.upsertConversation(c);
            if (rec)
                order.push(rec.id);
        }
        // The server's order is the truth; conversations it did not list (beyond
        // its first 1,000) keep their place after those it did.
        const listed = new Set(order);
        this.order = order.concat(this.order.filter((id) => !listed.has(id)));
        for (const rec of this.convs.values()) {
            // Typing indicators do not survive a reconnect.
            rec.typing.clear();
            // A conversation never opened needs no catch-up: its newest page will
            // be loaded when it is. One with a live tail but no loaded page would
            // have a hole under the new last_message, so drop the tail.
            if (!rec.loaded && !rec.tracked)
                rec.messages = rec.messages.filter((m) => rec.lastMessage && compareIds(m.id, rec.lastMessage.id) === 0);
        }
        if (this.followAll) {
            // Following everything: a conversation first seen in this hello is
            // caught up from its last message (or from the start) at once, which
            // also covers a message stored while the connection was being set up.
            const planned = new Set(plan.map((p) => p.conversation));
            for (const rec of this.convs.values()) {
                if (planned.has(rec.id) || rec.loaded)
                    continue;
                rec.tracked = true;
                plan.push({ conversation: rec.id, after: this.newestKnownId(rec.id) ?? '0' });
            }
        }
        return plan;
    }
    applyDisconnect() {
        this.connected = false;
        for (const rec of this.convs.values())
            rec.typing.clear();
        for (const e of this.outbox.values()) {
            // Unanswered sends are resent with the same client_id after the next
            // hello; the server deduplicates them.
            if (e.status === 'sending')
                e.status = 'queued';
            e.requestId = null;
        }
    }
    /** The newest message ID known in a conversation, from its history or its last_message. */
    newestKnownId(convId) {
        const rec = this.convs.get(convId);
        if (!rec)
            return null;
        let id = rec.lastMessage ? rec.lastMessage.id : null;
        if (rec.messages.length)
            id = maxId(id, rec.messages[rec.messages.length - 1].id);
        return id;
    }
    oldestLoadedId(convId) {
        const rec = this.convs.get(convId);
        return rec && rec.messages.length ? rec.messages[0].id : null;
    }
    /**
     * Adds one message (a live `message`, an `ack`'s message). Returns
     * {conversation, added, unknownConversation}. `viewing` says whether the
     * user is looking at that conversation right now, in which case a message
     * from someone else does not count as unread.
     */
    addMessage(m, { viewing = false } = {}) {
        if (!m || !isId(m.id) || !m.conversation)
            return { added: false };
        let rec = this.convs.get(m.conversation);
        let unknownConversation = false;
        if (!rec) {
            // A `conversation` frame was missed or is still on its way.
            unknownConversation = true;
            rec = this.upsertConversation({ id: m.conversation, kind: 'group', title: '' }, { front: true });
            rec.tracked = this.followAll;
        }
        const wasNewest = this.newestKnownId(rec.id);
        const r = mergeMessages(rec.messages, [m], newerCopy);
        rec.messages = r.list;
        if (r.added)
            settlePending(rec, this.me?.id ?? null);
        this.#settleOutbox(m);
        if (r.added) {
            const isNewer = !wasNewest || compareIds(m.id, wasNewest) > 0;
            this.#noteLast(rec, m);
            if (isNewer)
                this.#toFront(rec.id);
            if (this.me && m.sender === this.me.id) {
                // Sending implies having read everything before it.
                this.#moveMark(rec, this.me.id, m.id);
                rec.unread = 0;
            }
            else if (isNewer && !viewing && !this.#readBy(rec, this.me?.id, m.id)) {
                rec.unread++;
            }
            if (m.sender)
                rec.typing.delete(m.sender);
        }
        this.#impliedRead(rec, m);
        return { conversation: rec, added: r.added > 0, unknownConversation };
    }
    /**
     * Whoever wrote a message has read everything before it. The protocol
     * tells read marks only as they move (no mark comes with a conversation),
     * so this keeps "Seen" right after a reload whenever the other side has
     * written since.
     */
    #impliedRead(rec, m) {
        if (m.sender && (!this.me || m.sender !== this.me.id))
            this.#moveMark(rec, m.sender, m.id);
    }
    #readBy(rec, userId, msgId) {
        if (userId == null)
            return false;
        const mark = rec.reads.get(userId);
        return mark != null && compareIds(mark, msgId) >= 0;
    }
    #settleOutbox(m) {
        if (!this.me || m.sender !== this.me.id || !m.client_id)
            return;
        const e = this.outbox.get(m.client_id);
        if (e && e.conversation === m.conversation)
            this.outbox.delete(m.client_id);
    }
    /** Applies a page of older history (newest first, as the server sends it). */
    applyHistoryBefore(convId, messages, nextBefore) {
        const rec = this.convs.get(convId);
        if (!rec)
            return null;
        const r = mergeMessages(rec.messages, messages || [], newerCopy);
        rec.messages = r.list;
        if (r.added)
            settlePending(rec, this.me?.id ?? null);
        for (const m of messages || []) {
            this.#settleOutbox(m);
            this.#noteLast(rec, m);
            if (isId(m.id))
                this.#impliedRead(rec, m);
        }
        rec.loaded = true;
        // The cursor only moves back: a late answer to an earlier, newer page
        // must not claim that older pages remain when one already said none do.
        if (nextBefore == null)
            rec.nextBefore = null;
        else if (rec.nextBefore === undefined || (rec.nextBefore !== null && compareIds(nextBefore, rec.nextBefore) < 0))
            rec.nextBefore = nextBefore;
        return { added: r.added };
    }
    /** Whether older history may remain to be loaded. */
    hasOlder(convId) {
        const rec = this.convs.get(convId);
        return !!rec && rec.nextBefore !== null;
    }
    /**
     * Applies a catch-up page (oldest first). Returns what to do next:
     * {next: ID} to fetch the following page, {done: true}, or {reload: true}
     * when the gap was too long to page through: the conversation's messages
     * were dropped and its newest page must be loaded again (never for a
     * followed conversation: those page on to the end, maxPages aside).
     */
    applyHistoryAfter(convId, messages, nextAfter, page = 1, { viewing = false, maxPages } = {}) {
        const rec = this.convs.get(convId);
        if (!rec)
            return { done: true };
        let added = 0;
        for (const m of messages || [])
            if (this.addMessage(m, { viewing }).added)
                added++;
        if (nextAfter == null)
            return { done: true, added };
        if (page >= (maxPages ?? (rec.tracked ? Infinity : MAX_CATCHUP_PAGES))) {
            rec.messages = [];
            rec.loaded = false;
            rec.nextBefore = undefined;
            // Nothing held is left to patch: the reloaded page is current.
            rec.changesBehind = null;
            rec.pendingChanges = [];
            return { reload: true, added };
        }
        return { next: nextAfter, added };
    }
    #moveMark(rec, userId, msgId) {
        const old = rec.reads.get(userId);
        if (old == null || compareIds(msgId, old) > 0) {
            rec.reads.set(userId, msgId);
            return true;
        }
        return false;
    }
    /** Applies a `read` frame; read marks only move forward. */
    applyRead(convId, userId, msgId) {
        const rec = this.convs.get(convId);
        if (!rec || !isId(msgId))
            return false;
        const moved = this.#moveMark(rec, userId, msgId);
        if (this.me && userId === this.me.id)
            this.#recountUnread(rec);
        return moved;
    }
    #recountUnread(rec) {
        if (!this.me)
            return;
        const mark = rec.reads.get(this.me.id);
        if (mark == null)
            return;
        if (rec.lastMessage && compareIds(mark, rec.lastMessage.id) >= 0) {
            rec.unread = 0;
            return;
        }
        if (!rec.loaded)
            return;
        let n = 0;
        for (const m of rec.messages)
            if (m.sender !== this.me.id && compareIds(m.id, mark) > 0)
                n++;
        rec.unread = n;
    }
    /**
     * The message ID to send in a `read` frame for a conversation being
     * looked at, or null when the reader's mark is already there. Marks the
     * conversation read locally at once.
     */
    markRead(convId) {
        const rec = this.convs.get(convId);
        if (!rec || !this.me)
            return null;
        const newest = rec.messages.length ? rec.messages[rec.messages.length - 1].id : rec.lastMessage && rec.lastMessage.id;
        if (!newest)
            return null;
        if (!this.#moveMark(rec, this.me.id, newest)) {
            if (rec.unread)
                rec.unread = 0;
            return null;
        }
        rec.unread = 0;
        return newest;
    }
    applyTyping(convId, userId) {
        const rec = this.convs.get(convId);
        if (!rec || (this.me && userId === this.me.id))
            return false;
        rec.typing.set(userId, this.now() + TYPING_SHOW_MS);
        return true;
    }
    /** Users typing in a conversation now, forgetting expired ones. */
    typingUsers(convId) {
        const rec = this.convs.get(convId);
        if (!rec)
            return [];
        const t = this.now();
        const out = [];
        for (const [uid, until] of rec.typing) {
            if (until <= t)
                rec.typing.delete(uid);
            else
                out.push(uid);
        }
        return out;
    }
    applyPresence(userId, online) {
        const u = this.users.get(userId);
        if (u)
            u.online = !!online;
        else
            this.users.set(userId, { id: userId, online: !!online });
    }
    /** The other member of a direct conversation. */
    peer(convId) {
        const rec = this.convs.get(convId);
        if (!rec || !this.me)
            return null;
        const me = this.me.id;
        const other = rec.members.find((id) => id !== me);
        return other ? this.users.get(other) || { id: other } : null;
    }
    title(convId) {
        const rec = this.convs.get(convId);
        if (!rec)
            return '';
        if (rec.kind === 'direct') {
            const p = this.peer(convId);
            return rec.title || (p ? displayName(p) : 'Direct');
        }
        if (rec.title)
            return rec.title;
        const names = rec.members.filter((id) => !this.me || id !== this.me.id).map((id) => displayName(this.users.get(id)));
        return names.join(', ') || 'Group';
    }
    /** Whether anyone else in the conversation is online (for the list's dot). */
    anyoneOnline(convId) {
        const rec = this.convs.get(convId);
        if (!rec || !this.me)
            return false;
        const me = this.me.id;
        return rec.members.some((id) => id !== me && !!this.users.get(id)?.online);
    }
    /** Finds the direct conversation with a username, if known. */
    directWith(username) {
        const name = String(username).toLowerCase();
        for (const rec of this.convs.values()) {
            if (rec.kind !== 'direct')
                continue;
            const p = this.peer(rec.id);
            if (p && 'username' in p && p.username === name)
                return rec;
        }
        return null;
    }
    /** Queues a new message (a reply when replyTo is given); returns the outbox entry (status 'queued'). */
    enqueue(convId, body, { replyTo } = {}) {
        const e = {
            client_id: newClientId(this.now, this.random),
            conversation: convId,
            body,
            createdAt: this.now(),
            status: 'queued',
            error: null,
            requestId: null,
        };
        if (replyTo)
            e.reply_to = replyTo;
        this.outbox.set(e.client_id, e);
        return e;
    }
    /** Entries to send now (queued, in the order they were written). */
    sendable() {
        return [...this.outbox.values()].filter((e) => e.status === 'queued').sort((a, b) => a.createdAt - b.createdAt);
    }
    markSending(clientId, requestId) {
        const e = this.outbox.get(clientId);
        if (!e)
            return null;
        e.status = 'sending';
        e.requestId = requestId;
        e.sentAt = this.now();
        e.error = null;
        return e;
    }
    /** Applies an `ack`: the outbox entry becomes the stored message. */
    applyAck(message, { viewing = true } = {}) {
        return this.addMessage(message, { viewing });
    }
    /**
     * A send was answered with an error or timed out. Errors worth retrying
     * (rate_limited, unavailable, timeout) put the entry back in the queue a
     * few times, and the delay before the next flush is returned; any other
     * error, or too many tries, marks it failed and returns null.
     */
    sendFailed(clientId, code) {
        const e = this.outbox.get(clientId);
        if (!e)
            return null;
        e.tries = (e.tries || 0) + 1;
        if (code && RETRYABLE_SEND_ERRORS.has(code) && e.tries < AUTO_SEND_TRIES) {
            e.status = 'queued';
            e.requestId = null;
            const cap = Math.min(8000, 500 * 2 ** (e.tries - 1));
            return Math.round(cap / 2 + this.random() * (cap / 2));
        }
        this.markFailed(clientId, code);
        return null;
    }
    /** A send failed for good: the entry waits for the user's Retry. */
    markFailed(clientId, code) {
        const e = this.outbox.get(clientId);
        if (!e)
            return null;
        e.status = 'failed';
        e.error = code || 'failed';
        e.requestId = null;
        return e;
    }
    /** Retries a failed entry, keeping its client_id so the server deduplicates. */
    retry(clientId) {
        const e = this.outbox.get(clientId);
        if (!e || e.status !== 'failed')
            return null;
        e.status = 'queued';
        e.tries = 0;
        e.error = null;
        return e;
    }
    discard(clientId) {
        return this.outbox.delete(clientId);
    }
    /**
     * The conversation as the view shows it: stored messages by ID, then the
     * outbox's entries for it in the order they were written.
     * Each item: {key, message?, entry?, mine, status} with status one of
     * 'sent', 'pending' (queued or sending), 'failed', or null for others'.
     */
    timeline(convId) {
        const rec = this.convs.get(convId);
        if (!rec)
            return [];
        const me = this.me && this.me.id;
        const items = rec.messages.map((m) => ({
            key: m.sender === me && m.client_id ? `c:${m.client_id}` : `m:${m.id}`,
            message: m,
            mine: m.sender === me,
            status: m.sender === me ? 'sent' : null,
        }));
        const entries = [...this.outbox.values()].filter((e) => e.conversation === convId).sort((a, b) => a.createdAt - b.createdAt);
        for (const e of entries) {
            items.push({
                key: `c:${e.client_id}`,
                entry: e,
                mine: true,
                status: e.status === 'failed' ? 'failed' : 'pending',
            });
        }
        return items;
    }
    /**
     * Who has seen what of mine: a map from the ID of one of my messages to
     * the users whose read mark reached it and no later message of mine.
     */
    seenMarks(convId) {
        const rec = this.convs.get(convId);
        const out = new Map();
        if (!rec || !this.me)
            return out;
        const me = this.me.id;
        const mine = rec.messages.filter((m) => m.sender === me);
        if (!mine.length)
            return out;
        for (const [uid, mark] of rec.reads) {
            if (uid === me)
                continue;
            // The newest of my messages at or before their mark.
            let lo = 0;
            let hi = mine.length;
            while (lo < hi) {
                const mid = (lo + hi) >> 1;
                if (compareIds(mine[mid].id, mark) <= 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo === 0)
                continue;
            const id = mine[lo - 1].id;
            if (!out.has(id))
                out.set(id, []);
            out.get(id).push(uid);
        }
        return out;
    }
    totalUnread() {
        let n = 0;
        for (const rec of this.convs.values())
            n += rec.unread || 0;
        return n;
    }
    // ---------------------------------------------------------- changes
    /** A held message by ID (from the conversation's list, else its last message), or null. */
    message(convId, msgId) {
        const rec = this.convs.get(convId);
        if (!rec)
            return null;
        const i = indexOfId(rec.messages, msgId);
        if (i >= 0)
            return rec.messages[i];
        return rec.lastMessage && rec.lastMessage.id === msgId ? rec.lastMessage : null;
    }
    /** My newest stored message in a conversation that is not deleted (what the up arrow edits), or null. */
    lastEditable(convId) {
        const rec = this.convs.get(convId);
        if (!rec || !this.me)
            return null;
        for (let i = rec.messages.length - 1; i >= 0; i--) {
            const m = rec.messages[i];
            if (m.sender === this.me.id && !m.deleted)
                return m;
        }
        return null;
    }
    /**
     * Applies a change: a live `change` frame, or (cursor false) the change
     * in the ack of one's own edit, delete or react, which must not move the
     * cursor (an ack can come before an older change of someone else).
     * Returns whether anything shown changed.
     */
    applyChange(ch, { cursor = true } = {}) {
        if (!ch || !isId(ch.id) || !ch.conversation)
            return false;
        const rec = this.convs.get(ch.conversation);
        if (!rec)
            return false;
        if (cursor)
            rec.changeCursor = maxId(rec.changeCursor, ch.id);
        return applyToRecord(rec, ch, this.me?.id ?? null);
    }
    /**
     * Applies a page of a `changes` answer (each change with its message as
     * it is now). With nextAfter null the catch-up is complete; otherwise it
     * continues from nextAfter. Returns how many shown messages changed.
     */
    applyChangesPage(convId, changes, nextAfter) {
        const rec = this.convs.get(convId);
        if (!rec)
            return 0;
        let n = 0;
        for (const ch of changes || []) {
            if (!ch || !isId(ch.id))
                continue;
            rec.changeCursor = maxId(rec.changeCursor, ch.id);
            if (applyPageChange(rec, ch, this.me?.id ?? null))
                n++;
        }
        rec.changesBehind = nextAfter == null ? null : isId(nextAfter) ? nextAfter : rec.changesBehind;
        return n;
    }
    /** A conversation's changes need no catch-up (its messages were dropped, or it is gone). */
    changesCaughtUp(convId) {
        const rec = this.convs.get(convId);
        if (rec)
            rec.changesBehind = null;
    }
    /** The outbox as plain data, to keep unsent messages across a reload. */
    exportOutbox() {
        return [...this.outbox.values()].map((e) => ({
            client_id: e.client_id,
            conversation: e.conversation,
            body: e.body,
            ...(e.reply_to ? { reply_to: e.reply_to } : {}),
            createdAt: e.createdAt,
            failed: e.status === 'failed',
            error: e.error,
        }));
    }
    /**
     * Restores a saved outbox. Entries older than staleAfterMs come back as
     * failed rather than queued: the server deduplicates a client_id only for
     * a limited window (10 minutes by default), so resending an old entry on
     * its own could make a second copy; the user decides.
     */
    importOutbox(list, { staleAfterMs = OUTBOX_STALE_MS } = {}) {
        if (!Array.isArray(list))
            return;
        for (const x of list) {
            if (!x || typeof x.client_id !== 'string' || typeof x.body !== 'string' || typeof x.conversation !== 'string')
                continue;
            const createdAt = Number(x.createdAt) || this.now();
            const stale = this.now() - createdAt > staleAfterMs;
            this.outbox.set(x.client_id, {
                client_id: x.client_id,
                conversation: x.conversation,
                body: x.body,
                createdAt,
                status: x.failed || stale ? 'failed' : 'queued',
                error: x.error || (stale ? 'stale' : null),
                requestId: null,
                ...(isId(x.reply_to) ? { reply_to: x.reply_to } : {}),
            });
        }
    }
}
