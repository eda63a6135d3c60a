// ChatClient ties the pieces together the way docs/PROTOCOL.md prescribes:
// the connection (reconnect with backoff and jitter), the state (ordering
// and de-duplication by ID), catch-up after every hello (`history after` the
// newest known ID, page by page), the outbox (unacked sends resent with the
// same client_id after a reconnect), and typing, presence and read helpers.
// No DOM and no Node-only API: everything from the host is injected or
// taken from globalThis.

import { Api, ApiError, type FetchLike } from './api.js';
import type { Backoff } from './backoff.js';
import {
  Connection,
  RequestError,
  type ClearTimeout,
  type ConnectionStatus,
  type SetTimeout,
  type StatusInfo,
  type WebSocketClass,
} from './connection.js';
import { validEmoji } from './changes.js';
import { MAX_HISTORY_LIMIT, type Change, type ChangeAck, type ID, type Message, type RequestFrame, type ServerFrame } from './protocol.js';
import {
  AUTO_SEND_TRIES,
  ChatState,
  MAX_CATCHUP_PAGES,
  newClientId,
  RETRYABLE_SEND_ERRORS,
  validBody,
  Throttle,
  TYPING_SEND_EVERY_MS,
  type AddResult,
  type CatchUpStep,
  type OutboxEntry,
  type SavedOutboxEntry,
} from './state.js';
import { Session, type SavedTokens } from './session.js';

export type CatchUpOutcome = 'done' | 'reload' | 'not_found' | 'interrupted';

export interface ChatClientOptions {
  /** Origin of the server for HTTP, e.g. "https://chat.example"; '' for a page's own origin. */
  baseUrl?: string;
  /**
   * The /ws URL with its credential (a promise when fetched per attempt);
   * default: baseUrl with ws(s):// and /ws, credential as `wsAuth` says.
   */
  wsUrl?: () => string | Promise<string>;
  /**
   * How the default wsUrl authenticates: 'ticket' fetches a single-use
   * ticket (POST /ws-ticket) for every attempt, so no token is in the URL;
   * 'token' puts the access token in `?token=`. Default 'ticket' with a
   * session (refreshToken or session given), else 'token'.
   */
  wsAuth?: 'ticket' | 'token';
  token?: string | null;
  /**
   * The refresh token of the login answer: the access token is then renewed
   * before it expires and when refused (401, 4001), and onAuthExpired means
   * the session itself is over. See Session.
   */
  refreshToken?: string | null;
  /** The login answer's `expires_in` (seconds), so renewal happens ahead of expiry. */
  expiresIn?: number;
  /** New tokens after a refresh: persist them (see Session's onTokens). */
  onTokens?: (tokens: SavedTokens) => void;
  /** A Session to use instead (an app that shares one across tabs or clients); the app starts and stops it. */
  session?: Session;
  /** Default globalThis.WebSocket (Node 20: pass the `ws` package's WebSocket). */
  WebSocket?: WebSocketClass;
  /** Default globalThis.fetch. */
  fetch?: FetchLike;
  /** An Api to share (its token is kept in step); default a new one. */
  api?: Api;
  /** A state to fill; default a new ChatState. */
  state?: ChatState;
  /** Follow every conversation from the first hello (see ChatState.followAll); default false. */
  followAll?: boolean;
  setTimeout?: SetTimeout;
  clearTimeout?: ClearTimeout;
  random?: () => number;
  now?: () => number;
  backoff?: Backoff;
  pingEveryMs?: number;
  pongTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Page size of catch-up requests; default 200 (the server's maximum). */
  catchUpLimit?: number;
  /** Whether the user is looking at a conversation now (its new messages are not unread). */
  viewing?: (convId: ID) => boolean;
  /** Every server frame, after the client applied it to the state. */
  onFrame?: (frame: ServerFrame, result?: AddResult | { isNew: boolean }) => void;
  /** A message entered the state for the first time (live, ack, catch-up or a history page). */
  onMessage?: (message: Message) => void;
  /** Something in the state changed: time to render. */
  onChange?: () => void;
  onStatus?: (status: ConnectionStatus, info?: StatusInfo) => void;
  /** Close code 4001 or an HTTP 401 that no refresh cured: log in again. */
  onAuthExpired?: () => void;
  /** A socket closed before its hello (perhaps a refused token). */
  onConnectFailed?: () => void;
  /** The outbox changed: persist it (localStorage, AsyncStorage, a file) to survive a restart. */
  onOutbox?: (saved: SavedOutboxEntry[]) => void;
  /** A conversation's catch-up ended. 'reload': the gap was too long, its messages were dropped. */
  onCatchUp?: (convId: ID, outcome: CatchUpOutcome) => void;
  /** A conversation's catch-up of changes (`changes after` its cursor, after a reconnect) ended. */
  onChangesCaughtUp?: (convId: ID, outcome: CatchUpOutcome) => void;
}

interface Waiter {
  resolve: (m: Message) => void;
  reject: (e: RequestError) => void;
}

function wsBase(base: string): string {
  return `${base.replace(/^http/, 'ws')}/ws`;
}

export class ChatClient {
  readonly state: ChatState;
  readonly api: Api;
  readonly conn: Connection;
  /** The session renewing the token, when there is a refresh token. */
  readonly session: Session | null;
  #ownSession = false;
  /** The access token the current socket attempt was opened with. */
  #wsToken: string | null = null;
  #o: ChatClientOptions;
  #token: string | null;
  #setTimeout: SetTimeout;
  #clearTimeout: ClearTimeout;
  #typing = new Map<ID, Throttle>();
  #waiters = new Map<string, Waiter>();
  #flushTimer: unknown = null;
  #now: () => number;

  constructor(o: ChatClientOptions) {
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
    if (!o.wsUrl && !/^https?:\/\//.test(o.baseUrl ?? '')) throw new Error('ChatClient needs wsUrl or an absolute baseUrl');
    const g = globalThis as unknown as { setTimeout: SetTimeout; clearTimeout: ClearTimeout };
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
        if (s === 'offline') this.state.applyDisconnect();
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
  get token(): string | null {
    return this.session ? this.session.token : this.#token;
  }

  /** A new token (after logging in again): used by the next HTTP call and the next connect. */
  set token(t: string | null) {
    this.#token = t;
    this.api.token = t;
  }

  #tokenUrl(): string {
    this.#wsToken = this.api.token;
    return `${wsBase(this.#o.baseUrl ?? '')}?token=${encodeURIComponent(this.api.token ?? '')}`;
  }

  /** A fresh single-use ticket per attempt: the URL, which proxies log, holds no token. */
  async #ticketUrl(): Promise<string> {
    this.#wsToken = this.api.token;
    let ticket: string;
    try {
      ({ ticket } = await this.api.wsTicket());
    } catch (e) {
      // A 401 here already went through the refresh and onUnauthorized:
      // the session is over, so stop rather than retry.
      if (e instanceof ApiError && e.status === 401) this.conn.stop();
      throw e;
    }
    return `${wsBase(this.#o.baseUrl ?? '')}?ticket=${encodeURIComponent(ticket)}`;
  }

  /**
   * 4001: the socket's token expired or its session ended. With a session
   * a refresh tells which: renewed, reconnect; refused, the session is over.
   */
  #closed4001(): void {
    const s = this.session;
    if (!s) {
      this.#o.onAuthExpired?.();
      return;
    }
    const conn = this.conn;
    s.refresh(this.#wsToken ?? undefined).then(
      (ok) => {
        if (ok) conn.start();
        else this.#sessionOver();
      },
      () => conn.start(), // the network: the connection's backoff finds out
    );
  }

  #sessionOver(): void {
    this.conn.stop();
    this.#o.onAuthExpired?.();
  }

  get isReady(): boolean {
    return this.conn.isReady;
  }

  start(): void {
    if (this.#ownSession) this.session?.start();
    this.conn.start();
  }

  /** Closes for good. Sends waiting for an ack stay in the outbox (see exportOutbox). */
  stop(): void {
    if (this.#flushTimer) this.#clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    if (this.#ownSession) this.session?.stop();
    this.conn.stop();
  }

  /**
   * Logs out: ends the session on the server (with `all`, every session of
   * the user), forgets its push registrations first when `devices` (they
   * belong to the user, so only do so when this device registered them), and
   * stops. A server that cannot be reached does not keep the client running.
   */
  async logout({ all = false, devices = false }: { all?: boolean; devices?: boolean } = {}): Promise<void> {
    // The socket first: the server closes it with 4001 as the session ends,
    // which is no expiry to report. The session stays up for the calls,
    // which may need a refreshed token.
    if (this.#flushTimer) this.#clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    this.conn.stop();
    try {
      if (devices) await this.api.removeDevices();
    } catch {
      // Logging out goes on: the registrations lapse with the next failed push.
    }
    try {
      await this.api.logout(all);
    } finally {
      if (this.#ownSession) this.session?.stop();
    }
  }

  /** Reconnects now if waiting to retry (the app came to the foreground, the network came back). */
  nudge(): void {
    this.conn.nudge();
  }

  // ------------------------------------------------------------ sending

  /**
   * Queues a message and sends it when connected; the outbox entry shows as
   * pending until its ack. Unacked sends are resent after every reconnect
   * with the same client_id, so the server stores each once.
   */
  send(convId: ID, body: string, opts: { replyTo?: ID | null } = {}): OutboxEntry {
    const e = this.state.enqueue(convId, body, opts);
    this.flush();
    return e;
  }

  /**
   * Like send, and resolves with the stored message once acked (across
   * reconnects); rejects with a RequestError when the send failed for good
   * (an `error` such as invalid_message, or retries exhausted).
   */
  sendAndWait(convId: ID, body: string, opts: { replyTo?: ID | null } = {}): Promise<Message> {
    const e = this.state.enqueue(convId, body, opts);
    const p = new Promise<Message>((resolve, reject) => this.#waiters.set(e.client_id, { resolve, reject }));
    this.flush();
    return p;
  }

  /** Sends every queued outbox entry now (when connected), and persists the outbox. */
  flush(): void {
    const conn = this.conn;
    if (!conn.isReady) {
      this.#saveOutbox();
      return;
    }
    for (const e of this.state.sendable()) {
      const id = conn.nextId();
      this.state.markSending(e.client_id, id);
      conn
        .request(
          { type: 'send', conversation: e.conversation, client_id: e.client_id, body: e.body, ...(e.reply_to ? { reply_to: e.reply_to } : {}) },
          { id },
        )
        .then((f) => {
          const r = this.state.applyAck(f.message, { viewing: true });
          this.#added(f.message, r);
          this.#saveOutbox();
          this.#changed();
        })
        .catch((err: unknown) => {
          const code = err instanceof RequestError ? err.code : 'internal';
          // Disconnected: the entry went back to the queue and is resent
          // with the same client_id after the next hello. Rate limits and a
          // busy server are retried on their own a few times; anything else
          // waits for retry() or discard().
          if (code !== 'disconnected') {
            const again = this.state.sendFailed(e.client_id, code);
            if (again != null) this.#flushLater(again);
            else this.#rejectWaiter(e.client_id, code);
          }
          this.#saveOutbox();
          this.#changed();
        });
    }
    this.#saveOutbox();
  }

  /** Sends a failed entry again with its same client_id. */
  retry(clientId: string): OutboxEntry | null {
    const e = this.state.retry(clientId);
    if (e) this.flush();
    this.#changed();
    return e;
  }

  /** Gives up on an unsent entry. */
  discard(clientId: string): boolean {
    const ok = this.state.discard(clientId);
    this.#rejectWaiter(clientId, 'discarded');
    this.#saveOutbox();
    this.#changed();
    return ok;
  }

  #flushLater(ms: number): void {
    if (this.#flushTimer) this.#clearTimeout(this.#flushTimer);
    this.#flushTimer = this.#setTimeout(() => {
      this.#flushTimer = null;
      this.flush();
    }, ms);
  }

  #saveOutbox(): void {
    this.#o.onOutbox?.(this.state.exportOutbox());
  }

  #rejectWaiter(clientId: string, code: string): void {
    const w = this.#waiters.get(clientId);
    if (!w) return;
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
  edit(convId: ID, messageId: ID, body: string): Promise<Change> {
    if (!validBody(body)) return Promise.reject(new RequestError('invalid_message', 'a body is 1–4096 characters, not only white space'));
    return this.#change({ type: 'edit', conversation: convId, message_id: messageId, body, client_id: this.#clientId() });
  }

  /** Deletes one of my messages for everyone. Resolves with the stored change (see edit). */
  delete(convId: ID, messageId: ID): Promise<Change> {
    return this.#change({ type: 'delete', conversation: convId, message_id: messageId, client_id: this.#clientId() });
  }

  /**
   * Toggles my reaction with an emoji on a message: the change's `on` says
   * whether it was added or taken back. Resolves with the stored change.
   */
  react(convId: ID, messageId: ID, emoji: string): Promise<Change> {
    if (!validEmoji(emoji)) return Promise.reject(new RequestError('invalid_message', 'not an emoji'));
    return this.#change({ type: 'react', conversation: convId, message_id: messageId, emoji, client_id: this.#clientId() });
  }

  #clientId(): string {
    return newClientId(this.#now, this.#o.random);
  }

  /**
   * Sends a change request and applies its ack. A busy server, a timeout or
   * a lost connection is retried a few times with the same client_id (the
   * server stores a change once per client_id), waiting for the link to
   * come back; other errors reject at once.
   */
  async #change(frame: RequestFrame<'edit' | 'delete' | 'react'>): Promise<Change> {
    for (let tries = 1; ; tries++) {
      try {
        const ack = (await this.conn.request(frame)) as ChangeAck;
        this.state.applyChange(ack.change, { cursor: false });
        this.#changed();
        return ack.change;
      } catch (e) {
        const code = e instanceof RequestError ? e.code : 'internal';
        if (!(RETRYABLE_SEND_ERRORS.has(code) || code === 'disconnected') || tries >= AUTO_SEND_TRIES) throw e;
        const cap = Math.min(8000, 500 * 2 ** (tries - 1));
        await new Promise<void>((r) => this.#setTimeout(r, Math.round(cap / 2 + (this.#o.random ?? Math.random)() * (cap / 2))));
      }
    }
  }

  /**
   * Pages `changes after` a conversation's cursor until none remain,
   * applying each (its message as it is now replaces an older copy). Runs on
   * its own after every hello, once that conversation's history catch-up is
   * done; a later hello resumes an interrupted one.
   */
  async catchUpChanges(convId: ID, after: ID): Promise<CatchUpOutcome> {
    let cursor = after;
    const limit = Math.min(this.#o.catchUpLimit ?? MAX_HISTORY_LIMIT, MAX_HISTORY_LIMIT);
    for (;;) {
      let res;
      try {
        res = await this.conn.request({ type: 'changes', conversation: convId, after: cursor, limit });
      } catch (e) {
        const notFound = e instanceof RequestError && e.code === 'not_found';
        if (notFound) this.state.changesCaughtUp(convId);
        return this.#changesDone(convId, notFound ? 'not_found' : 'interrupted');
      }
      this.state.applyChangesPage(convId, res.changes, res.next_after);
      this.#changed();
      if (res.next_after == null || !this.state.conv(convId)) return this.#changesDone(convId, 'done');
      cursor = res.next_after;
    }
  }

  #changesDone(convId: ID, outcome: CatchUpOutcome): CatchUpOutcome {
    this.#o.onChangesCaughtUp?.(convId, outcome);
    return outcome;
  }

  /**
   * History first, then changes (from where the hello found the changes
   * cursor): a change to a message the history pages bring is then applied
   * to it.
   */
  async #catchUpAll(convId: ID, after: ID): Promise<void> {
    const outcome = await this.catchUp(convId, after);
    if (outcome === 'reload') this.state.changesCaughtUp(convId);
    const from = this.state.conv(convId)?.changesBehind;
    if (outcome === 'done' && from) await this.catchUpChanges(convId, from);
  }

  // ------------------------------------------------------------ typing, read

  /** Says `typing` in a conversation, at most once every few seconds. Returns whether a frame went out. */
  typing(convId: ID): boolean {
    if (!this.conn.isReady) return false;
    let t = this.#typing.get(convId);
    if (!t) {
      t = new Throttle(TYPING_SEND_EVERY_MS, this.#now);
      this.#typing.set(convId, t);
    }
    return t.take() && this.conn.send({ type: 'typing', conversation: convId });
  }

  /** Lets the next typing() of a conversation (or of all) go out at once (after a send). */
  resetTyping(convId?: ID): void {
    if (convId == null) this.#typing.clear();
    else this.#typing.delete(convId);
  }

  /** Marks a conversation read up to its newest message and tells the server. Returns the ID marked, or null. */
  markRead(convId: ID): ID | null {
    if (!this.conn.isReady) return null;
    const msgId = this.state.markRead(convId);
    if (msgId) {
      this.conn.send({ type: 'read', conversation: convId, message_id: msgId });
      this.#changed();
    }
    return msgId;
  }

  // ------------------------------------------------------------ history

  /** Loads the newest page of a conversation over HTTP into the state. */
  async loadNewest(convId: ID, limit = 50): Promise<{ added: number } | null> {
    const res = await this.api.messages(convId, { limit });
    return this.#applyBefore(convId, res.messages, res.next_before);
  }

  /** Loads the page older than what the state holds. Returns null when nothing older remains. */
  async loadOlder(convId: ID, limit = 50): Promise<{ added: number } | null> {
    const rec = this.state.conv(convId);
    if (!rec || !this.state.hasOlder(convId)) return null;
    const before = rec.nextBefore || this.state.oldestLoadedId(convId);
    if (!before) return null;
    const res = await this.api.messages(convId, { before, limit });
    return this.#applyBefore(convId, res.messages, res.next_before);
  }

  #applyBefore(convId: ID, messages: Message[], nextBefore: ID | null): { added: number } | null {
    const rec = this.state.conv(convId);
    const known = new Set(rec ? rec.messages.map((m) => m.id) : []);
    const r = this.state.applyHistoryBefore(convId, messages, nextBefore);
    if (r && r.added) for (const m of messages) if (!known.has(m.id)) this.#added(m, { added: true }), known.add(m.id);
    this.#changed();
    return r;
  }

  /**
   * Fills the gap of a conversation after a reconnect: `history` after its
   * newest known message, page by page, until the server says none remain.
   * Runs on its own after every hello; call it only for a conversation the
   * state does not track.
   */
  async catchUp(convId: ID, after: ID): Promise<CatchUpOutcome> {
    let cursor = after;
    const limit = Math.min(this.#o.catchUpLimit ?? MAX_HISTORY_LIMIT, MAX_HISTORY_LIMIT);
    for (let page = 1; ; page++) {
      let res;
      try {
        res = await this.conn.request({ type: 'history', conversation: convId, after: cursor, limit });
      } catch (e) {
        // Disconnected: the next hello plans a new catch-up.
        const notFound = e instanceof RequestError && e.code === 'not_found';
        if (notFound) this.state.convs.delete(convId);
        this.#changed();
        return this.#caughtUp(convId, notFound ? 'not_found' : 'interrupted');
      }
      const viewing = this.#o.viewing?.(convId) ?? false;
      const rec = this.state.conv(convId);
      if (!rec) return this.#caughtUp(convId, 'done');
      // Added one by one so that every new message is reported once; then
      // the state decides what comes next (and may drop a gap too long).
      for (const m of res.messages || []) this.#added(m, this.state.addMessage(m, { viewing }));
      const maxPages = rec.tracked ? Infinity : MAX_CATCHUP_PAGES;
      const step: CatchUpStep = this.state.applyHistoryAfter(convId, [], res.next_after, page, { viewing, maxPages });
      this.#changed();
      if ('reload' in step) return this.#caughtUp(convId, 'reload');
      if ('done' in step) return this.#caughtUp(convId, 'done');
      cursor = step.next;
    }
  }

  #caughtUp(convId: ID, outcome: CatchUpOutcome): CatchUpOutcome {
    this.#o.onCatchUp?.(convId, outcome);
    return outcome;
  }

  // ------------------------------------------------------------ frames

  #onFrame(f: ServerFrame): void {
    const st = this.state;
    const o = this.#o;
    switch (f.type) {
      case 'hello': {
        const plan = st.applyHello(f);
        for (const p of plan) void this.#catchUpAll(p.conversation, p.after);
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

  #added(m: Message | undefined, r: AddResult | { added: boolean }): void {
    if (!m) return;
    if (r.added) this.#o.onMessage?.(m);
    const me = this.state.me;
    if (me && m.sender === me.id && m.client_id) {
      const w = this.#waiters.get(m.client_id);
      if (w && !this.state.outbox.has(m.client_id)) {
        this.#waiters.delete(m.client_id);
        w.resolve(m);
      }
    }
  }

  #changed(): void {
    this.#o.onChange?.();
  }
}
