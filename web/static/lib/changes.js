// Messages that change (docs/PROTOCOL.md, "Catching up on changes"): how an
// edit, a deletion or a reaction is applied to a message the client holds,
// to the quotes of it in replies, and to the conversation's last message;
// and the change cursor of a conversation. A change is applied only when its
// ID is above the message's `version`, so a change that arrives twice (live
// and again in a catch-up page, or as an ack and then live) counts once.
// Pure functions of the state's records; ChatState (state.ts) calls them.
import { compareIds, isId } from './ids.js';
import { MAX_REACTION_EMOJIS, QUOTE_CODE_POINTS } from './protocol.js';
/**
 * Changes to messages not held yet that a record keeps, so that a change
 * arriving while the message's page is on its way (loaded over HTTP, read
 * before the change was stored) is applied when the page lands. Bounded:
 * older ones are dropped first.
 */
export const MAX_PENDING_CHANGES = 100;
/** Whether a change is newer than the message's state (its ID above the message's version). */
export function isNewChange(m, ch) {
    return !m.version || compareIds(ch.id, m.version) > 0;
}
/** Cuts s to at most n code points. */
function cut(s, n) {
    let i = 0;
    let end = 0;
    for (const c of s) {
        if (i === n)
            return s.slice(0, end);
        i++;
        end += c.length;
    }
    return s;
}
/** What a reply shows of the message it answers, as the server makes it. */
export function quoteOf(m) {
    const q = { id: m.id, sender: m.sender, body: m.deleted ? '' : cut(m.body, QUOTE_CODE_POINTS) };
    if (m.deleted)
        q.deleted = true;
    return q;
}
/** Whether s is an emoji the server accepts: 1–32 bytes, at most 10 code points, not ASCII alone, no white space or controls. */
export function validEmoji(s) {
    if (typeof s !== 'string' || s.length === 0)
        return false;
    const points = [...s];
    let bytes = 0;
    for (const c of points) {
        const n = c.codePointAt(0);
        bytes += n < 0x80 ? 1 : n < 0x800 ? 2 : n < 0x10000 ? 3 : 4;
    }
    if (bytes > 32 || points.length > 10)
        return false;
    if (points.some((c) => /[\s\p{Cc}]/u.test(c)))
        return false;
    return points.some((c) => c.codePointAt(0) >= 0x80);
}
/** A message's reactions after one user added (on) or took back an emoji. */
export function reactionsAfter(list, emoji, on, mine) {
    const out = (list ?? []).map((r) => ({ ...r }));
    const i = out.findIndex((r) => r.emoji === emoji);
    if (on) {
        if (i < 0) {
            if (out.length >= MAX_REACTION_EMOJIS)
                return out;
            const r = { emoji, count: 1 };
            if (mine)
                r.me = true;
            out.push(r);
        }
        else {
            out[i].count++;
            if (mine)
                out[i].me = true;
        }
        return out;
    }
    if (i < 0)
        return out;
    out[i].count--;
    if (mine)
        delete out[i].me;
    if (out[i].count <= 0)
        out.splice(i, 1);
    return out;
}
/**
 * A message after a change, or null when the change is not for it, is not
 * newer than its state, or is of a kind this client does not know. `me` is
 * the reader, whose own reactions are marked `me`.
 */
export function applyChangeTo(m, ch, me) {
    if (m.id !== ch.message_id || !isId(ch.id) || !isNewChange(m, ch))
        return null;
    const out = { ...m, version: ch.id };
    switch (ch.kind) {
        case 'edit':
            if (!m.deleted && typeof ch.body === 'string') {
                out.body = ch.body;
                out.edited_at = ch.at;
            }
            return out;
        case 'delete':
            out.deleted = true;
            out.body = '';
            delete out.reactions;
            return out;
        case 'react': {
            if (m.deleted || typeof ch.emoji !== 'string')
                return out;
            const rs = reactionsAfter(m.reactions, ch.emoji, !!ch.on, me != null && ch.user === me);
            if (rs.length)
                out.reactions = rs;
            else
                delete out.reactions;
            return out;
        }
        default:
            return null;
    }
}
/** The index of the message with an ID in a list sorted by ID, or -1. */
export function indexOfId(list, id) {
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const c = compareIds(list[mid].id, id);
        if (c === 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}
/** Of two copies of one message, the one whose state is newer (the incoming one on a tie). */
export function newerCopy(held, incoming) {
    if (held.version && (!incoming.version || compareIds(held.version, incoming.version) > 0))
        return held;
    return incoming;
}
/** Points every reply in the record that quotes `original` at its current state. Returns whether one changed. */
function requote(rec, original) {
    const q = quoteOf(original);
    const stale = (m) => m.reply_to === original.id && !!m.reply && (m.reply.body !== q.body || !!m.reply.deleted !== !!q.deleted);
    const fresh = (m) => ({ ...m, reply: { ...m.reply, body: q.body, ...(q.deleted ? { deleted: true } : {}) } });
    let changed = false;
    for (let i = 0; i < rec.messages.length; i++) {
        if (stale(rec.messages[i])) {
            rec.messages[i] = fresh(rec.messages[i]);
            changed = true;
        }
    }
    if (rec.lastMessage && stale(rec.lastMessage)) {
        rec.lastMessage = fresh(rec.lastMessage);
        changed = true;
    }
    return changed;
}
/**
 * Applies one change to a conversation's record: to the message if held
 * (and the last message), to the quotes of it, or, when the message is not
 * held, keeps it pending for when it arrives. Returns whether anything
 * shown changed.
 */
export function applyToRecord(rec, ch, me) {
    let changed = false;
    let now = null;
    const i = indexOfId(rec.messages, ch.message_id);
    if (i >= 0) {
        now = applyChangeTo(rec.messages[i], ch, me);
        if (now) {
            rec.messages[i] = now;
            changed = true;
        }
    }
    else if (rec.loaded || rec.tracked) {
        rec.pendingChanges.push(ch);
        if (rec.pendingChanges.length > MAX_PENDING_CHANGES)
            rec.pendingChanges.shift();
    }
    const last = rec.lastMessage;
    if (last && last.id === ch.message_id) {
        // Often the same object as the held copy before the change; either way
        // its own version decides.
        const l = applyChangeTo(last, ch, me);
        if (l) {
            rec.lastMessage = l;
            now ??= l;
            changed = true;
        }
    }
    if (ch.kind !== 'react') {
        // An edit or deletion shows in every reply quoting the message. When the
        // original is not held, the change itself says what it is now.
        const original = now ??
            (ch.message && ch.message.id === ch.message_id
                ? ch.message
                : { id: ch.message_id, conversation: ch.conversation, sender: ch.user, body: ch.body ?? '', sent_at: ch.at, client_id: '', ...(ch.kind === 'delete' ? { deleted: true } : {}) });
        if (requote(rec, original))
            changed = true;
    }
    return changed;
}
/**
 * Applies a change from a `changes` answer: it carries its message as it is
 * now, which replaces the held copy when newer; without one, it is applied
 * as a live change. Returns whether anything shown changed.
 */
export function applyPageChange(rec, ch, me) {
    const m = ch.message;
    if (!m || m.id !== ch.message_id)
        return applyToRecord(rec, ch, me);
    let changed = false;
    const i = indexOfId(rec.messages, m.id);
    if (i >= 0 && newerCopy(rec.messages[i], m) === m && rec.messages[i] !== m) {
        rec.messages[i] = m;
        changed = true;
    }
    if (rec.lastMessage && rec.lastMessage.id === m.id && newerCopy(rec.lastMessage, m) === m) {
        rec.lastMessage = m;
        changed = true;
    }
    if (ch.kind !== 'react' && (i >= 0 || rec.messages.some((x) => x.reply_to === m.id))) {
        if (requote(rec, m))
            changed = true;
    }
    return changed;
}
/** Applies the pending changes whose message is held now; drops them once applied. */
export function settlePending(rec, me) {
    if (!rec.pendingChanges.length)
        return false;
    let changed = false;
    const keep = [];
    for (const ch of rec.pendingChanges) {
        if (indexOfId(rec.messages, ch.message_id) < 0)
            keep.push(ch);
        else if (applyToRecord(rec, ch, me))
            changed = true;
    }
    rec.pendingChanges = keep;
    return changed;
}
