// The library in Node 20 against a real `chat dev`, with the `ws` package as
// the WebSocket class: two users, a burst of sends whose connection is cut
// in the middle (answers held back by a proxy, so every send of the burst is
// stored but unacked), and a receiver cut off while messages flow. Nothing
// may be lost, nothing received twice, and the outbox must have resent the
// unacked sends with the same client_id without the server storing twice.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { ChatClient, compareIds } from '../dist/index.js';
import { signup, startChatDev, startProxy, waitFor } from './server.mjs';

let server;
const cleanup = [];

before(async () => {
  server = await startChatDev();
});

after(async () => {
  for (const f of cleanup.reverse()) await f();
  if (server) await server.stop();
});

/** The ws package's WebSocket, remembering every frame each socket sent. */
function recordingWebSocket(sockets) {
  return class RecordingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      this.sentFrames = [];
      sockets.push(this);
    }
    send(data) {
      this.sentFrames.push(JSON.parse(data));
      super.send(data);
    }
  };
}

function client(base, token, sockets) {
  const got = [];
  const c = new ChatClient({
    baseUrl: base,
    token,
    WebSocket: recordingWebSocket(sockets),
    followAll: true,
    onMessage: (m) => got.push(m),
  });
  cleanup.push(() => c.stop());
  return { c, got };
}

async function allStored(base, token, convId) {
  const out = [];
  let after = '0';
  for (;;) {
    const res = await fetch(`${base}/api/v1/conversations/${encodeURIComponent(convId)}/messages?after=${after}&limit=200`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    const page = await res.json();
    out.push(...page.messages);
    if (page.next_after == null) return out;
    after = page.next_after;
  }
}

function assertNoDuplicateIds(list, who) {
  const ids = list.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${who} received a message twice`);
}

test('a burst cut in the middle and a receiver cut off: nothing lost, nothing twice, resent with the same client_id', async () => {
  const anna = await signup(server.url, 'anna');
  const billy = await signup(server.url, 'billy');
  const proxyA = await startProxy(server.url);
  const proxyB = await startProxy(server.url);
  cleanup.push(() => proxyA.close(), () => proxyB.close());

  const annaSockets = [];
  const billySockets = [];
  const A = client(proxyA.url, anna.token, annaSockets);
  const B = client(proxyB.url, billy.token, billySockets);
  const conv = await A.c.api.direct(billy.username);
  A.c.start();
  B.c.start();
  await waitFor('both connected', () => A.c.isReady && B.c.isReady && A.c.state.conv(conv.id) && B.c.state.conv(conv.id));

  const sent = [];
  const body = (i) => `message ${i}`;

  // 1. Ten sends acked normally.
  for (let i = 0; i < 10; i++) sent.push(await A.c.sendAndWait(conv.id, body(i)));

  // 2. A burst of 20 whose answers never come back: the server stores every
  // one (Billy sees them all), Anna's socket is then cut with all 20 unacked.
  proxyA.freeze();
  const burst = [];
  for (let i = 10; i < 30; i++) burst.push(A.c.sendAndWait(conv.id, body(i)));
  await waitFor('Billy has the whole burst live', () => B.got.length === 30);
  assert.equal(A.c.state.outbox.size, 20, 'the burst is unacked when the connection is cut');
  const firstSocket = annaSockets.length;
  proxyA.cut();
  const burstAcked = await Promise.all(burst);
  sent.push(...burstAcked);
  assert.ok(annaSockets.length > firstSocket, 'Anna reconnected');
  assert.equal(A.c.state.outbox.size, 0);

  // The resend: the same client_ids on the new socket, answered with the
  // messages stored the first time.
  const burstSends = annaSockets[firstSocket - 1].sentFrames.filter((f) => f.type === 'send' && /^message ([12][0-9])$/.test(f.body));
  assert.equal(burstSends.length, 20);
  const resent = annaSockets.slice(firstSocket).flatMap((s) => s.sentFrames.filter((f) => f.type === 'send'));
  for (const f of burstSends) {
    const again = resent.filter((r) => r.client_id === f.client_id);
    assert.equal(again.length, 1, `${f.body} resent once with its client_id`);
    assert.equal(again[0].body, f.body);
  }
  const liveIds = new Map(B.got.map((m) => [m.client_id, m.id]));
  for (const m of burstAcked) assert.equal(m.id, liveIds.get(m.client_id), 'the ack of a resend is the first stored message');

  // 3. Billy stops hearing anything, fifteen more are sent, then his
  // connection is cut: catch-up after the reconnect must bring all fifteen.
  proxyB.freeze();
  for (let i = 30; i < 45; i++) sent.push(await A.c.sendAndWait(conv.id, body(i)));
  const billyHello = billySockets.length;
  proxyB.cut();
  await waitFor('Billy caught up', () => billySockets.length > billyHello && B.got.length === 45, { timeoutMs: 30000 });

  // What each side holds, and what the server stored.
  assertNoDuplicateIds(A.got, 'Anna');
  assertNoDuplicateIds(B.got, 'Billy');
  const want = sent.map((m) => m.id).sort(compareIds);
  assert.equal(new Set(want).size, 45);
  assert.deepEqual(B.got.map((m) => m.id).sort(compareIds), want, 'Billy has every message');
  assert.deepEqual(A.got.map((m) => m.id).sort(compareIds), want, 'Anna has every message');
  assert.deepEqual(
    B.c.state.conv(conv.id).messages.map((m) => m.id),
    want,
    "Billy's conversation is in ID order without duplicates",
  );
  const stored = await allStored(server.url, anna.token, conv.id);
  assert.equal(stored.length, 45, 'the server stored each message once');
  assert.equal(new Set(stored.map((m) => m.client_id)).size, 45);
  assert.deepEqual(stored.map((m) => m.body).sort(), Array.from({ length: 45 }, (_, i) => body(i)).sort());
  // Billy's catch-up asked `history after` his newest known ID.
  const histories = billySockets.slice(billyHello).flatMap((s) => s.sentFrames.filter((f) => f.type === 'history'));
  assert.ok(histories.length >= 1);
  assert.equal(histories[0].after, liveIds.get(burstAcked.at(-1).client_id), 'catch-up starts after the newest message Billy knew');
});

test('a refused token is reported as expired through the HTTP API', async () => {
  let expired = 0;
  const c = new ChatClient({ baseUrl: server.url, token: 'not-a-token', WebSocket, onAuthExpired: () => expired++ });
  await assert.rejects(c.api.me(), (e) => e.status === 401 && e.code === 'unauthorized');
  assert.equal(expired, 1);
});
