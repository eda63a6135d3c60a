// Sessions against a real `chat dev` whose access tokens last 3 s: a client
// with a refresh token keeps sending and calling the API across several
// expiries, its socket opened with tickets; the tokens it was given are
// refused once expired or once it logged out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { ChatClient } from '../dist/index.js';
import { signup, startChatDev, waitFor } from './server.mjs';

const TTL_S = 3;
let server;

before(async () => {
  server = await startChatDev({ args: ['--access-ttl', `${TTL_S}s`] });
});

after(async () => {
  if (server) await server.stop();
});

const status = async (token, path = '/api/v1/me') => (await fetch(server.url + path, { headers: { Authorization: `Bearer ${token}` } })).status;

test('a client with a refresh token keeps working across several expiries of its access token, and logout ends the session', async () => {
  const anna = await signup(server.url, 'anna');
  const billy = await signup(server.url, 'billy');
  assert.equal(anna.expires_in, TTL_S);
  assert.ok(anna.refresh_token);
  const urls = [];
  class Recording extends WebSocket {
    constructor(url) {
      super(url);
      urls.push(url);
    }
  }
  const saved = [];
  let expired = 0;
  const c = new ChatClient({
    baseUrl: server.url,
    token: anna.token,
    refreshToken: anna.refresh_token,
    expiresIn: anna.expires_in,
    onTokens: (t) => saved.push(t),
    WebSocket: Recording,
    followAll: true,
    onAuthExpired: () => expired++,
  });
  try {
    c.start();
    await waitFor('connected', () => c.isReady);
    const conv = await c.api.direct(billy.username);
    const started = Date.now();
    let sent = 0;
    // Over three lifetimes of an access token: a send over the socket and
    // a call over HTTP, again and again.
    while (Date.now() - started < 3.5 * TTL_S * 1000) {
      const m = await c.sendAndWait(conv.id, `tick ${sent}`);
      assert.equal(m.body, `tick ${sent}`);
      sent++;
      const { conversations } = await c.api.conversations();
      assert.ok(conversations.some((x) => x.id === conv.id));
      await new Promise((r) => setTimeout(r, 250)); // pacing, not synchronisation
    }
    assert.equal(expired, 0);
    assert.ok(saved.length >= 3, `renewed ${saved.length} times in ${3.5 * TTL_S} s`);
    assert.equal(new Set(saved.map((t) => t.refresh_token)).size, saved.length, 'every refresh gave a new refresh token');
    assert.equal(await status(anna.token), 401, 'the first access token expired');
    assert.equal(await status(c.token), 200);
    assert.ok(urls.length >= 1 && urls.every((u) => /\/ws\?ticket=/.test(u) && !u.includes('token=')), urls.join(' '));

    const last = c.token;
    await c.logout();
    assert.equal(await status(last), 401, 'logged out: the access token is refused at once');
    const r = await fetch(server.url + '/api/v1/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: saved.at(-1).refresh_token }),
    });
    assert.equal(r.status, 401, 'and so is the refresh token');
    assert.equal(expired, 0, 'logging out is not an expiry');
  } finally {
    c.stop();
  }
});
