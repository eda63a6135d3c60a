// The WebSocket link: connects, reconnects with backoff and jitter, matches
// answers to requests by `id`, and notices a dead link with application
// pings. The WebSocket class and the timers are injected (or taken from
// globalThis), so the same code runs in a browser, in Node with the `ws`
// package and in React Native, and tests can drive it with fakes.

import { Backoff, drainDelay } from './backoff.js';
import {
  CLOSE_DRAINING,
  CLOSE_TOKEN_EXPIRED,
  type AnswerOf,
  type ClientFrame,
  type RequestFrame,
  type RequestId,
  type RequestType,
  type ServerFrame,
} from './protocol.js';

export { CLOSE_DRAINING, CLOSE_TOKEN_EXPIRED };

/** What the library needs of a WebSocket: the browser's, `ws`'s and React Native's all have it. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketClass = new (url: string) => WebSocketLike;

export type TimerHandle = unknown;
export type SetTimeout = (fn: () => void, ms: number) => TimerHandle;
export type ClearTimeout = (handle: TimerHandle) => void;

export type ConnectionStatus = 'connecting' | 'online' | 'offline';

export interface StatusInfo {
  /** The close code that ended the last socket. */
  code?: number;
  /** Milliseconds until the next attempt. */
  retryIn?: number;
}

/** A request failed: the server's `error` code, or 'disconnected' or 'timeout'. */
export class RequestError extends Error {
  code: string;
  constructor(code: string, message?: string) {
    super(message || code);
    this.name = 'RequestError';
    this.code = code;
  }
}

export interface ConnectionOptions {
  /**
   * The /ws URL with its credential, called for every attempt (so a
   * refreshed token is used); a promise when the credential is fetched
   * first, e.g. a single-use ticket (`?ticket=`, POST /ws-ticket). A
   * rejected promise counts as a failed attempt and is retried with backoff.
   */
  url: () => string | Promise<string>;
  /** The WebSocket class; default globalThis.WebSocket. */
  WebSocket?: WebSocketClass;
  /** Every frame that is not the answer to a waiting request; hello included. */
  onFrame: (frame: ServerFrame) => void;
  onStatus?: (status: ConnectionStatus, info?: StatusInfo) => void;
  /** Close code 4001: the token expired or its session ended; the connection stops (refresh, then start() again). */
  onAuthExpired?: () => void;
  /** A socket closed before its hello (perhaps a refused token: ask the HTTP API). */
  onConnectFailed?: () => void;
  setTimeout?: SetTimeout;
  clearTimeout?: ClearTimeout;
  random?: () => number;
  /** Default: 0.5 s doubling to 30 s, with jitter. */
  backoff?: Backoff;
  /** Quiet time before an application ping; default 25 s. */
  pingEveryMs?: number;
  /** A ping unanswered this long drops the socket; default 10 s. */
  pongTimeoutMs?: number;
  /** Default timeout of request(); default 15 s. */
  requestTimeoutMs?: number;
}

interface Waiting {
  resolve: (f: ServerFrame) => void;
  reject: (e: RequestError) => void;
  timer: TimerHandle;
}

/**
 * Stops a socket's events from reaching the connection. The error handler
 * stays a no-op rather than null: Node's `ws` throws an 'error' that has no
 * listener (closing a socket still connecting emits one).
 */
function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
}

/** The host's timers: every runtime the library targets has them, though ES2022's lib does not declare them. */
function timers(): { setTimeout: SetTimeout; clearTimeout: ClearTimeout } {
  return globalThis as unknown as { setTimeout: SetTimeout; clearTimeout: ClearTimeout };
}

function globalWebSocket(): WebSocketClass {
  const WS = (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (!WS) throw new Error('no WebSocket class: pass one (in Node 20, the ws package\'s WebSocket)');
  return WS;
}

export class Connection {
  url: () => string | Promise<string>;
  WS: WebSocketClass;
  onFrame: (frame: ServerFrame) => void;
  onStatus: (status: ConnectionStatus, info?: StatusInfo) => void;
  onAuthExpired: () => void;
  onConnectFailed: () => void;
  setTimeout: SetTimeout;
  clearTimeout: ClearTimeout;
  random: () => number;
  backoff: Backoff;
  pingEveryMs: number;
  pongTimeoutMs: number;
  requestTimeoutMs: number;
  ws: WebSocketLike | null = null;
  status: ConnectionStatus = 'offline';
  stopped = true;
  /** Whether hello arrived on the current socket. */
  ready = false;
  seq = 0;
  waiting = new Map<RequestId, Waiting>();
  retryTimer: TimerHandle | null = null;
  pingTimer: TimerHandle | null = null;
  pongTimer: TimerHandle | null = null;
  /** Counts attempts: a URL that arrives after a newer attempt or a stop is dropped. */
  #attempt = 0;
  /** An attempt is waiting for its URL (a ticket being fetched). */
  opening = false;

  constructor({
    url,
    WebSocket,
    onFrame,
    onStatus = () => {},
    onAuthExpired = () => {},
    onConnectFailed = () => {},
    setTimeout: st = (fn, ms) => timers().setTimeout(fn, ms),
    clearTimeout: ct = (h) => timers().clearTimeout(h),
    random = Math.random,
    backoff = new Backoff({ random }),
    pingEveryMs = 25000,
    pongTimeoutMs = 10000,
    requestTimeoutMs = 15000,
  }: ConnectionOptions) {
    this.url = url;
    this.WS = WebSocket ?? globalWebSocket();
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onAuthExpired = onAuthExpired;
    this.onConnectFailed = onConnectFailed;
    this.setTimeout = st;
    this.clearTimeout = ct;
    this.random = random;
    this.backoff = backoff;
    this.pingEveryMs = pingEveryMs;
    this.pongTimeoutMs = pongTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.#open();
  }

  /** Closes for good (log out); waiting requests fail with 'disconnected'. */
  stop(): void {
    this.stopped = true;
    this.#attempt++;
    this.opening = false;
    this.#clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, 'bye');
      } catch {
        // Already closing.
      }
    }
    this.#failWaiting('disconnected');
    this.#setStatus('offline');
  }

  /** Reconnects at once if waiting for a retry (e.g. the device came back online). */
  nudge(): void {
    if (this.stopped || this.ws || this.opening) return;
    if (this.retryTimer) this.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.#open();
  }

  /** Drops the current socket and reconnects (e.g. a ping went unanswered). */
  restart(): void {
    if (this.stopped) return;
    const ws = this.ws;
    if (ws) {
      this.#lost(ws, { code: 1006 });
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Sends a frame that expects no answer. Returns false when not connected. */
  send(frame: ClientFrame): boolean {
    if (!this.ready || !this.ws) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  nextId(): string {
    this.seq++;
    return `r${this.seq}`;
  }

  /**
   * Sends a request with a fresh `id` and resolves with the answer carrying
   * that id (an `ack` for `send`, a `history` for `history`, a `pong` for
   * `ping`); rejects with RequestError(code) on an `error` answer, and with
   * code 'disconnected' or 'timeout'.
   */
  request<T extends RequestType>(
    frame: RequestFrame<T>,
    { id = this.nextId(), timeoutMs = this.requestTimeoutMs }: { id?: RequestId; timeoutMs?: number } = {},
  ): Promise<AnswerOf<T>> {
    return new Promise((resolve, reject) => {
      if (!this.ready || !this.ws) {
        reject(new RequestError('disconnected'));
        return;
      }
      const timer = this.setTimeout(() => {
        if (this.waiting.get(id)?.timer === timer) {
          this.waiting.delete(id);
          reject(new RequestError('timeout'));
        }
      }, timeoutMs);
      this.waiting.set(id, { resolve: resolve as (f: ServerFrame) => void, reject, timer });
      try {
        this.ws.send(JSON.stringify({ ...frame, id }));
      } catch {
        this.clearTimeout(timer);
        this.waiting.delete(id);
        reject(new RequestError('disconnected'));
      }
    });
  }

  #setStatus(s: ConnectionStatus, info?: StatusInfo): void {
    if (this.status === s && !info) return;
    this.status = s;
    this.onStatus(s, info);
  }

  #open(): void {
    if (this.stopped) return;
    this.retryTimer = null;
    this.ready = false;
    this.#setStatus('connecting');
    const attempt = ++this.#attempt;
    let url: string | Promise<string>;
    try {
      url = this.url();
    } catch {
      this.#schedule(this.backoff.next());
      return;
    }
    if (typeof url === 'string') {
      this.#connect(url);
      return;
    }
    // The credential is fetched first: meanwhile a nudge must not start a
    // second attempt, and a stop or a newer attempt makes this one moot.
    this.opening = true;
    url.then(
      (u) => {
        if (attempt !== this.#attempt) return;
        this.opening = false;
        if (!this.stopped && !this.ws) this.#connect(u);
      },
      () => {
        if (attempt !== this.#attempt) return;
        this.opening = false;
        if (!this.stopped && !this.ws) {
          const delay = this.backoff.next();
          this.#setStatus('offline', { retryIn: delay });
          this.#schedule(delay);
        }
      },
    );
  }

  #connect(url: string): void {
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch {
      this.#schedule(this.backoff.next());
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.#onMessage(ws, ev);
    ws.onclose = (ev) => this.#lost(ws, ev);
    ws.onerror = () => {
      // A close event follows; nothing to do here.
    };
  }

  #onMessage(ws: WebSocketLike, ev: { data: unknown }): void {
    if (ws !== this.ws) return;
    let f: ServerFrame;
    try {
      f = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
    } catch {
      return;
    }
    if (!f || typeof f.type !== 'string') return;
    this.#armPing();
    if (f.type === 'hello') {
      this.ready = true;
      this.backoff.reset();
      this.#setStatus('online');
      this.onFrame(f);
      return;
    }
    if (f.type === 'pong') {
      if (this.pongTimer) this.clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
    const id = (f as { id?: RequestId }).id;
    if (id != null && this.waiting.has(id) && f.type !== 'message') {
      const w = this.waiting.get(id)!;
      this.waiting.delete(id);
      this.clearTimeout(w.timer);
      if (f.type === 'error') w.reject(new RequestError(f.code || 'internal', f.message));
      else w.resolve(f);
      return;
    }
    this.onFrame(f);
  }

  /** Any frame proves the link alive; ping only after a quiet spell. */
  #armPing(): void {
    if (this.pingTimer) this.clearTimeout(this.pingTimer);
    this.pingTimer = this.setTimeout(() => {
      this.pingTimer = null;
      if (!this.ready) return;
      this.send({ type: 'ping', id: this.nextId() });
      if (!this.pongTimer) {
        this.pongTimer = this.setTimeout(() => {
          this.pongTimer = null;
          this.restart();
        }, this.pongTimeoutMs);
      }
    }, this.pingEveryMs);
  }

  #clearTimers(): void {
    for (const k of ['retryTimer', 'pingTimer', 'pongTimer'] as const) {
      if (this[k]) this.clearTimeout(this[k]);
      this[k] = null;
    }
  }

  #failWaiting(code: string): void {
    const w = [...this.waiting.values()];
    this.waiting.clear();
    for (const x of w) {
      this.clearTimeout(x.timer);
      x.reject(new RequestError(code));
    }
  }

  #lost(ws: WebSocketLike, ev: { code?: number } | undefined): void {
    if (ws !== this.ws) return;
    detach(ws);
    const hadHello = this.ready;
    this.ws = null;
    this.ready = false;
    this.#clearTimers();
    this.#failWaiting('disconnected');
    if (this.stopped) return;
    const code = ev && ev.code;
    if (code === CLOSE_TOKEN_EXPIRED) {
      this.stopped = true;
      this.#setStatus('offline', { code });
      this.onAuthExpired();
      return;
    }
    const delay = code === CLOSE_DRAINING ? drainDelay(this.random) : this.backoff.next();
    this.#setStatus('offline', { code, retryIn: delay });
    if (!hadHello) this.onConnectFailed();
    this.#schedule(delay);
  }

  #schedule(delay: number): void {
    if (this.stopped) return;
    if (this.retryTimer) this.clearTimeout(this.retryTimer);
    this.retryTimer = this.setTimeout(() => this.#open(), delay);
  }
}
