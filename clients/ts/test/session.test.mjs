// Unit tests of sessions (docs/PROTOCOL.md, "Sessions"): the session calls
// follow the endpoint table, one refresh in flight is shared, the timer
// renews ahead of expiry, a refused refresh ends the session, another
// process's refresh is adopted under the lock, a 401 is retried once after a
// refresh, and ChatClient opens its socket with a ticket and survives 4001.
// The real server is in session-integration.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError, Backoff, ChatClient, Connection, Session, CLOSE_TOKEN_EXPIRED } from '../dist/index.js';

function fakeTimers() {
  const t = { now: 1_000_000, seq: 0, list: new Map() };
  t.setTimeout = (fn, ms) => {
    const id = ++t.seq;
    t.list.set(id, { fn, at: t.now + ms });
    return id;
  };
  t.clearTimeout = (id) => t.list.delete(id);
  t.advance = (ms) => {
    const end = t.now + ms;
    for (;;) {
      let next = null;
      for (const [id, x] of t.list) if (x.at <= end && (!next || x.at < next[1].at)) next = [id, x];
      if (!next) break;
      t.list.delete(next[0]);
      t.now = next[1].at;
      next[1].fn();
    }
    t.now = end;
  };
  return t;
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/**
 * A scripted server over fetch: `routes` maps "METHOD /path" to a function
 * (call) => {status, body} or a queue of answers; every call is recorded.
 * A route may return a promise to hold the answer back.
 */
function fakeServer(routes) {
  const calls = [];
  const f = async (url, init) => {
    const path = url.replace(/^https?:\/\/[^/]+/, '').replace('/api/v1', '');
    const call = { url, path, method: init.method, headers: { ...init.headers }, body: init.body && JSON.parse(init.body) };
    calls.push(call);
    const key = `${init.method} ${path.split('?')[0]}`;
    let r = routes[key];
    if (Array.isArray(r)) r = r.shift();
    if (typeof r === 'function') r = await r(call);
    if (!r) throw new Error(`no route for ${key}`);
    if (r instanceof Error) throw r;
    return { ok: r.status >= 200 && r.status < 300, status: r.status, text: async () => (r.body === undefined ? '' : JSON.stringify(r.body)) };
  };
  return { f, calls, of: (key) => calls.filter((c) => `${c.method} ${c.path.split('?')[0]}` === key) };
}

const USER = { id: '1', username: 'me', display_name: 'Me' };
const pair = (n, expires_in = 900) => ({ status: 200, body: { user: USER, token: `A${n}`, refresh_token: `R${n}`, expires_in } });
const refused = () => ({ status: 401, body: { error: { code: 'unauthorized', message: 'session ended' } } });

test('the session calls follow the endpoint table; /token goes without the access token', async () => {
  const ok = (body) => () => ({ status: 200, body });
  const none = () => ({ status: 204 });
  const srv = fakeServer({
    'POST /token': () => pair(2),
    'POST /logout': none,
    'GET /sessions': ok({ sessions: [{ id: 's1', device: 'Laptop', created_at: 'x', last_seen: 'y', current: true }] }),
    'DELETE /sessions/a%20b': none,
    'POST /password': none,
    'POST /ws-ticket': ok({ ticket: 'TK', expires_in: 30 }),
    'DELETE /devices': ok({ removed: 2 }),
    'POST /login': () => pair(1),
  });
  const api = new Api({ fetch: srv.f, token: 'A1' });
  assert.equal((await api.refreshToken('R1')).refresh_token, 'R2');
  await api.logout();
  await api.logout(true);
  assert.deepEqual((await api.sessions()).map((s) => s.device), ['Laptop']);
  await api.endSession('a b');
  await api.changePassword('old pass', 'new pass');
  assert.equal((await api.wsTicket()).ticket, 'TK');
  assert.deepEqual(await api.removeDevices(), { removed: 2 });
  await api.login('me', 'pw', 'Phone');
  assert.deepEqual(
    srv.calls.map((c) => [c.method, c.path, c.body, c.headers.Authorization]),
    [
      ['POST', '/token', { refresh_token: 'R1' }, undefined],
      ['POST', '/logout', undefined, 'Bearer A1'],
      ['POST', '/logout?all=true', undefined, 'Bearer A1'],
      ['GET', '/sessions', undefined, 'Bearer A1'],
      ['DELETE', '/sessions/a%20b', undefined, 'Bearer A1'],
      ['POST', '/password', { current_password: 'old pass', new_password: 'new pass' }, 'Bearer A1'],
      ['POST', '/ws-ticket', undefined, 'Bearer A1'],
      ['DELETE', '/devices', undefined, 'Bearer A1'],
      ['POST', '/login', { username: 'me', password: 'pw', device: 'Phone' }, undefined],
    ],
  );
});

test('callers at the same time share one refresh; a token already renewed is not renewed again', async () => {
  let release;
  const held = new Promise((r) => (release = r));
  const srv = fakeServer({ 'POST /token': [async () => (await held, pair(2)), () => pair(3)] });
  const api = new Api({ fetch: srv.f });
  const saved = [];
  const t = fakeTimers();
  const s = new Session({ api, token: 'A1', refreshToken: 'R1', expiresIn: 900, onTokens: (x) => saved.push(x), now: () => t.now });
  assert.equal(api.token, 'A1');
  const all = [s.refresh('A1'), s.refresh('A1'), s.refresh()];
  release();
  assert.deepEqual(await Promise.all(all), [true, true, true]);
  assert.equal(srv.of('POST /token').length, 1, 'one POST /token for three callers');
  assert.equal(s.token, 'A2');
  assert.equal(api.token, 'A2');
  assert.deepEqual(saved, [{ token: 'A2', refresh_token: 'R2', expires_at: t.now + 900_000 }]);
  // A 401 that answered the old token: someone renewed it already.
  assert.equal(await s.refresh('A1'), true);
  assert.equal(srv.of('POST /token').length, 1);
  assert.equal(await s.refresh('A2'), true);
  assert.equal(srv.of('POST /token').length, 2);
  assert.deepEqual(srv.of('POST /token').map((c) => c.body.refresh_token), ['R1', 'R2'], 'each refresh token presented once');
});

test('the timer renews ahead of expiry; a refused refresh ends the session; the network is retried', async () => {
  const t = fakeTimers();
  const srv = fakeServer({ 'POST /token': [() => pair(2, 10), () => new TypeError('offline'), () => pair(3, 10), refused] });
  const api = new Api({ fetch: srv.f });
  let expired = 0;
  const s = new Session({
    api,
    token: 'A1',
    refreshToken: 'R1',
    expiresIn: 10,
    onExpired: () => expired++,
    now: () => t.now,
    setTimeout: t.setTimeout,
    clearTimeout: t.clearTimeout,
  });
  s.start();
  t.advance(7_999);
  assert.equal(srv.calls.length, 0, 'not before a fifth of the lifetime is left');
  t.advance(1);
  await flush();
  assert.equal(s.token, 'A2');
  t.advance(8_000); // the network fails: kept, retried in 5 s
  await flush();
  assert.equal(srv.calls.length, 2);
  assert.equal(s.token, 'A2');
  assert.equal(expired, 0);
  t.advance(5_000);
  await flush();
  assert.equal(s.token, 'A3');
  t.advance(8_000);
  await flush();
  assert.equal(srv.calls.length, 4);
  assert.equal(expired, 1, 'the refresh was refused: the session is over');
  t.advance(60_000);
  await flush();
  assert.equal(srv.calls.length, 4, 'no refresh after the end');
  s.stop();
  s.stop();
  assert.equal(await s.refresh(), false, 'a stopped session refreshes nothing');
});

test('tokens read back from storage (an expiry, no lifetime) are renewed ahead of that expiry, not at once', async () => {
  const t = fakeTimers();
  const srv = fakeServer({ 'POST /token': [() => pair(2, 5), () => pair(3, 5)] });
  const s = new Session({
    api: new Api({ fetch: srv.f }),
    token: 'A1',
    refreshToken: 'R1',
    expiresAt: t.now + 5_000,
    now: () => t.now,
    setTimeout: t.setTimeout,
    clearTimeout: t.clearTimeout,
  });
  s.start();
  t.advance(3_999);
  await flush();
  assert.equal(srv.calls.length, 0, 'a 5 s token is not renewed a minute ahead, that is at once');
  t.advance(1);
  await flush();
  assert.equal(s.token, 'A2');
  t.advance(3_999);
  await flush();
  assert.equal(srv.calls.length, 1);
  t.advance(1);
  await flush();
  assert.equal(s.token, 'A3');
  s.stop();
});

test('under the lock, tokens another process renewed are adopted instead of presenting a retired refresh token', async () => {
  const srv = fakeServer({ 'POST /token': () => pair(9) });
  const store = { token: 'A1', refresh_token: 'R1', expires_at: null };
  let locked = 0;
  const lock = async (fn) => {
    locked++;
    return fn();
  };
  const s = new Session({ api: new Api({ fetch: srv.f }), token: 'A1', refreshToken: 'R1', lock, load: () => store });
  Object.assign(store, { token: 'A2', refresh_token: 'R2', expires_at: 123 }); // another tab refreshed
  assert.equal(await s.refresh('A1'), true);
  assert.equal(locked, 1);
  assert.equal(srv.calls.length, 0);
  assert.equal(s.token, 'A2');
  assert.equal(s.refreshToken, 'R2');
  // Nobody else did: this one refreshes with the stored refresh token.
  assert.equal(await s.refresh('A2'), true);
  assert.deepEqual(srv.calls.map((c) => c.body), [{ refresh_token: 'R2' }]);
  // Logged out in another tab: the stored tokens are gone.
  const gone = new Session({ api: new Api({ fetch: srv.f }), token: 'A1', refreshToken: 'R1', load: () => null });
  assert.equal(await gone.refresh('A1'), false);
  assert.equal(srv.calls.length, 1);
});

test('a 401 is met with one refresh and one retry; a second 401 or a refused refresh ends the session once', async () => {
  const srv = fakeServer({
    'GET /me': [refused, () => ({ status: 200, body: USER }), refused, refused, refused],
    'POST /token': [() => pair(2), refused],
  });
  let unauthorized = 0;
  const api = new Api({ fetch: srv.f, onUnauthorized: () => unauthorized++ });
  const s = new Session({ api, token: 'A1', refreshToken: 'R1' });
  assert.deepEqual(await api.me(), USER);
  assert.deepEqual(srv.of('GET /me').map((c) => c.headers.Authorization), ['Bearer A1', 'Bearer A2']);
  assert.equal(unauthorized, 0);
  // Refused again after a successful refresh: over, no loop.
  await assert.rejects(api.me(), (e) => e instanceof ApiError && e.status === 401);
  assert.equal(unauthorized, 1);
  assert.equal(srv.of('POST /token').length, 2);
  assert.equal(s.token, 'A2');
  // A network failure of the refresh keeps the session: the 401 is thrown, nothing ends.
  const net = fakeServer({ 'GET /me': [refused], 'POST /token': [() => new TypeError('offline')] });
  let over = 0;
  const api2 = new Api({ fetch: net.f, onUnauthorized: () => over++ });
  new Session({ api: api2, token: 'A1', refreshToken: 'R1' });
  await assert.rejects(api2.me(), (e) => e.status === 401);
  assert.equal(over, 0);
});

function fakeSockets() {
  const made = [];
  class FakeWS {
    constructor(url) {
      this.url = url;
      this.sent = [];
      made.push(this);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
    }
    close() {}
    frame(f) {
      this.onmessage?.({ data: JSON.stringify(f) });
    }
    drop(code = 1006) {
      this.onclose?.({ code });
    }
  }
  return { FakeWS, made };
}

test('ChatClient with a refresh token: a ticket per socket, never the token in the URL; 4001 refreshes and reconnects, a refused refresh ends it', async () => {
  let n = 0;
  const srv = fakeServer({
    'POST /ws-ticket': () => ({ status: 200, body: { ticket: `T${++n}`, expires_in: 30 } }),
    'POST /token': [() => pair(2), refused],
  });
  const { FakeWS, made } = fakeSockets();
  const t = fakeTimers();
  const saved = [];
  let expired = 0;
  const c = new ChatClient({
    baseUrl: 'https://chat.test',
    token: 'A1',
    refreshToken: 'R1',
    expiresIn: 900,
    onTokens: (x) => saved.push(x),
    WebSocket: FakeWS,
    fetch: srv.f,
    setTimeout: t.setTimeout,
    clearTimeout: t.clearTimeout,
    now: () => t.now,
    random: () => 0.5,
    backoff: new Backoff({ random: () => 0.5 }),
    onAuthExpired: () => expired++,
  });
  c.start();
  c.nudge(); // while the ticket is fetched: no second attempt
  await flush();
  assert.deepEqual(made.map((w) => w.url), ['wss://chat.test/ws?ticket=T1']);
  made[0].frame({ type: 'hello', user: USER, conversations: [] });
  assert.equal(c.isReady, true);
  made[0].drop(CLOSE_TOKEN_EXPIRED);
  await flush();
  assert.equal(expired, 0, 'renewed, not expired');
  assert.equal(c.token, 'A2');
  assert.equal(saved.at(-1).refresh_token, 'R2');
  assert.deepEqual(made.map((w) => w.url), ['wss://chat.test/ws?ticket=T1', 'wss://chat.test/ws?ticket=T2']);
  assert.equal(srv.of('POST /ws-ticket').at(-1).headers.Authorization, 'Bearer A2');
  assert.ok(made.every((w) => !w.url.includes('A1') && !w.url.includes('A2')));
  made[1].frame({ type: 'hello', user: USER, conversations: [] });
  made[1].drop(CLOSE_TOKEN_EXPIRED); // the session was ended elsewhere
  await flush();
  assert.equal(expired, 1);
  t.advance(120_000);
  await flush();
  assert.equal(made.length, 2, 'stopped: no reconnect after the session ended');
  c.stop();
});

test('a ticket that cannot be fetched is retried with backoff; a refused one stops the client', async () => {
  const srv = fakeServer({
    'POST /ws-ticket': [() => new TypeError('offline'), () => ({ status: 200, body: { ticket: 'T2', expires_in: 30 } }), refused],
    'POST /token': [refused],
  });
  const { FakeWS, made } = fakeSockets();
  const t = fakeTimers();
  let expired = 0;
  const c = new ChatClient({
    baseUrl: 'http://chat.test',
    token: 'A1',
    refreshToken: 'R1',
    WebSocket: FakeWS,
    fetch: srv.f,
    setTimeout: t.setTimeout,
    clearTimeout: t.clearTimeout,
    now: () => t.now,
    random: () => 0.5,
    backoff: new Backoff({ random: () => 0.5 }),
    onAuthExpired: () => expired++,
  });
  c.start();
  await flush();
  assert.equal(made.length, 0, 'no socket without a ticket');
  assert.equal(c.conn.status, 'offline');
  t.advance(1000);
  await flush();
  assert.deepEqual(made.map((w) => w.url), ['ws://chat.test/ws?ticket=T2']);
  made[0].drop(1006);
  t.advance(1000);
  await flush();
  assert.equal(expired, 1, 'ticket refused, refresh refused: over');
  assert.equal(c.conn.stopped, true);
  t.advance(120_000);
  await flush();
  assert.equal(srv.of('POST /ws-ticket').length, 3);
  c.stop();
});

test('Connection: a URL that arrives after stop, or after a newer start, opens nothing', async () => {
  const { FakeWS, made } = fakeSockets();
  const t = fakeTimers();
  const pending = [];
  const conn = new Connection({
    url: () => new Promise((r) => pending.push(r)),
    WebSocket: FakeWS,
    onFrame: () => {},
    setTimeout: t.setTimeout,
    clearTimeout: t.clearTimeout,
    random: () => 0.5,
  });
  conn.start();
  conn.stop();
  conn.start();
  pending[0]('ws://x/ws?ticket=old');
  await flush();
  assert.equal(made.length, 0, 'the stopped attempt’s URL is dropped');
  pending[1]('ws://x/ws?ticket=new');
  await flush();
  assert.deepEqual(made.map((w) => w.url), ['ws://x/ws?ticket=new']);
  conn.stop();
});
