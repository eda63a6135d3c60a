// The HTTP half of the protocol (/api/v1), typed from the endpoint table in
// protocol.ts. `fetch` is injected or taken from globalThis.
import { API_PREFIX, ENDPOINTS, } from './protocol.js';
/** An HTTP call failed: `status` 0 and code 'network' when the server was not reached. */
export class ApiError extends Error {
    status;
    code;
    constructor(status, code, message) {
        super(message || code || `HTTP ${status}`);
        this.name = 'ApiError';
        this.status = status;
        this.code = code || (status === 401 ? 'unauthorized' : 'http_' + status);
    }
}
function globalFetch() {
    return (url, init) => {
        const f = globalThis.fetch;
        if (!f)
            return Promise.reject(new TypeError('no fetch: pass one'));
        return f(url, init);
    };
}
export class Api {
    base;
    token;
    fetch;
    onUnauthorized;
    refresh;
    constructor({ base = '', token = null, fetch, onUnauthorized = () => { }, refresh } = {}) {
        this.base = base;
        this.token = token;
        this.fetch = fetch ?? globalFetch();
        this.onUnauthorized = onUnauthorized;
        this.refresh = refresh ?? null;
    }
    /**
     * Calls a method and path under /api/v1 with an optional JSON body. With
     * `auth` (the default) the bearer token goes along, and a 401 is first
     * met with one refresh and a retry; without, no token is sent (signup,
     * login, and /token, whose refresh token is in the body).
     */
    async call(method, path, body, { auth = true } = {}) {
        const used = this.token;
        try {
            return await this.#once(method, path, body, auth);
        }
        catch (e) {
            if (!(e instanceof ApiError) || e.status !== 401 || !auth || !used)
                throw e;
            if (this.refresh) {
                let renewed;
                try {
                    renewed = await this.refresh(used);
                }
                catch {
                    throw e; // the network: the session may be fine
                }
                if (renewed && this.token && this.token !== used) {
                    try {
                        return await this.#once(method, path, body, auth);
                    }
                    catch (e2) {
                        if (e2 instanceof ApiError && e2.status === 401 && this.token)
                            this.onUnauthorized(e2);
                        throw e2;
                    }
                }
            }
            this.onUnauthorized(e);
            throw e;
        }
    }
    async #once(method, path, body, auth) {
        const headers = { Accept: 'application/json' };
        if (body !== undefined)
            headers['Content-Type'] = 'application/json';
        if (this.token && auth)
            headers.Authorization = `Bearer ${this.token}`;
        let res;
        try {
            res = await this.fetch(this.base + API_PREFIX + path, {
                method,
                headers,
                body: body === undefined ? undefined : JSON.stringify(body),
            });
        }
        catch {
            throw new ApiError(0, 'network', 'Cannot reach the server');
        }
        let data = null;
        const text = await res.text();
        if (text) {
            try {
                data = JSON.parse(text);
            }
            catch {
                data = null;
            }
        }
        if (!res.ok) {
            const err = data?.error;
            throw new ApiError(res.status, err && err.code, err && err.message);
        }
        return data;
    }
    /** Calls one endpoint of the table in protocol.ts. */
    endpoint(name, args) {
        const spec = ENDPOINTS[name];
        const a = args;
        let path = spec.path.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(a.params?.[k] ?? ''));
        if (a.query) {
            // encodeURIComponent rather than URLSearchParams, which writes a space as '+'.
            const qs = Object.entries(a.query)
                .filter(([, v]) => v !== undefined && v !== null && v !== '')
                .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
                .join('&');
            if (qs)
                path += '?' + qs;
        }
        return this.call(spec.method, path, a.body, { auth: spec.auth });
    }
    signup(username, password, displayName, device) {
        const body = { username, password };
        if (displayName)
            body.display_name = displayName;
        if (device)
            body.device = device;
        return this.endpoint('signup', { body });
    }
    /** `device` names the session in the sessions list (default: the User-Agent). */
    login(username, password, device) {
        const body = { username, password };
        if (device)
            body.device = device;
        return this.endpoint('login', { body });
    }
    // ------------------------------------------------------------ sessions (extension)
    /** Trades a refresh token for a new pair (POST /token); the one presented is retired. */
    refreshToken(refreshToken) {
        return this.endpoint('token', { body: { refresh_token: refreshToken } });
    }
    /** Ends this session on the server, or with `all` every session of the user. */
    async logout(all = false) {
        await this.endpoint('logout', { query: all ? { all: 'true' } : {} });
    }
    /** Where the user is logged in, oldest first; `current` marks this one. */
    async sessions() {
        return (await this.endpoint('sessions', {})).sessions ?? [];
    }
    /** Ends one of the user's sessions (another device). */
    async endSession(id) {
        await this.endpoint('endSession', { params: { id } });
    }
    /** Changes the password; every other session of the user ends. */
    async changePassword(currentPassword, newPassword) {
        await this.endpoint('password', { body: { current_password: currentPassword, new_password: newPassword } });
    }
    /** A single-use credential for opening the WebSocket (`/ws?ticket=`), valid 30 s. */
    wsTicket() {
        return this.endpoint('wsTicket', {});
    }
    /** Removes every push registration of the caller (DELETE /devices): part of logging out. */
    removeDevices() {
        return this.endpoint('removeDevices', {});
    }
    me() {
        return this.endpoint('me', {});
    }
    searchUsers(prefix) {
        return this.endpoint('users', { query: { prefix } });
    }
    conversations(limit) {
        return this.endpoint('conversations', { query: { limit } });
    }
    direct(username) {
        return this.endpoint('direct', { body: { username } });
    }
    createGroup(title, members) {
        return this.endpoint('createGroup', { body: { title, members } });
    }
    addMember(convId, username) {
        return this.endpoint('addMember', { params: { id: convId }, body: { username } });
    }
    messages(convId, { before, after, limit } = {}) {
        if (after)
            return this.endpoint('messagesAfter', { params: { id: convId }, query: { after, limit } });
        return this.endpoint('messagesBefore', { params: { id: convId }, query: { before, limit } });
    }
}
