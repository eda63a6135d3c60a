// The HTTP half of the protocol (/api/v1). `fetch` is passed in so tests
// can replace it.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || (status === 401 ? 'unauthorized' : 'http_' + status);
  }
}

export class Api {
  constructor({ base = '', token = null, fetch: f = globalThis.fetch.bind(globalThis), onUnauthorized = () => {} } = {}) {
    this.base = base;
    this.token = token;
    this.fetch = f;
    this.onUnauthorized = onUnauthorized;
  }

  async call(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await this.fetch(this.base + '/api/v1' + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach the server');
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = data && data.error;
      const e = new ApiError(res.status, err && err.code, err && err.message);
      if (res.status === 401 && this.token && path !== '/login' && path !== '/signup') this.onUnauthorized(e);
      throw e;
    }
    return data;
  }

  signup(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    return this.call('POST', '/signup', body);
  }

  login(username, password) {
    return this.call('POST', '/login', { username, password });
  }

  me() {
    return this.call('GET', '/me');
  }

  searchUsers(prefix) {
    return this.call('GET', '/users?prefix=' + encodeURIComponent(prefix));
  }

  conversations() {
    return this.call('GET', '/conversations');
  }

  direct(username) {
    return this.call('POST', '/conversations/direct', { username });
  }

  createGroup(title, members) {
    return this.call('POST', '/conversations', { title, members });
  }

  addMember(convId, username) {
    return this.call('POST', `/conversations/${encodeURIComponent(convId)}/members`, { username });
  }

  /** One page of history: {before} for older (newest first), {after} for newer (oldest first). */
  messages(convId, { before, after, limit } = {}) {
    const q = new URLSearchParams();
    if (before) q.set('before', before);
    if (after) q.set('after', after);
    if (limit) q.set('limit', String(limit));
    const qs = q.toString();
    return this.call('GET', `/conversations/${encodeURIComponent(convId)}/messages${qs ? '?' + qs : ''}`);
  }
}

/** A user-facing sentence for an API error. */
export function describeError(e) {
  switch (e && e.code) {
    case 'username_taken':
      return 'That username is taken.';
    case 'unauthorized':
      return 'Wrong username or password.';
    case 'not_found':
      return 'Not found.';
    case 'rate_limited':
      return 'Too many attempts. Wait a moment and try again.';
    case 'unavailable':
      return 'The server is busy. Try again in a moment.';
    case 'network':
      return 'Cannot reach the server. Check your connection.';
    case 'invalid_request':
      return (e.message && e.message !== e.code ? e.message : 'That request was not valid.');
    default:
      return (e && e.message) || 'Something went wrong.';
  }
}
