import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, RequestError, CLOSE_DRAINING, CLOSE_TOKEN_EXPIRED } from '../static/conn.js';
import { Backoff } from '../static/state.js';

/** Timers that run only when the test says so. */
function fakeTimers() {
  const t = { now: 0, seq: 0, list: new Map() };
  t.setTimeout = (fn, ms) => {
    const id = ++t.seq;
    t.list.set(id, { fn, at: t.now + ms });
    return id;
  };
  t.clearTimeout = (id) => t.list.delete(id);
  /** Runs every timer due within ms, in time order. */
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
  t.pending = () => [...t.list.values()].map((x) => x.at - t.now).sort((a, b) => a - b);
  return t;
}

function fakeSockets() {
  const made = [];
  class FakeWS {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = null;
      made.push(this);
    }
    send(s) {
      if (this.closed) throw new Error('closed');
      this.sent.push(JSON.parse(s));
    }
    close(code, reason) {
      this.closed = { code, reason };
    }
    // Test helpers: what the server does.
    frame(f) {
      this.onmessage?.({ data: JSON.stringify(f) });
    }
    drop(code = 1006) {
      this.closed = { code };
      this.onclose?.({ code });
    }
  }
  return { FakeWS, made };
}

function setup(opts = {}) {
  const timers = fakeTimers();
  const { FakeWS, made } = fakeSockets();
  const frames = [];
  const statuses = [];
  const events = { expired: 0, failed: 0 };
  const c = new Connection({
    url: () => 'ws://x/ws?token=t',
    WebSocket: FakeWS,
    onFrame: (f) => frames.push(f),
    onStatus: (s, info) => statuses.push([s, info]),
    onAuthExpired: () => events.expired++,
    onConnectFailed: () => events.failed++,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    random: () => 0.5,
    backoff: new Backoff({ base: 1000, max: 8000, random: () => 0 }),
    pingEveryMs: 25000,
    pongTimeoutMs: 10000,
    requestTimeoutMs: 5000,
    ...opts,
  });
  return { c, timers, made, frames, statuses, events };
}

const HELLO = { type: 'hello', user: { id: '1' }, conversations: [] };

test('connects, goes online on hello, passes frames on', () => {
  const { c, made, frames, statuses } = setup();
  c.start();
  assert.equal(made.length, 1);
  assert.equal(made[0].url, 'ws://x/ws?token=t');
  assert.equal(c.isReady, false);
  assert.equal(c.send({ type: 'typing' }), false, 'nothing is sent before hello');
  made[0].frame(HELLO);
  assert.equal(c.isReady, true);
  assert.deepEqual(statuses.map((s) => s[0]), ['connecting', 'online']);
  made[0].frame({ type: 'message', message: { id: '5' } });
  assert.deepEqual(frames.map((f) => f.type), ['hello', 'message']);
  assert.equal(c.send({ type: 'typing', conversation: 'c' }), true);
  assert.deepEqual(made[0].sent, [{ type: 'typing', conversation: 'c' }]);
});

test('reconnects with growing delays, and the backoff resets after a hello', () => {
  const { c, made, timers, events } = setup();
  c.start();
  made[0].drop();
  assert.equal(events.failed, 1, 'a close before hello is reported');
  assert.deepEqual(timers.pending(), [500]);
  timers.advance(500);
  assert.equal(made.length, 2);
  made[1].drop();
  assert.deepEqual(timers.pending(), [1000]);
  timers.advance(1000);
  made[2].drop();
  assert.deepEqual(timers.pending(), [2000]);
  timers.advance(2000);
  made[3].frame(HELLO);
  made[3].drop();
  assert.equal(events.failed, 3, 'a close after hello is not a connect failure');
  assert.ok(timers.pending().includes(500), 'back to the base delay');
});

test('close code 4002 reconnects promptly without growing the backoff', () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame(HELLO);
  made[0].drop(CLOSE_DRAINING);
  const [delay] = timers.pending();
  assert.ok(delay <= 1000, `delay ${delay}`);
  timers.advance(delay);
  assert.equal(made.length, 2);
  assert.equal(c.backoff.attempt, 0);
});

test('close code 4001 stops and reports an expired token', () => {
  const { c, made, timers, events } = setup();
  c.start();
  made[0].frame(HELLO);
  made[0].drop(CLOSE_TOKEN_EXPIRED);
  assert.equal(events.expired, 1);
  assert.deepEqual(timers.pending(), []);
  timers.advance(60000);
  assert.equal(made.length, 1);
});

test('requests resolve with the answer carrying their id, reject on error and on disconnect', async () => {
  const { c, made } = setup();
  c.start();
  await assert.rejects(c.request({ type: 'history' }), (e) => e instanceof RequestError && e.code === 'disconnected');
  made[0].frame(HELLO);
  const p1 = c.request({ type: 'history', conversation: 'c', after: '5' });
  const p2 = c.request({ type: 'send', conversation: 'c', client_id: 'k', body: 'x' });
  const p3 = c.request({ type: 'send', conversation: 'c', client_id: 'k2', body: 'y' });
  const [f1, f2, f3] = made[0].sent;
  assert.notEqual(f1.id, f2.id);
  assert.equal(f1.after, '5');
  // A `message` frame is never taken for an answer even if it had an id.
  made[0].frame({ type: 'message', id: f2.id, message: { id: '9' } });
  made[0].frame({ type: 'history', id: f1.id, messages: [], next_after: null });
  made[0].frame({ type: 'error', id: f2.id, code: 'invalid_message', message: 'empty' });
  assert.deepEqual(await p1, { type: 'history', id: f1.id, messages: [], next_after: null });
  await assert.rejects(p2, (e) => e.code === 'invalid_message');
  made[0].drop();
  await assert.rejects(p3, (e) => e.code === 'disconnected');
  assert.ok(f3.id);
});

test('requests time out', async () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame(HELLO);
  const p = c.request({ type: 'history', conversation: 'c' });
  timers.advance(5000);
  await assert.rejects(p, (e) => e.code === 'timeout');
});

test('an unanswered ping drops the link and reconnects', () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame(HELLO);
  timers.advance(25000);
  assert.equal(made[0].sent.at(-1).type, 'ping');
  timers.advance(10000);
  assert.ok(made[0].closed, 'the dead socket is closed');
  assert.equal(c.isReady, false);
  timers.advance(1000);
  assert.equal(made.length, 2);
});

test('an answered ping keeps the link', () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame(HELLO);
  timers.advance(25000);
  const ping = made[0].sent.at(-1);
  made[0].frame({ type: 'pong', id: ping.id });
  timers.advance(20000);
  assert.equal(made[0].closed, null);
  assert.equal(made.length, 1);
});

test('stop closes and never reconnects; nudge skips the wait', () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].drop();
  assert.equal(made.length, 1);
  c.nudge();
  assert.equal(made.length, 2, 'nudge connects at once');
  assert.deepEqual(timers.pending(), []);
  c.stop();
  assert.equal(made[1].closed.code, 1000);
  timers.advance(100000);
  assert.equal(made.length, 2);
  c.nudge();
  assert.equal(made.length, 2);
});

test('a socket that was replaced cannot disturb the new one', () => {
  const { c, made, timers, frames } = setup();
  c.start();
  const old = made[0];
  const onmessage = old.onmessage;
  const onclose = old.onclose;
  old.drop();
  timers.advance(500);
  made[1].frame(HELLO);
  onmessage({ data: JSON.stringify({ type: 'message', message: {} }) });
  onclose({ code: 1006 });
  assert.equal(c.isReady, true);
  assert.deepEqual(frames.map((f) => f.type), ['hello']);
});

test('frames that are not JSON objects with a type are ignored', () => {
  const { c, made, frames } = setup();
  c.start();
  made[0].onmessage({ data: 'not json' });
  made[0].onmessage({ data: '[]' });
  made[0].onmessage({ data: '{"x":1}' });
  assert.deepEqual(frames, []);
});
