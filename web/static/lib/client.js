// ChatClient ties the pieces together the way docs/PROTOCOL.md prescribes:
// the connection (reconnect with backoff and jitter), the state (ordering
// and de-duplication by ID), catch-up after every hello (`history after` the
// newest known ID, page by page), the outbox (unacked sends resent with the
// same client_id after a reconnect), and typing, presence and read helpers.
// No DOM and no Node-only API: everything from the host is injected or
// taken from globalThis.
import { Api, ApiError } from './api.js';
import { Connection, RequestError, } from './connection.js';
import { validEmoji } from './changes.js';
import { MAX_HISTORY_LIMIT } from './protocol.js';
import { AUTO_SEND_TRIES, ChatState, MAX_CATCHUP_PAGES, newClientId, RETRYABLE_SEND_ERRORS, validBody, Throttle, TYPING_SEND_EVERY_MS, } from './state.js';
import { Session } from './session.js';
function wsBase(base) {
    return `${base.replace(/^http/, 'ws')}/ws`;
}
export class ChatClient {
    state;
    api;
    conn;
    /** The session renewing the token, when there is a refresh token. */
    session;
    #ownSession = false;
    /** The access token the current socket attempt was opened with. */
    #wsToken = null;
    #o;
    #token;
    #setTimeout;
    #clearTimeout;
    #typing = new Map();
    #waiters = new Map();
    #flushTimer = null;
    #now;
    constructor(o) {
        this.#o = o;
        this.#token = o.token ?? o.api?.token ?? null;
        this.#now = o.now ?? Date.now;
        this.state = o.state ?? new ChatState({ now: o.now, random: o.random, followAll: o.followAll });
        // A shared Api keeps the onUnauthorized its owner gave it.
        this.api =
            o.api ??
                new Api({
                    base: o.baseUrl ?? '',
                    token: this.#token,
                    fetch: o.fetch,
                    onUnauthorized: () => o.onAuthExpired?.(),
                });
        this.api.token = this.#token;
        if (!o.wsUrl && !/^https?:\/\//.test(o.baseUrl ?? ''))
            throw new Error('ChatClient needs wsUrl or an absolute baseUrl');
        const g = globalThis;
        this.#setTimeout = o.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms));
        this.#clearTimeout = o.clearTimeout ?? ((h) => g.clearTimeout(h));
        this.session = o.session ?? null;
        if (!this.session && o.refreshToken && this.#token) {
            this.#ownSession = true;
            this.session = new Session({
                api: this.api,
                token: this.#token,
                refreshToken: o.refreshToken,
                expiresIn: o.expiresIn,
                onTokens: (t) => {
                    this.#token = t.token;
                    o.onTokens?.(t);
                },
                onExpired: () => this.#sessionOver(),
                now: o.now,
                setTimeout: this.#setTimeout,
                clearTimeout: this.#clearTimeout,
            });
        }
        const wsAuth = o.wsAuth ?? (this.session ? 'ticket' : 'token');
        this.conn = new Connection({
            url: o.wsUrl ?? (wsAuth === 'ticket' ? () => this.#ticketUrl() : () => this.#tokenUrl()),
            WebSocket: o.WebSocket,
            onFrame: (f) => this.#onFrame(f),
            onStatus: (s, info) => {
                if (s === 'offline')
                    this.state.applyDisconnect();
                o.onStatus?.(s, info);
                this.#changed();
            },
            onAuthExpired: () => this.#closed4001(),
            onConnectFailed: () => o.onConnectFailed?.(),
            setTimeout: this.#setTimeout,
            clearTimeout: this.#clearTimeout,
            random: o.random,
            backoff: o.backoff,
            pingEveryMs: o.pingEveryMs,
            pongTimeoutMs: o.pongTimeoutMs,
            requestTimeoutMs: o.requestTimeoutMs,
        });
    }
    /** The access token now (a session renews it). */
    get token() {
        return this.session ? this.session.token : this.#token;
    }
    /** A new token (after logging in again): used by the next HTTP call and the next connect. */
    set token(t) {
        this.#token = t;
        this.api.token = t;
    }
    #tokenUrl() {
        this.#wsToken = this.api.token;
        return `${wsBase(this.#o.baseUrl ?? '')}?token=${encodeURIComponent(this.api.token ?? '')}`;
    }
    /** A fresh single-use ticket per attempt: the URL, which proxies log, holds no token. */
    async #ticketUrl() {
        this.#wsToken = this.api.token;
        let ticket;
        try {
            ({ ticket } = await this.api.wsTicket());
        }
        catch (e) {
            // A 401 here already went through the refresh and onUnauthorized:
            // the session is over, so stop rather than retry.
            if (e instanceof ApiError && e.status === 401)
                this.conn.stop();
            throw e;
        }
        return `${wsBase(this.#o.baseUrl ?? '')}?ticket=${encodeURIComponent(ticket)}`;
    }
    /**
     * 4001: the socket's token expired or its session ended. With a session
     * a refresh tells which: renewed, reconnect; refused, the session is over.
     */
    #closed4001() {
        const s = this.session;
        if (!s) {
            this.#o.onAuthExpired?.();
            return;
        }
        const conn = this.conn;
        s.refresh(this.#wsToken ?? undefined).then((ok) => {
            if (ok)
                conn.start();
            else
                this.#sessionOver();
        }, () => conn.start());
    }
    #sessionOver() {
        this.conn.stop();
        this.#o.onAuthExpired?.();
    }
    get isReady() {
        return this.conn.isReady;
    }
    start() {
        if (this.#ownSession)
            this.session?.start();
        this.conn.start();
    }
    /** Closes for good. Sends waiting for an ack stay in the outbox (see exportOutbox). */
    stop() {
        if (this.#flushTimer)
            this.#clearTimeout(this.#flushTimer);
        this.#flushTimer = null;
        if (this.#ownSession)
            this.session?.stop();
        this.conn.stop();
    }
    /**
     * Logs out: ends the session on the server (with `all`, every session of
     * the user), forgets its push registrations first when `devices` (they
     * belong to the user, so only do so when this device registered them), and
     * stops. A server that cannot be reached does not keep the client running.
     */
    async logout({ all = false, devices = false } = {}) {
        // The socket first: the server closes it with 4001 as the session ends,
        // which is no expiry to report. The session stays up for the calls,
        // which may need a refreshed token.
        if (this.#flushTimer)
            this.#clearTimeout(this.#flushTimer);
        this.#flushTimer = null;
        this.conn.stop();
        try {
            if (devices)
                await this.api.removeDevices();
        }
        catch {
            // Logging out goes on: the registrations lapse with the next failed push.
        }
        try {
            await this.api.logout(all);
        }
        finally {
            if (this.#ownSession)
                this.session?.stop();
        }
    }
    /** Reconnects now if waiting to retry (the app came to the foreground, the network came back). */
    nudge() {
        this.conn.nudge();
    }
    // ------------------------------------------------------------ sending
    /**
     * Queues a message and sends it when connected; the outbox entry shows as
     * pending until its ack. Unacked sends are resent after every reconnect
     * with the same client_id, so the server stores each once.
     */
    send(convId, body, opts = {}) {
        const e = this.state.enqueue(convId, body, opts);
        this.flush();
        return e;
    }
    /**
     * Like send, and resolves with the stored message once acked (across
     * reconnects); rejects with a RequestError when the send failed for good
     * (an `error` such as invalid_message, or retries exhausted).
     */
    sendAndWait(convId, body, opts = {}) {
        const e = this.state.enqueue(convId, body, opts);
        const p = new Promise((resolve, reject) => this.#waiters.set(e.client_id, { resolve, reject }));
        this.flush();
        return p;
    }
    /** Sends every queued outbox entry now (when connected), and persists the outbox. */
    flush() {
        const conn = this.conn;
        if (!conn.isReady) {
            this.#saveOutbox();
            return;
        }
        for (const e of this.state.sendable()) {
            const id = conn.nextId();
            this.state.markSending(e.client_id, id);
            conn
                .request({ type: 'send', conversation: e.conversation, client_id: e.client_id, body: e.body, ...(e.reply_to ? { reply_to: e.reply_to } : {}) }, { id })
                .then((f) => {
                const r = this.state.applyAck(f.message, { viewing: true });
                this.#added(f.message, r);
                this.#saveOutbox();
                this.#changed();
            })
                .catch((err) => {
                const code = err instanceof RequestError ? err.code : 'internal';
                // Disconnected: the entry went back to the queue and is resent
                // with the same client_id after the next hello. Rate limits and a
                // busy server are retried on their own a few times; anything else
                // waits for retry() or discard().
                if (code !== 'disconnected') {
                    const again = this.state.sendFailed(e.client_id, code);
                    if (again != null)
                        this.#flushLater(again);
                    else
                        this.#rejectWaiter(e.client_id, code);
                }
                this.#saveOutbox();
                this.#changed();
            });
        }
        this.#saveOutbox();
    }
    /** Sends a failed entry again with its same client_id. */
    retry(clientId) {
        const e = this.state.retry(clientId);
        if (e)
            this.flush();
        this.#changed();
        return e;
    }
    /** Gives up on an unsent entry. */
    discard(clientId) {
        const ok = this.state.discard(clientId);
        this.#rejectWaiter(clientId, 'discarded');
        this.#saveOutbox();
        this.#changed();
        return ok;
    }
    #flushLater(ms) {
        if (this.#flushTimer)
            this.#clearTimeout(this.#flushTimer);
        this.#flushTimer = this.#setTimeout(() => {
            this.#flushTimer = null;
            this.flush();
        }, ms);
    }
    #saveOutbox() {
        this.#o.onOutbox?.(this.state.exportOutbox());
    }
    #rejectWaiter(clientId, code) {
        const w = this.#waiters.get(clientId);
        if (!w)
            return;
        this.#waiters.delete(clientId);
        w.reject(new RequestError(code));
    }
    // ------------------------------------------------------------ changes
    /**
     * Edits one of my messages (within the server's edit window). Resolves
     * with the stored change once acked, already applied to the state;
     * rejects with a RequestError: `forbidden` (not mine, or too late),
     * `not_found` (deleted or unknown), `invalid_message`, or `disconnected`
     * when the connection stayed down through the retries.
     */
    edit(convId, messageId, body) {
        if (!validBody(body))
            return Promise.reject(new RequestError('invalid_message', 'a body is 1–4096 characters, not only white space'));
        return this.#change({ type: 'edit', conversation: convId, message_id: messageId, body, client_id: this.#clientId() });
    }
    /** Deletes one of my messages for everyone. Resolves with the stored change (see edit). */
    delete(convId, messageId) {
        return this.#change({ type: 'delete', conversation: convId, message_id: messageId, client_id: this.#clientId() });
    }
    /**
     * Toggles my reaction with an emoji on a message: the change's `on` says
     * whether it was added or taken back. Resolves with the stored change.
     */
    react(convId, messageId, emoji) {
        if (!validEmoji(emoji))
            return Promise.reject(new RequestError('invalid_message', 'not an emoji'));
        return this.#change({ type: 'react', conversation: convId, message_id: messageId, emoji, client_id: this.#clientId() });
    }
    #clientId() {
        return newClientId(this.#now, this.#o.random);
    }
    /**
     * Sends a change request and applies its ack. A busy server, a timeout or
     * a lost connection is retried a few times with the same client_id (the
     * server stores a change once per client_id), waiting for the link to
     * come back; other errors reject at once.
     */
    async #change(frame) {
        for (let tries = 1;; tries++) {
            try {
                const ack = (await this.conn.request(frame));
                this.state.applyChange(ack.change, { cursor: false });
                this.#changed();
                return ack.change;
            }
            catch (e) {
                const code = e instanceof RequestError ? e.code : 'internal';
                if (!(RETRYABLE_SEND_ERRORS.has(code) || code === 'disconnected') || tries >= AUTO_SEND_TRIES)
                    throw e;
                const cap = Math.min(8000, 500 * 2 ** (tries - 1));
                await new Promise((r) => this.#setTimeout(r, Math.round(cap / 2 + (this.#o.random ?? Math.random)() * (cap / 2))));
            }
        }
    }
    /**
     * Pages `changes after` a conversation's cursor until none remain,
     * applying each (its message as it is now replaces an older copy). Runs on
     * its own after every hello, once that conversation's history catch-up is
     * done; a later hello resumes an interrupted one.
     */
    async catchUpChanges(convId, after) {
        let cursor = after;
        const limit = Math.min(this.#o.catchUpLimit ?? MAX_HISTORY_LIMIT, MAX_HISTORY_LIMIT);
        for (;;) {
            let res;
            try {
                res = await this.conn.request({ type: 'changes', conversation: convId, after: cursor, limit });
            }
            catch (e) {
                const notFound = e instanceof RequestError && e.code === 'not_found';
                if (notFound)
                    this.state.changesCaughtUp(convId);
                return this.#changesDone(convId, notFound ? 'not_found' : 'interrupted');
            }
            this.state.applyChangesPage(convId, res.changes, res.next_after);
            this.#changed();
            if (res.next_after == null || !this.state.conv(convId))
                return this.#changesDone(convId, 'done');
            cursor = res.next_after;
        }
    }
    #changesDone(convId, outcome) {
        this.#o.onChangesCaughtUp?.(convId, outcome);
        return outcome;
    }
    /**
     * History first, then changes (from where the hello found the changes
     * cursor): a change to a message the history pages bring is then applied
     * to it.
     */
    async #catchUpAll(convId, after) {
        const outcome = await this.catchUp(convId, after);
        if (outcome === 'reload')
            this.state.changesCaughtUp(convId);
        const from = this.state.conv(convId)?.changesBehind;
        if (outcome === 'done' && from)
            await this.catchUpChanges(convId, from);
    }
    // ------------------------------------------------------------ typing, read
    /** Says `typing` in a conversation, at most once every few seconds. Returns whether a frame went out. */
    typing(convId) {
        if (!this.conn.isReady)
            return false;
        let t = this.#typing.get(convId);
        if (!t) {
            t = new Throttle(TYPING_SEND_EVERY_MS, this.#now);
            this.#typing.set(convId, t);
        }
        return t.take() && this.conn.send({ type: 'typing', conversation: convId });
    }
    /** Lets the next typing() of a conversation (or of all) go out at once (after a send). */
    resetTyping(convId) {
        if (convId == null)
            this.#typing.clear();
        else
            this.#typing.delete(convId);
    }
    /** Marks a conversation read up to its newest message and tells the server. Returns the ID marked, or null. */
    markRead(convId) {
        if (!this.conn.isReady)
            return null;
        const msgId = this.state.markRead(convId);
        if (msgId) {
            this.conn.send({ type: 'read', conversation: convId, message_id: msgId });
            this.#changed();
        }
        return msgId;
    }
    // ------------------------------------------------------------ history
    /** Loads the newest page of a conversation over HTTP into the state. */
    async loadNewest(convId, limit = 50) {
        const res = await this.api.messages(convId, { limit });
        return this.#applyBefore(convId, res.messages, res.next_before);
    }
    /** Loads the page older than what the state holds. Returns null when nothing older remains. */
    async loadOlder(convId, limit = 50) {
        const rec = this.state.conv(convId);
        if (!rec || !this.state.hasOlder(convId))
            return null;
        const before = rec.nextBefore || this.state.oldestLoadedId(convId);
        if (!before)
            return null;
        const res = await this.api.messages(convId, { before, limit });
        return this.#applyBefore(convId, res.messages, res.next_before);
    }
    #applyBefore(convId, messages, nextBefore) {
        const rec = this.state.conv(convId);
        const known = new Set(rec ? rec.messages.map((m) => m.id) : []);
        const r = this.state.applyHistoryBefore(convId, messages, nextBefore);
        if (r && r.added)
            for (const m of messages)
                if (!known.has(m.id))
                    this.#added(m, { added: true }), known.add(m.id);
        this.#changed();
        return r;
    }
    /**
     * Fills the gap of a conversation after a reconnect: `history` after its
     * newest known message, page by page, until the server says none remain.
     * Runs on its own after every hello; call it only for a conversation the
     * state does not track.
     */
    async catchUp(convId, after) {
        let cursor = after;
        const limit = Math.min(this.#o.catchUpLimit ?? MAX_HISTORY_LIMIT, MAX_HISTORY_LIMIT);
        for (let page = 1;; page++) {
            let res;
            try {
                res = await this.conn.request({ type: 'history', conversation: convId, after: cursor, limit });
            }
            catch (e) {
                // Disconnected: the next hello plans a new catch-up.
                const notFound = e instanceof RequestError && e.code === 'not_found';
                if (notFound)
                    this.state.convs.delete(convId);
                this.#changed();
                return this.#caughtUp(convId, notFound ? 'not_found' : 'interrupted');
            }
            const viewing = this.#o.viewing?.(convId) ?? false;
            const rec = this.state.conv(convId);
            if (!rec)
                return this.#caughtUp(convId, 'done');
            // Added one by one so that every new message is reported once; then
            // the state decides what comes next (and may drop a gap too long).
            for (const m of res.messages || [])
                this.#added(m, this.state.addMessage(m, { viewing }));
            const maxPages = rec.tracked ? Infinity : MAX_CATCHUP_PAGES;
            const step = this.state.applyHistoryAfter(convId, [], res.next_after, page, { viewing, maxPages });
            this.#changed();
            if ('reload' in step)
                return this.#caughtUp(convId, 'reload');
            if ('done' in step)
                return this.#caughtUp(convId, 'done');
            cursor = step.next;
        }
    }
    #caughtUp(convId, outcome) {
        this.#o.onCatchUp?.(convId, outcome);
        return outcome;
    }
    // ------------------------------------------------------------ frames
    #onFrame(f) {
        const st = this.state;
        const o = this.#o;
        switch (f.type) {
            case 'hello': {
                const plan = st.applyHello(f);
                for (const p of plan)
                    void this.#catchUpAll(p.conversation, p.after);
                this.flush();
                o.onFrame?.(f);
                break;
            }
            case 'message': {
                const m = f.message;
                const r = st.addMessage(m, { viewing: !!m && (o.viewing?.(m.conversation) ?? false) });
                this.#added(m, r);
                o.onFrame?.(f, r);
                break;
            }
            case 'change':
                st.applyChange(f.change);
                o.onFrame?.(f);
                break;
            case 'read':
                st.applyRead(f.conversation, f.user, f.message_id);
                o.onFrame?.(f);
                break;
            case 'typing':
                st.applyTyping(f.conversation, f.user);
                o.onFrame?.(f);
                break;
            case 'presence':
                st.applyPresence(f.user, f.online);
                o.onFrame?.(f);
                break;
            case 'conversation': {
                const isNew = !st.conv(f.conversation && f.conversation.id);
                // This frame carries no last_message and unread 0: keep our own.
                const rec = st.upsertConversation(f.conversation, { front: isNew, keepCounts: true });
                if (rec && isNew && st.followAll) {
                    // Followed from now on; a message stored before this connection
                    // learnt of the conversation is fetched.
                    rec.tracked = true;
                    void this.catchUp(rec.id, st.newestKnownId(rec.id) ?? '0');
                }
                o.onFrame?.(f, { isNew });
                break;
            }
            default:
                o.onFrame?.(f);
                break;
        }
        this.#changed();
    }
    #added(m, r) {
        if (!m)
            return;
        if (r.added)
            this.#o.onMessage?.(m);
        const me = this.state.me;
        if (me && m.sender === me.id && m.client_id) {
            const w = this.#waiters.get(m.client_id);
            if (w && !this.state.outbox.has(m.client_id)) {
                this.#waiters.delete(m.client_id);
                w.resolve(m);
            }
        }
    }
    #changed() {
        this.#o.onChange?.();
    }
}
