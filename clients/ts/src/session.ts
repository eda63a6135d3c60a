// Sessions (docs/PROTOCOL.md, "Sessions"): a short-lived access token
// (15 minutes by default) renewed with a single-use refresh token. Session
// keeps the pair, renews the access token shortly before it expires and when
// the server refuses it (an HTTP 401, close code 4001), and shares one
// refresh in flight among every caller that needs it: the server ends the
// whole session when one refresh token is presented twice, so two refreshes
// must never race. Where the tokens are kept is the app's business, as the
// outbox is: `onTokens` hands them over, `load` reads them back, and `lock`
// serialises refreshes across processes that share them (a browser's tabs:
// the Web Locks API).

import { ApiError, type Api } from './api.js';
import type { ClearTimeout, SetTimeout, TimerHandle } from './connection.js';
import type { AuthAnswer } from './protocol.js';

/** The tokens as an app stores them. */
export interface SavedTokens {
  token: string;
  refresh_token: string | null;
  /** When the access token expires, in ms since the epoch; null when unknown. */
  expires_at: number | null;
}

export interface SessionOptions {
  /** Makes the POST /token calls; its `token` is kept in step and its `refresh` set to this session's. */
  api: Api;
  token: string;
  refreshToken?: string | null;
  /** Seconds the access token lasts from now (the login answer's `expires_in`). */
  expiresIn?: number;
  /** Or when it expires, in ms since the epoch (from SavedTokens). */
  expiresAt?: number | null;
  /**
   * New tokens (after every refresh): persist them; the refresh token is a
   * secret. A promise is waited for inside the lock, so the next process
   * to take it finds them stored.
   */
  onTokens?: (tokens: SavedTokens) => void | Promise<void>;
  /** The timer's refresh was refused: the session is over (log in again). */
  onExpired?: () => void;
  /**
   * Runs a refresh under a lock shared by every process that shares the
   * tokens (in a browser: `(fn) => navigator.locks.request('chat.refresh', fn)`).
   * Default: none (this object alone serialises its refreshes).
   */
  lock?: <T>(fn: () => Promise<T>) => Promise<T>;
  /**
   * Reads the stored tokens, inside the lock: when another process already
   * renewed the token this one holds, its tokens are adopted rather than
   * presenting a retired refresh token. null: the tokens were removed (a
   * log out elsewhere), so the session is over. It must see what another
   * process stored before it released the lock: in a browser that rules
   * out localStorage, which Chromium propagates between tabs late; use
   * IndexedDB (a promise is fine).
   */
  load?: () => SavedTokens | null | Promise<SavedTokens | null>;
  /** How long before expiry the timer renews; default a fifth of the lifetime, at most 60 s. */
  refreshBeforeMs?: number;
  /** Wait before the timer tries again after a refresh failed for want of the network; default 5 s. */
  retryMs?: number;
  now?: () => number;
  setTimeout?: SetTimeout;
  clearTimeout?: ClearTimeout;
}

/** Default lifetime of an access token when the server did not say (docs/PROTOCOL.md). */
export const DEFAULT_ACCESS_TTL_MS = 15 * 60 * 1000;
/** The most the timer renews ahead of expiry. */
export const MAX_REFRESH_AHEAD_MS = 60 * 1000;

export class Session {
  #o: SessionOptions;
  #api: Api;
  #token: string;
  #refreshToken: string | null;
  #expiresAt: number | null;
  #ttlMs: number;
  #inflight: Promise<boolean> | null = null;
  #timer: TimerHandle | null = null;
  #running = false;
  #ended = false;
  #now: () => number;
  #setTimeout: SetTimeout;
  #clearTimeout: ClearTimeout;

  constructor(o: SessionOptions) {
    this.#o = o;
    this.#api = o.api;
    this.#now = o.now ?? Date.now;
    const g = globalThis as unknown as { setTimeout: SetTimeout; clearTimeout: ClearTimeout };
    this.#setTimeout = o.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms));
    this.#clearTimeout = o.clearTimeout ?? ((h) => g.clearTimeout(h));
    this.#token = o.token;
    this.#refreshToken = o.refreshToken ?? null;
    this.#expiresAt = o.expiresIn ? this.#now() + o.expiresIn * 1000 : (o.expiresAt ?? null);
    this.#ttlMs = o.expiresIn ? o.expiresIn * 1000 : this.#lifetimeLeft() ?? DEFAULT_ACCESS_TTL_MS;
    this.#api.token = this.#token;
    this.#api.refresh = (refused) => this.refresh(refused);
  }

  get token(): string {
    return this.#token;
  }

  get refreshToken(): string | null {
    return this.#refreshToken;
  }

  /** When the access token expires (ms since the epoch), or null when unknown. */
  get expiresAt(): number | null {
    return this.#expiresAt;
  }

  /** The tokens as they are now, for storage. */
  get saved(): SavedTokens {
    return { token: this.#token, refresh_token: this.#refreshToken, expires_at: this.#expiresAt };
  }

  /** Renews the access token ahead of its expiry from now on. */
  start(): void {
    if (this.#ended) return;
    this.#running = true;
    this.#arm();
  }

  /** Stops the timer; a refresh in flight no longer changes anything (log out). Safe twice. */
  stop(): void {
    this.#running = false;
    this.#ended = true;
    if (this.#timer != null) this.#clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * Renews the access token with the refresh token. Resolves true when a new
   * access token is in place (this.token, and the Api's), false when the
   * session is over (no refresh token, or the server refused it: log in
   * again); rejects on anything else (the network, a busy server), which
   * leaves the session as it was. Callers at the same time share one call.
   * `refused`, the token a server refused: when it is no longer the current
   * one, someone already renewed it and nothing is done.
   */
  refresh(refused?: string): Promise<boolean> {
    if (this.#ended) return Promise.resolve(false);
    if (refused !== undefined && refused !== this.#token) return Promise.resolve(true);
    if (this.#inflight) return this.#inflight;
    const used = this.#token;
    const run = () => this.#refresh(used);
    const p = (this.#o.lock ? this.#o.lock(run) : run()).finally(() => {
      if (this.#inflight === p) this.#inflight = null;
    });
    this.#inflight = p;
    return p;
  }

  async #refresh(used: string): Promise<boolean> {
    if (this.#ended) return false;
    let rt = this.#refreshToken;
    if (this.#o.load) {
      const stored = await this.#o.load();
      if (this.#ended) return false;
      if (!stored || !stored.token) return false; // logged out elsewhere
      if (stored.token !== used) {
        // Another process renewed it while this one waited for the lock:
        // its refresh token is the live one now, and ours is retired.
        this.#adopt(stored.token, stored.refresh_token, stored.expires_at, null);
        return true;
      }
      rt = stored.refresh_token ?? rt;
    }
    if (!rt) return false;
    let res: AuthAnswer;
    try {
      res = await this.#api.refreshToken(rt);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return false;
      throw e;
    }
    if (this.#ended) return false;
    const ttl = res.expires_in ? res.expires_in * 1000 : null;
    this.#adopt(res.token, res.refresh_token ?? null, ttl ? this.#now() + ttl : null, ttl);
    await this.#o.onTokens?.(this.saved);
    return true;
  }

  #adopt(token: string, refreshToken: string | null, expiresAt: number | null, ttlMs: number | null): void {
    this.#token = token;
    this.#refreshToken = refreshToken;
    this.#expiresAt = expiresAt;
    // Tokens another process stored say when they expire, not for how
    // long they were issued: what is left stands in for the lifetime, so a
    // short one is not renewed at once as if it were a 15-minute one.
    const t = ttlMs ?? this.#lifetimeLeft();
    if (t) this.#ttlMs = t;
    this.#api.token = token;
    this.#arm();
  }

  #lifetimeLeft(): number | null {
    if (this.#expiresAt == null) return null;
    const left = this.#expiresAt - this.#now();
    return left > 0 ? left : null;
  }

  /** Schedules the next renewal: a little before the access token expires. */
  #arm(delay?: number): void {
    if (this.#timer != null) this.#clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#running || this.#ended || !this.#refreshToken) return;
    if (delay === undefined) {
      if (this.#expiresAt == null) return; // unknown: a 401 will tell
      const ahead = this.#o.refreshBeforeMs ?? Math.min(MAX_REFRESH_AHEAD_MS, this.#ttlMs / 5);
      delay = Math.max(0, this.#expiresAt - ahead - this.#now());
    }
    this.#timer = this.#setTimeout(() => {
      this.#timer = null;
      this.refresh().then(
        (ok) => {
          if (!ok && !this.#ended) this.#o.onExpired?.();
        },
        () => this.#arm(this.#o.retryMs ?? 5000),
      );
    }, delay);
  }
}
