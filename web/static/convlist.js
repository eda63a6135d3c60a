// The conversation list beyond hello, and leaving a group
// (docs/PROTOCOL.md: GET /conversations?before=, DELETE
// /conversations/{id}/members/me). hello lists the most recent
// conversations and a `next_before` cursor for the rest; older ones are
// asked for a page at a time, newest activity first, when the person
// scrolls to the end of the list or presses "Show more conversations".

/** One page of the conversation list after the cursor `before` (null: from the top). */
export function conversationsPage(api, { before = null, limit = null } = {}) {
  const q = [];
  if (limit) q.push(`limit=${encodeURIComponent(limit)}`);
  if (before) q.push(`before=${encodeURIComponent(before)}`);
  return api.call('GET', '/conversations' + (q.length ? '?' + q.join('&') : ''));
}

/** The caller leaves a group (204); a `left` frame follows on every connection. */
export function leaveGroup(api, convId) {
  return api.call('DELETE', `/conversations/${encodeURIComponent(convId)}/members/me`);
}

/** Forgets a conversation the user is no longer in: from the list and the state. */
export function forgetConversation(state, convId) {
  state.convs.delete(convId);
  state.order = state.order.filter((x) => x !== convId);
}

/**
 * Walks the list's cursor: `reset` with hello's `next_before`, then `next`
 * loads the following page (one at a time; a second call while one is on
 * the way shares it), hands its conversations to `add` and moves the
 * cursor. An error leaves the cursor where it was, so the next try asks the
 * same page again.
 */
export class ListPager {
  constructor({ load, add }) {
    this.load = load; // (cursor) => Promise<{conversations, next_before}>
    this.add = add; // (conversations) => void
    this.cursor = null;
    this.inflight = null;
    this.epoch = 0;
  }

  /** A new hello: the rest of the list starts after its cursor. */
  reset(cursor) {
    this.cursor = cursor || null;
    this.epoch++;
    this.inflight = null;
  }

  /** Whether older conversations remain to be loaded. */
  get more() {
    return this.cursor !== null;
  }

  get loading() {
    return this.inflight !== null;
  }

  /** Loads the next page; resolves to the conversations it added ([] when none remain). */
  next() {
    if (this.inflight) return this.inflight;
    if (this.cursor === null) return Promise.resolve([]);
    const epoch = this.epoch;
    const p = (async () => {
      try {
        const res = await this.load(this.cursor);
        if (epoch !== this.epoch) return [];
        const convs = Array.isArray(res && res.conversations) ? res.conversations : [];
        this.add(convs);
        this.cursor = (res && res.next_before) || null;
        return convs;
      } finally {
        if (epoch === this.epoch) this.inflight = null;
      }
    })();
    this.inflight = p;
    return p;
  }
}
