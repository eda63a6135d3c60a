// The HTTP half of the protocol (/api/v1), typed from the endpoint table in
// protocol.ts. `fetch` is injected or taken from globalThis.

import {
  API_PREFIX,
  ENDPOINTS,
  type Conversation,
  type EndpointAnswer,
  type EndpointArgs,
  type EndpointName,
  type HistoryAfterAnswer,
  type HistoryBeforeAnswer,
  type ID,
  type User,
  type AuthAnswer,
  type SessionInfo,
  type WsTicketAnswer,
} from './protocol.js';

/** What the library needs of fetch's answer. */
export interface FetchResponseLike {
  ok: boolean;
  status: number;
  text(): Promise<string>;
}

export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<FetchResponseLike>;

/** An HTTP call failed: `status` 0 and code 'network' when the server was not reached. */
export class ApiError extends Error {
  status: number;
  code: string;
  constructor(status: number, code?: string, message?: string) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || (status === 401 ? 'unauthorized' : 'http_' + status);
  }
}

export interface ApiOptions {
  /** Origin of the server, e.g. "https://chat.example"; '' for the page's own. */
  base?: string;
  token?: string | null;
  fetch?: FetchLike;
  /** A 401 to a call made with a token that a refresh could not cure: the session is over. */
  onUnauthorized?: (e: ApiError) => void;
  /**
   * Renews `token` after a 401 (see Session.refresh): resolves true when a
   * new token is in place (the call is retried once with it), false when the
   * session is over; a rejection (the network) fails the call and keeps the
   * session. The token that was refused is passed, so a refresh that
   * another caller already did is not repeated.
   */
  refresh?: (refused: string) => Promise<boolean>;
}

function globalFetch(): FetchLike {
  return (url, init) => {
    const f = (globalThis as { fetch?: FetchLike }).fetch;
    if (!f) return Promise.reject(new TypeError('no fetch: pass one'));
    return f(url, init);
  };
}

export class Api {
  base: string;
  token: string | null;
  fetch: FetchLike;
  onUnauthorized: (e: ApiError) => void;
  refresh: ((refused: string) => Promise<boolean>) | null;

  constructor({ base = '', token = null, fetch, onUnauthorized = () => {}, refresh }: ApiOptions = {}) {
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
  async call<T = unknown>(method: string, path: string, body?: unknown, { auth = true }: { auth?: boolean } = {}): Promise<T> {
    const used = this.token;
    try {
      return await this.#once<T>(method, path, body, auth);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401 || !auth || !used) throw e;
      if (this.refresh) {
        let renewed: boolean;
        try {
          renewed = await this.refresh(used);
        } catch {
          throw e; // the network: the session may be fine
        }
        if (renewed && this.token && this.token !== used) {
          try {
            return await this.#once<T>(method, path, body, auth);
          } catch (e2) {
            if (e2 instanceof ApiError && e2.status === 401 && this.token) this.onUnauthorized(e2);
            throw e2;
          }
        }
      }
      this.onUnauthorized(e);
      throw e;
    }
  }

  async #once<T>(method: string, path: string, body: unknown, auth: boolean): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token && auth) headers.Authorization = `Bearer ${this.token}`;
    let res: FetchResponseLike;
    try {
      res = await this.fetch(this.base + API_PREFIX + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server');
    }
    let data: unknown = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(res.status, err && err.code, err && err.message);
    }
    return data as T;
  }

  /** Calls one endpoint of the table in protocol.ts. */
  endpoint<K extends EndpointName>(name: K, args: EndpointArgs<K>): Promise<EndpointAnswer<K>> {
    const spec = ENDPOINTS[name];
    const a = args as { params?: Record<string, string>; query?: Record<string, string | number | undefined>; body?: unknown };
    let path: string = spec.path.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(a.params?.[k] ?? ''));
    if (a.query) {
      // encodeURIComponent rather than URLSearchParams, which writes a space as '+'.
      const qs = Object.entries(a.query)
        .filter(([, v]) => v !== undefined && v !== null && v !== '')
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
        .join('&');
      if (qs) path += '?' + qs;
    }
    return this.call(spec.method, path, a.body, { auth: spec.auth });
  }

  signup(username: string, password: string, displayName?: string, device?: string): Promise<AuthAnswer> {
    const body: EndpointArgs<'signup'>['body'] = { username, password };
    if (displayName) body.display_name = displayName;
    if (device) body.device = device;
    return this.endpoint('signup', { body });
  }

  /** `device` names the session in the sessions list (default: the User-Agent). */
  login(username: string, password: string, device?: string): Promise<AuthAnswer> {
    const body: EndpointArgs<'login'>['body'] = { username, password };
    if (device) body.device = device;
    return this.endpoint('login', { body });
  }

  // ------------------------------------------------------------ sessions (extension)

  /** Trades a refresh token for a new pair (POST /token); the one presented is retired. */
  refreshToken(refreshToken: string): Promise<AuthAnswer> {
    return this.endpoint('token', { body: { refresh_token: refreshToken } });
  }

  /** Ends this session on the server, or with `all` every session of the user. */
  async logout(all = false): Promise<void> {
    await this.endpoint('logout', { query: all ? { all: 'true' } : {} });
  }

  /** Where the user is logged in, oldest first; `current` marks this one. */
  async sessions(): Promise<SessionInfo[]> {
    return (await this.endpoint('sessions', {})).sessions ?? [];
  }

  /** Ends one of the user's sessions (another device). */
  async endSession(id: string): Promise<void> {
    await this.endpoint('endSession', { params: { id } });
  }

  /** Changes the password; every other session of the user ends. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    await this.endpoint('password', { body: { current_password: currentPassword, new_password: newPassword } });
  }

  /** A single-use credential for opening the WebSocket (`/ws?ticket=`), valid 30 s. */
  wsTicket(): Promise<WsTicketAnswer> {
    return this.endpoint('wsTicket', {});
  }

  /** Removes every push registration of the caller (DELETE /devices): part of logging out. */
  removeDevices(): Promise<{ removed: number }> {
    return this.endpoint('removeDevices', {});
  }

  me(): Promise<User> {
    return this.endpoint('me', {});
  }

  searchUsers(prefix: string): Promise<{ users: User[] }> {
    return this.endpoint('users', { query: { prefix } });
  }

  conversations(limit?: number): Promise<{ conversations: Conversation[] }> {
    return this.endpoint('conversations', { query: { limit } });
  }

  direct(username: string): Promise<Conversation> {
    return this.endpoint('direct', { body: { username } });
  }

  createGroup(title: string, members: string[]): Promise<Conversation> {
    return this.endpoint('createGroup', { body: { title, members } });
  }

  addMember(convId: ID, username: string): Promise<Conversation> {
    return this.endpoint('addMember', { params: { id: convId }, body: { username } });
  }

  /** One page of history: {before} for older (newest first), {after} for newer (oldest first). */
  messages(convId: ID, opts: { after: ID; limit?: number }): Promise<HistoryAfterAnswer>;
  messages(convId: ID, opts?: { before?: ID; limit?: number }): Promise<HistoryBeforeAnswer>;
  messages(convId: ID, { before, after, limit }: { before?: ID; after?: ID; limit?: number } = {}): Promise<HistoryBeforeAnswer | HistoryAfterAnswer> {
    if (after) return this.endpoint('messagesAfter', { params: { id: convId }, query: { after, limit } });
    return this.endpoint('messagesBefore', { params: { id: convId }, query: { before, limit } });
  }
}
