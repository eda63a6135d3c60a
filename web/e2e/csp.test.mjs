// The page's Content-Security-Policy lets it open WebSockets to its own
// host only: the chat still works (a message goes from Anna's page to
// Billy's over their sockets), while a WebSocket to the same server under
// another name (localhost instead of 127.0.0.1: another host to the
// browser) is refused by the policy before it connects.
//
//   cd web && node --test --test-concurrency=1 e2e/csp.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { World, messageIn, send } from './harness.mjs';

const w = new World();
let a;
let b;

before(async () => {
  await w.start();
  a = await w.person('anna');
  b = await w.person('billy');
  await w.signUp(a, 'Anna Adams');
  await w.signUp(b, 'Billy Brown');
  await a.page.goto(w.url(`/${b.username}/`));
  await a.page.getByRole('heading', { name: 'Billy Brown' }).waitFor();
  await b.page.goto(w.url(`/${a.username}/`));
  await b.page.getByRole('heading', { name: 'Anna Adams' }).waitFor();
});

after(async () => {
  await w.stop();
});

test('the page connects to its own host: a message arrives live', async () => {
  await send(a.page, 'Hello over the allowed socket');
  await messageIn(b.page, 'Hello over the allowed socket').waitFor();
});

/** Opens a WebSocket to url in page; answers "blocked" when the CSP refused it, else how it ended. */
async function tryWebSocket(page, url) {
  return page.evaluate(
    (u) =>
      new Promise((resolve) => {
        const done = (how) => {
          document.removeEventListener('securitypolicyviolation', onViolation);
          resolve(how);
        };
        const onViolation = (e) => {
          if (e.blockedURI && u.startsWith(e.blockedURI.replace(/\/$/, '')) && e.effectiveDirective === 'connect-src') done('blocked');
        };
        document.addEventListener('securitypolicyviolation', onViolation);
        let ws;
        try {
          ws = new WebSocket(u);
        } catch (e) {
          done(e.name === 'SecurityError' ? 'blocked' : `threw ${e.name}`);
          return;
        }
        ws.onopen = () => {
          ws.close();
          done('open');
        };
        // A refused upgrade (no token) is an error. Chromium queues the
        // policy violation when the constructor runs, before any error.
        ws.onerror = () => done('error');
        ws.onclose = () => done('closed');
      }),
    url,
  );
}

test('a WebSocket to another host is refused by the policy, one to the page host is not', async () => {
  const page = new URL(w.url('/'));
  assert.equal(page.hostname, '127.0.0.1', 'chat dev serves on 127.0.0.1');
  const other = `ws://localhost:${page.port}/ws`;
  const own = `ws://127.0.0.1:${page.port}/ws`;
  assert.equal(await tryWebSocket(a.page, other), 'blocked', `${other} must be refused by connect-src`);
  assert.notEqual(await tryWebSocket(a.page, own), 'blocked', `${own} is the page's own host`);
  const csp = (await a.page.request.get(w.url('/'))).headers()['content-security-policy'];
  assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:\/\/127\.0\.0\.1:\d+;/);
});
