// The browser's sessions (static/sessions.js) without a browser: tokens in
// a storage shaped like localStorage, two tabs sharing it and a lock shaped
// like the Web Locks API, a scripted server over fetch. The real thing is
// in e2e/sessions.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api } from '../static/api.js';
import { EXPIRES_KEY, REFRESH_KEY, TOKEN_KEY, browserSession, clearTokens, deviceName, loadTokens, saveTokens, webLock } from '../static/sessions.js';

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    map: m,
  };
}

/** navigator.locks as far as the page uses it: one holder of a name at a time. */
function fakeLocks() {
  const tails = new Map();
  let held = 0;
  return {
    request(name, fn) {
      const prev = tails.get(name) || Promise.resolve();
      const run = prev.then(async () => {
        held++;
        try {
          return await fn();
        } finally {
          held--;
        }
      });
      tails.set(name, run.catch(() => {}));
      return run;
    },
    get held() {
      return held;
    },
  };
}

function tokenServer() {
  let n = 1;
  const presented = [];
  let live = 'R1';
  const f = async (url, init) => {
    assert.equal(url, '/api/v1/token');
    const { refresh_token: rt } = JSON.parse(init.body);
    presented.push(rt);
    await new Promise((r) => setImmediate(r)); // answer later, as a network does
    if (rt !== live) return { ok: false, status: 401, text: async () => '{"error":{"code":"unauthorized","message":"reused"}}' };
    n++;
    live = `R${n}`;
    const body = { user: { id: '1', username: 'me', display_name: 'Me' }, token: `A${n}`, refresh_token: live, expires_in: 900 };
    return { ok: true, status: 200, text: async () => JSON.stringify(body) };
  };
  return { f, presented };
}

test('tokens are stored, read back and cleared under their keys', () => {
  const s = memoryStorage();
  assert.equal(loadTokens(s), null);
  saveTokens(s, { token: 'A', refresh_token: 'R', expires_in: 900 }, 1000);
  assert.deepEqual(loadTokens(s), { token: 'A', refresh_token: 'R', expires_at: 901_000 });
  assert.equal(s.getItem(TOKEN_KEY), 'A');
  assert.equal(s.getItem(REFRESH_KEY), 'R');
  assert.equal(s.getItem(EXPIRES_KEY), '901000');
  // A session from before sessions existed: an access token alone.
  saveTokens(s, { token: 'B' });
  assert.deepEqual(loadTokens(s), { token: 'B', refresh_token: null, expires_at: null });
  clearTokens(s);
  assert.equal(s.map.size, 0);
});

test('two tabs that need a refresh at once: one presents the refresh token, the other adopts what it stored', async () => {
  const storage = memoryStorage();
  saveTokens(storage, { token: 'A1', refresh_token: 'R1', expires_in: 900 });
  const locks = fakeLocks();
  const srv = tokenServer();
  const tab1 = new Api({ fetch: srv.f });
  const tab2 = new Api({ fetch: srv.f });
  const s1 = browserSession({ api: tab1, storage, locks });
  const s2 = browserSession({ api: tab2, storage, locks });
  assert.equal(tab1.token, 'A1');
  const [ok1, ok2] = await Promise.all([s1.refresh('A1'), s2.refresh('A1')]);
  assert.deepEqual([ok1, ok2], [true, true]);
  assert.deepEqual(srv.presented, ['R1'], 'R1 presented once: twice would end the session');
  assert.equal(tab1.token, 'A2');
  assert.equal(tab2.token, 'A2');
  assert.equal(loadTokens(storage).refresh_token, 'R2');
  // Without the lock the same race presents R2 twice, and the server ends the session.
  const racy = [browserSession({ api: new Api({ fetch: srv.f }), storage, locks: null }), browserSession({ api: new Api({ fetch: srv.f }), storage, locks: null })];
  const got = await Promise.all(racy.map((s) => s.refresh('A2')));
  assert.deepEqual(srv.presented, ['R1', 'R2', 'R2']);
  assert.ok(got.includes(false), 'the unlocked race loses a tab');
});

test('a tab whose storage was emptied (logged out in another tab) finds its session over', async () => {
  const storage = memoryStorage();
  saveTokens(storage, { token: 'A1', refresh_token: 'R1' });
  const srv = tokenServer();
  const s = browserSession({ api: new Api({ fetch: srv.f }), storage, locks: fakeLocks() });
  clearTokens(storage);
  assert.equal(await s.refresh('A1'), false);
  assert.deepEqual(srv.presented, []);
});

test('webLock uses the Web Locks API when there is one', async () => {
  const locks = fakeLocks();
  let inside = 0;
  assert.equal(await webLock(locks)(async () => (inside = locks.held)), 1);
  assert.equal(inside, 1);
  assert.equal(await webLock(undefined)(async () => 'ran'), 'ran');
});

test('a device is named by its browser and system', () => {
  assert.equal(deviceName('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'), 'Firefox on Linux');
  assert.equal(deviceName('Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36'), 'Chrome on Android');
  assert.equal(deviceName('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1'), 'Safari on iOS');
  assert.equal(deviceName('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0'), 'Edge on Windows');
  assert.equal(deviceName(''), 'Browser');
});
