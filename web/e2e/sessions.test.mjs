// End-to-end test of sessions in the web client (docs/PROTOCOL.md,
// "Sessions") against a real `chat dev` whose access tokens last 5 s, in
// Debian's Chromium through playwright-core: the page keeps working across
// several expiries, two tabs of one person refresh without ending their
// shared session, the socket is opened with tickets only, a refused access
// token is renewed silently, the Sessions dialog ends another device (and
// all others), and logging out ends the session on the server.
//
//   node --test web/e2e/sessions.test.mjs   from the repo root
//   CHROMIUM=/path/to/chromium               another browser binary

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20000;
const TTL_S = 5;
const PASSWORD = 'correct horse battery';
const suffix = Math.random().toString(36).slice(2, 7);

const ctx = { tmp: null, server: null, log: '', base: null, context: null, pageErrors: [], sockets: [], console: [] };

before(async () => {
  assert.ok(existsSync(browserPath), `no browser at ${browserPath}: apt-get install -y chromium`);
  ctx.tmp = await mkdtemp(path.join(tmpdir(), 'chat-e2e-sessions-'));
  const bin = path.join(ctx.tmp, 'chat');
  await promisify(execFile)('go', ['build', '-o', bin, './cmd/chat'], { cwd: repoRoot, timeout: 600000, maxBuffer: 1 << 24 });
  await new Promise((resolve, reject) => {
    const proc = spawn(bin, ['dev', '--addr', '127.0.0.1:0', '--data', path.join(ctx.tmp, 'data'), '--access-ttl', `${TTL_S}s`], {
      cwd: ctx.tmp,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    ctx.server = proc;
    const timer = setTimeout(() => reject(new Error(`chat dev printed no URL within 60 s:\n${ctx.log}`)), 60000);
    proc.stdout.on('data', (d) => {
      ctx.log += d;
      const m = ctx.log.match(/chat dev: open (http:\/\/\S+?)\/?\s/);
      if (m) {
        clearTimeout(timer);
        ctx.base = m[1] + '/';
        resolve();
      }
    });
    proc.stderr.on('data', (d) => (ctx.log += d));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chat dev exited with ${code}:\n${ctx.log}`));
    });
  });
  ctx.context = await chromium.launchPersistentContext(path.join(ctx.tmp, 'profile'), {
    executablePath: browserPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
  });
  ctx.context.setDefaultTimeout(WAIT);
  const watch = (page) => {
    page.on('pageerror', (e) => ctx.pageErrors.push(e.message));
    page.on('websocket', (ws) => ctx.sockets.push(ws.url()));
    page.on('request', (r) => r.url().includes('/api/v1/') && ctx.console.push(`${Date.now() % 100000} ${r.method()} ${new URL(r.url()).pathname}`));
    page.on('response', (r) => r.url().includes('/api/v1/') && ctx.console.push(`${Date.now() % 100000} ${r.status()} ${new URL(r.url()).pathname}`));
  };
  for (const p of ctx.context.pages()) watch(p);
  ctx.context.on('page', watch);
});

after(async () => {
  await ctx.context?.close().catch(() => {});
  const s = ctx.server;
  if (s && s.exitCode === null) {
    const exited = new Promise((r) => s.once('exit', r));
    s.kill('SIGTERM');
    const t = setTimeout(() => s.kill('SIGKILL'), 20000);
    await exited;
    clearTimeout(t);
  }
  if (ctx.tmp) await rm(ctx.tmp, { recursive: true, force: true });
});

const url = (p = '') => new URL(p, ctx.base).toString();
const convNav = (page) => page.getByRole('navigation', { name: 'Conversations' });
const messageBox = (page) => page.getByRole('textbox', { name: 'Message' });
const sentMessage = (page, text) => page.locator('[role=log] li.msg[data-status=sent]').filter({ has: page.locator('p.body', { hasText: text }) });

async function api(method, p, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body) headers['Content-Type'] = 'application/json';
  const res = await fetch(url('api/v1' + p), { method, headers, body: body && JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const stored = (page) => page.evaluate(() => ({ token: localStorage.getItem('chat.token'), refresh: localStorage.getItem('chat.refresh') }));

/** Polls until the page's stored refresh token changed n times. */
async function renewals(page, n) {
  const seen = [(await stored(page)).refresh];
  const deadline = Date.now() + (n + 2) * TTL_S * 1000 + WAIT;
  while (seen.length <= n) {
    if (Date.now() > deadline) {
      const state = await page.evaluate(() => ({ ...localStorage, auth: !document.querySelector('#auth').hidden, error: document.querySelector('#auth-error').textContent }));
      assert.fail(`only ${seen.length - 1} renewals of ${n}: ${JSON.stringify(state)}\n${ctx.log.slice(-3000)}`);
    }
    const r = (await stored(page)).refresh;
    if (r && r !== seen.at(-1)) seen.push(r);
    await new Promise((res) => setTimeout(res, 100));
  }
  return seen;
}

let axeSource = null;
async function checkA11y(page, name) {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  const found = result.violations.map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  assert.deepEqual(found, [], `accessibility problems on ${name}`);
}

const me = { username: `erin_${suffix}` };
const friend = { username: `finn_${suffix}` };
let page;
let tab2;

test('the page keeps working across several expiries of its access token, in two tabs at once', async () => {
  const f = await api('POST', '/signup', { body: { username: friend.username, password: PASSWORD } });
  assert.equal(f.status, 201);
  assert.equal(f.body.expires_in, TTL_S);
  page = ctx.context.pages()[0] || (await ctx.context.newPage());
  await page.goto(url('/'));
  await page.getByLabel('Username').fill(me.username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign up' }).click();
  await convNav(page).waitFor();
  const first = await stored(page);
  assert.ok(first.refresh, 'the refresh token is kept');
  await page.goto(url(`/${friend.username}/`));
  await messageBox(page).waitFor();
  // A second tab of the same person: both renew the same session; were a
  // refresh token presented twice, the server would end it.
  tab2 = await ctx.context.newPage();
  await tab2.goto(url(`/${friend.username}/`));
  await messageBox(tab2).waitFor();

  const seen = await renewals(page, 3);
  assert.equal(new Set(seen).size, seen.length);
  assert.equal((await api('GET', '/me', { token: first.token })).status, 401, 'the first access token expired');
  for (const [p, text] of [
    [page, 'Still here after three expiries'],
    [tab2, 'And from the second tab'],
  ]) {
    assert.equal(await p.getByRole('button', { name: 'Log in' }).count(), 0, `still logged in: ${await p.locator('#auth-error').textContent()} ${JSON.stringify(ctx.console)}`);
    await messageBox(p).fill(text);
    await messageBox(p).press('Enter');
    await sentMessage(p, text).waitFor();
  }
  // An HTTP call with whatever token the tab holds now.
  const now = await stored(tab2);
  assert.equal((await api('GET', '/me', { token: now.token })).status, 200);
  // The socket never carried a token: tickets only.
  assert.ok(ctx.sockets.length >= 2);
  for (const s of ctx.sockets) assert.match(s, /\/ws\?ticket=[^&]+$/, s);
  // The friend got them (a fresh login: the signup's token has long expired).
  const fl = (await api('POST', '/login', { body: { username: friend.username, password: PASSWORD } })).body;
  const conv = (await api('GET', '/conversations', { token: fl.token })).body.conversations[0];
  const got = (await api('GET', `/conversations/${conv.id}/messages`, { token: fl.token })).body.messages.map((m) => m.body);
  assert.ok(got.includes('Still here after three expiries') && got.includes('And from the second tab'), got.join(' | '));
});

test('a refused access token is renewed silently', async () => {
  await tab2.close();
  // In both places the page keeps its tokens (sessions.js), so that the
  // refresh token, not another tab's copy, is what renews it.
  await page.evaluate(async () => {
    localStorage.setItem('chat.token', 'an-expired-access-token');
    const t = { token: 'an-expired-access-token', refresh_token: localStorage.getItem('chat.refresh'), expires_at: null };
    const db = await new Promise((ok, no) => Object.assign(indexedDB.open('chat.session', 1), { onsuccess: (e) => ok(e.target.result), onerror: no }));
    await new Promise((ok, no) => Object.assign(db.transaction('tokens', 'readwrite'), { oncomplete: ok, onerror: no }).objectStore('tokens').put(t, 'current'));
  });
  const refreshBefore = (await stored(page)).refresh;
  await page.reload();
  await convNav(page).waitFor();
  await messageBox(page).waitFor();
  const t = await stored(page);
  assert.notEqual(t.token, 'an-expired-access-token');
  assert.notEqual(t.refresh, refreshBefore, 'renewed with the refresh token');
  assert.equal((await api('GET', '/me', { token: t.token })).status, 200);
  await messageBox(page).fill('Back after a refresh');
  await messageBox(page).press('Enter');
  await sentMessage(page, 'Back after a refresh').waitFor();
});

test('the Sessions dialog lists devices and ends one, then all others', async () => {
  const login = async (device) => (await api('POST', '/login', { body: { username: me.username, password: PASSWORD, device } })).body;
  const old = await login('Old laptop');
  await page.getByRole('button', { name: 'Sessions' }).click();
  const dialog = page.getByRole('dialog', { name: 'Where you are logged in' });
  await dialog.getByText('Old laptop').waitFor();
  await dialog.getByText('This device').waitFor();
  await dialog.getByText(/Chrome on Linux|Chromium on Linux/).waitFor();
  await checkA11y(page, 'sessions dialog');
  await dialog.getByRole('button', { name: 'End session on Old laptop' }).click();
  await dialog.getByText('Old laptop').waitFor({ state: 'detached' });
  assert.equal((await api('POST', '/token', { body: { refresh_token: old.refresh_token } })).status, 401, 'its refresh token is refused');
  assert.equal((await api('GET', '/me', { token: old.token })).status, 401, 'and its access token at once');

  const a = await login('Phone');
  const b = await login('Tablet');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: 'Sessions' }).click();
  await dialog.getByText('Tablet').waitFor();
  await dialog.getByRole('button', { name: 'End all other sessions' }).click();
  await dialog.getByText('Tablet').waitFor({ state: 'detached' });
  await dialog.getByText('Phone').waitFor({ state: 'detached' });
  await dialog.getByText('This device').waitFor();
  for (const x of [a, b]) assert.equal((await api('POST', '/token', { body: { refresh_token: x.refresh_token } })).status, 401);
  await dialog.getByRole('button', { name: 'Close' }).click();
  // This one goes on.
  await messageBox(page).fill('Only this device now');
  await messageBox(page).press('Enter');
  await sentMessage(page, 'Only this device now').waitFor();
});

test('log out ends the session on the server, and other tabs follow', async () => {
  const other = await ctx.context.newPage();
  await other.goto(url('/'));
  await convNav(other).waitFor();
  const before = await stored(page);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await other.getByRole('button', { name: 'Log in' }).waitFor();
  assert.deepEqual(await stored(page), { token: null, refresh: null });
  assert.equal((await api('GET', '/me', { token: before.token })).status, 401, 'the access token is refused at once');
  assert.equal((await api('POST', '/token', { body: { refresh_token: before.refresh } })).status, 401, 'and the refresh token');
  await other.close();
});

test('the pages threw nothing', () => {
  assert.deepEqual(ctx.pageErrors, []);
});
