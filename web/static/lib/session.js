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
import { ApiError } from './api.js';
/** Default lifetime of an access token when the server did not say (docs/PROTOCOL.md). */
export const DEFAULT_ACCESS_TTL_MS = 15 * 60 * 1000;
/** The most the timer renews ahead of expiry. */
export const MAX_REFRESH_AHEAD_MS = 60 * 1000;
export class Session {
    #o;
    #api;
    #token;
    #refreshToken;
    #expiresAt;
    #ttlMs;
    #inflight = null;
    #timer = null;
    #running = false;
    #ended = false;
    #now;
    #setTimeout;
    #clearTimeout;
    constructor(o) {
        this.#o = o;
        this.#api = o.api;
        this.#now = o.now ?? Date.now;
        const g = globalThis;
        this.#setTimeout = o.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms));
        this.#clearTimeout = o.clearTimeout ?? ((h) => g.clearTimeout(h));
        this.#token = o.token;
        this.#refreshToken = o.refreshToken ?? null;
        this.#expiresAt = o.expiresIn ? this.#now() + o.expiresIn * 1000 : (o.expiresAt ?? null);
        this.#ttlMs = o.expiresIn ? o.expiresIn * 1000 : this.#lifetimeLeft() ?? DEFAULT_ACCESS_TTL_MS;
        this.#api.token = this.#token;
        this.#api.refresh = (refused) => this.refresh(refused);
    }
    get token() {
        return this.#token;
    }
    get refreshToken() {
        return this.#refreshToken;
    }
    /** When the access token expires (ms since the epoch), or null when unknown. */
    get expiresAt() {
        return this.#expiresAt;
    }
    /** The tokens as they are now, for storage. */
    get saved() {
        return { token: this.#token, refresh_token: this.#refreshToken, expires_at: this.#expiresAt };
    }
    /** Renews the access token ahead of its expiry from now on. */
    start() {
        if (this.#ended)
            return;
        this.#running = true;
        this.#arm();
    }
    /** Stops the timer; a refresh in flight no longer changes anything (log out). Safe twice. */
    stop() {
        this.#running = false;
        this.#ended = true;
        if (this.#timer != null)
            this.#clearTimeout(this.#timer);
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
    refresh(refused) {
        if (this.#ended)
            return Promise.resolve(false);
        if (refused !== undefined && refused !== this.#token)
            return Promise.resolve(true);
        if (this.#inflight)
            return this.#inflight;
        const used = this.#token;
        const run = () => this.#refresh(used);
        const p = (this.#o.lock ? this.#o.lock(run) : run()).finally(() => {
            if (this.#inflight === p)
                this.#inflight = null;
        });
        this.#inflight = p;
        return p;
    }
    async #refresh(used) {
        if (this.#ended)
            return false;
        let rt = this.#refreshToken;
        if (this.#o.load) {
            const stored = await this.#o.load();
            if (this.#ended)
                return false;
            if (!stored || !stored.token)
                return false; // logged out elsewhere
            if (stored.token !== used) {
                // Another process renewed it while this one waited for the lock:
                // its refresh token is the live one now, and ours is retired.
                this.#adopt(stored.token, stored.refresh_token, stored.expires_at, null);
                return true;
            }
            rt = stored.refresh_token ?? rt;
        }
        if (!rt)
            return false;
        let res;
        try {
            res = await this.#api.refreshToken(rt);
        }
        catch (e) {
            if (e instanceof ApiError && e.status === 401)
                return false;
            throw e;
        }
        if (this.#ended)
            return false;
        const ttl = res.expires_in ? res.expires_in * 1000 : null;
        this.#adopt(res.token, res.refresh_token ?? null, ttl ? this.#now() + ttl : null, ttl);
        await this.#o.onTokens?.(this.saved);
        return true;
    }
    #adopt(token, refreshToken, expiresAt, ttlMs) {
        this.#token = token;
        this.#refreshToken = refreshToken;
        this.#expiresAt = expiresAt;
        // Tokens another process stored say when they expire, not for how
        // long they were issued: what is left stands in for the lifetime, so a
        // short one is not renewed at once as if it were a 15-minute one.
        const t = ttlMs ?? this.#lifetimeLeft();
        if (t)
            this.#ttlMs = t;
        this.#api.token = token;
        this.#arm();
    }
    #lifetimeLeft() {
        if (this.#expiresAt == null)
            return null;
        const left = this.#expiresAt - this.#now();
        return left > 0 ? left : null;
    }
    /** Schedules the next renewal: a little before the access token expires. */
    #arm(delay) {
        if (this.#timer != null)
            this.#clearTimeout(this.#timer);
        this.#timer = null;
        if (!this.#running || this.#ended || !this.#refreshToken)
            return;
        if (delay === undefined) {
            if (this.#expiresAt == null)
                return; // unknown: a 401 will tell
            const ahead = this.#o.refreshBeforeMs ?? Math.min(MAX_REFRESH_AHEAD_MS, this.#ttlMs / 5);
            delay = Math.max(0, this.#expiresAt - ahead - this.#now());
        }
        this.#timer = this.#setTimeout(() => {
            this.#timer = null;
            this.refresh().then((ok) => {
                if (!ok && !this.#ended)
                    this.#o.onExpired?.();
            }, () => this.#arm(this.#o.retryMs ?? 5000));
        }, delay);
    }
}
