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
  /** A 401 to a call made with a token: the session is over. */
  onUnauthorized?: (e: ApiError) => void;
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

  constructor({ base = '', token = null, fetch, onUnauthorized = () => {} }: ApiOptions = {}) {
    this.base = base;
    this.token = token;
    this.fetch = fetch ?? globalFetch();
    this.onUnauthorized = onUnauthorized;
  }

  /** Calls a method and path under /api/v1 with an optional JSON body. */
  async call<T = unknown>(method: string, path: string, body?: unknown, { auth = true }: { auth?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
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
      const e = new ApiError(res.status, err && err.code, err && err.message);
      if (res.status === 401 && this.token && auth) this.onUnauthorized(e);
      throw e;
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

  signup(username: string, password: string, displayName?: string): Promise<AuthAnswer> {
    const body: EndpointArgs<'signup'>['body'] = { username, password };
    if (displayName) body.display_name = displayName;
    return this.endpoint('signup', { body });
  }

  login(username: string, password: string): Promise<AuthAnswer> {
    return this.endpoint('login', { body: { username, password } });
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
