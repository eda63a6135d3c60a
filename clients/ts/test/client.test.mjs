// Unit tests of ChatClient with a scripted socket and manual timers: the
// protocol rules the client must follow, checked frame by frame. (The real
// server is in integration.test.mjs and browser.test.mjs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, Backoff, ChatClient, CLOSE_DRAINING, CLOSE_TOKEN_EXPIRED, ENDPOINTS, compareIds } from '../dist/index.js';

function fakeTimers() {
  const t = { now: 0, seq: 0, list: new Map() };
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

function setup(opts = {}) {
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
  const timers = fakeTimers();
  const got = [];
  const events = { expired: 0 };
  const c = new ChatClient({
    baseUrl: 'http://chat.test',
    token: 'T',
    WebSocket: FakeWS,
    fetch: async () => ({ ok: true, status: 200, text: async () => '{}' }),
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    now: () => timers.now,
    random: () => 0.5,
    backoff: new Backoff({ random: () => 0.5 }),
    onMessage: (m) => got.push(m),
    onAuthExpired: () => events.expired++,
    ...opts,
  });
  return { c, made, timers, got, events };
}

const ME = { id: '1', username: 'me', display_name: 'Me' };
const conv = (id, last = null) => ({ id, kind: 'group', title: id, members: [ME], last_message: last, unread: 0 });
const msg = (id, conversation = 'c1', extra = {}) => ({ id, conversation, sender: '2', body: `m${id}`, sent_at: '2026-01-01T00:00:00.000Z', client_id: `k${id}`, ...extra });
const flush = () => new Promise((r) => setImmediate(r));

test('the socket URL carries the token; frames before hello are not sent', () => {
  const { c, made } = setup();
  c.start();
  assert.equal(made[0].url, 'ws://chat.test/ws?token=T');
  assert.equal(c.typing('c1'), false);
  assert.deepEqual(made[0].sent, []);
});

test('after every hello: history after the newest known ID, page by page, for each known conversation', async () => {
  const { c, made, timers, got } = setup({ followAll: true });
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('10')), conv('c2')] });
  let h = made[0].sent.filter((f) => f.type === 'history');
  assert.deepEqual(h.map((f) => [f.conversation, f.after]), [['c1', '10'], ['c2', '0']], 'right after the first hello too');
  for (const f of h) made[0].frame({ type: 'history', id: f.id, messages: [], next_after: null });
  await flush();
  made[0].frame({ type: 'message', message: msg('12') });
  made[0].drop();
  timers.advance(500);
  made[1].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('15')), conv('c2')] });
  h = made[1].sent.filter((f) => f.type === 'history');
  assert.deepEqual(h.map((f) => [f.conversation, f.after]), [['c1', '12'], ['c2', '0']], 'from the newest received, not the hello’s last_message');
  const c1 = h[0];
  made[1].frame({ type: 'history', id: c1.id, messages: [msg('13'), msg('14')], next_after: '14' });
  await flush();
  const next = made[1].sent.filter((f) => f.type === 'history').at(-1);
  assert.equal(next.after, '14', 'the next page');
  made[1].frame({ type: 'message', message: msg('16') });
  made[1].frame({ type: 'history', id: next.id, messages: [msg('15'), msg('16')], next_after: null });
  await flush();
  assert.deepEqual(got.map((m) => m.id), ['12', '13', '14', '16', '15'], 'each message reported once');
  assert.deepEqual(c.state.conv('c1').messages.map((m) => m.id), ['12', '13', '14', '15', '16'], 'in ID order; the hello’s last_message is where following starts');
});

test('unacked sends are resent with the same client_id after a reconnect, and the ack settles them', async () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1')] });
  const p = c.sendAndWait('c1', 'hi');
  const first = made[0].sent.find((f) => f.type === 'send');
  assert.equal(c.state.outbox.size, 1);
  made[0].drop();
  assert.equal(c.state.sendable().length, 1, 'back in the queue');
  timers.advance(500);
  made[1].frame({ type: 'hello', user: ME, conversations: [conv('c1')] });
  const again = made[1].sent.find((f) => f.type === 'send');
  assert.equal(again.client_id, first.client_id);
  assert.equal(again.body, 'hi');
  made[1].frame({ type: 'ack', id: again.id, message: msg('20', 'c1', { sender: ME.id, client_id: first.client_id, body: 'hi' }) });
  const m = await p;
  assert.equal(m.id, '20');
  assert.equal(c.state.outbox.size, 0);
});

test('a send refused for good rejects; rate limits are retried on their own', async () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1')] });
  const bad = c.sendAndWait('c1', 'x');
  const f1 = made[0].sent.at(-1);
  made[0].frame({ type: 'error', id: f1.id, code: 'invalid_message', message: 'no' });
  await assert.rejects(bad, (e) => e.code === 'invalid_message');
  const ok = c.sendAndWait('c1', 'y');
  const f2 = made[0].sent.at(-1);
  made[0].frame({ type: 'error', id: f2.id, code: 'rate_limited', message: 'slow down' });
  await flush();
  timers.advance(1000);
  const f3 = made[0].sent.at(-1);
  assert.equal(f3.client_id, f2.client_id);
  made[0].frame({ type: 'ack', id: f3.id, message: msg('30', 'c1', { sender: ME.id, client_id: f2.client_id }) });
  assert.equal((await ok).id, '30');
});

test('4002 reconnects within a second, 4001 stops and reports', () => {
  const { c, made, timers, events } = setup();
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [] });
  made[0].drop(CLOSE_DRAINING);
  timers.advance(1000);
  assert.equal(made.length, 2);
  made[1].frame({ type: 'hello', user: ME, conversations: [] });
  made[1].drop(CLOSE_TOKEN_EXPIRED);
  timers.advance(60000);
  assert.equal(made.length, 2);
  assert.equal(events.expired, 1);
});

test('typing is throttled per conversation; read goes out once per new mark', () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('5'))] });
  assert.equal(c.typing('c1'), true);
  assert.equal(c.typing('c1'), false);
  timers.advance(3000);
  assert.equal(c.typing('c1'), true);
  assert.equal(c.markRead('c1'), '5');
  assert.equal(c.markRead('c1'), null);
  const out = made[0].sent.filter((f) => f.type !== 'history');
  assert.deepEqual(out, [
    { type: 'typing', conversation: 'c1' },
    { type: 'typing', conversation: 'c1' },
    { type: 'read', conversation: 'c1', message_id: '5' },
  ]);
});

test('HTTP calls follow the endpoint table', async () => {
  const calls = [];
  const api = new Api({
    base: 'http://chat.test',
    token: 'T',
    fetch: async (url, init) => {
      calls.push([init.method, url, init.body && JSON.parse(init.body), init.headers.Authorization]);
      return { ok: true, status: 200, text: async () => '{"messages":[],"next_after":null}' };
    },
  });
  await api.endpoint('addMember', { params: { id: 'a/b' }, body: { username: 'x' } });
  await api.messages('c 1', { after: '0', limit: 10 });
  await api.conversations();
  assert.deepEqual(calls, [
    ['POST', 'http://chat.test/api/v1/conversations/a%2Fb/members', { username: 'x' }, 'Bearer T'],
    ['GET', 'http://chat.test/api/v1/conversations/c%201/messages?after=0&limit=10', undefined, 'Bearer T'],
    ['GET', 'http://chat.test/api/v1/conversations', undefined, 'Bearer T'],
  ]);
  assert.equal(ENDPOINTS.signup.auth, false);
  assert.equal(compareIds('18446744073709551615', '9223372036854775808'), 1);
});
