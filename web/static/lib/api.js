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
    constructor({ base = '', token = null, fetch, onUnauthorized = () => { } } = {}) {
        this.base = base;
        this.token = token;
        this.fetch = fetch ?? globalFetch();
        this.onUnauthorized = onUnauthorized;
    }
    /** Calls a method and path under /api/v1 with an optional JSON body. */
    async call(method, path, body, { auth = true } = {}) {
        const headers = { Accept: 'application/json' };
        if (body !== undefined)
            headers['Content-Type'] = 'application/json';
        if (this.token)
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
            const e = new ApiError(res.status, err && err.code, err && err.message);
            if (res.status === 401 && this.token && auth)
                this.onUnauthorized(e);
            throw e;
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
    signup(username, password, displayName) {
        const body = { username, password };
        if (displayName)
            body.display_name = displayName;
        return this.endpoint('signup', { body });
    }
    login(username, password) {
        return this.endpoint('login', { body: { username, password } });
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
