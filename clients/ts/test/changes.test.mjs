// Unit tests of messages that change (docs/PROTOCOL.md, "Catching up on
// changes"): applying edits, deletions and reactions by version, quotes in
// replies, the change cursor, and the catch-up after a reconnect that pages
// `changes after` the cursor once the history catch-up is done. A scripted
// socket and manual timers; the real server is in integration.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, ChatClient, ChatState, applyChangeTo, quoteOf, reactionsAfter, validEmoji } from '../dist/index.js';

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
  const outcomes = [];
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
    onChangesCaughtUp: (conv, outcome) => outcomes.push([conv, outcome]),
    ...opts,
  });
  return { c, made, timers, outcomes };
}

const ME = { id: '1', username: 'me', display_name: 'Me' };
const conv = (id, last = null) => ({ id, kind: 'group', title: id, members: [ME], last_message: last, unread: 0 });
const msg = (id, extra = {}) => ({ id, conversation: 'c1', sender: '2', body: `m${id}`, sent_at: '2026-01-01T00:00:00.000Z', client_id: `k${id}`, ...extra });
const change = (id, kind, message_id, extra = {}) => ({ id, conversation: 'c1', kind, message_id, user: '2', at: '2026-01-02T00:00:00.000Z', ...extra });
const flush = () => new Promise((r) => setImmediate(r));
const sentOf = (ws, type) => ws.sent.filter((f) => f.type === type);

test('a change applies only above the message’s version', () => {
  const m = msg('10');
  const e = applyChangeTo(m, change('20', 'edit', '10', { body: 'fixed' }), '1');
  assert.equal(e.body, 'fixed');
  assert.equal(e.edited_at, '2026-01-02T00:00:00.000Z');
  assert.equal(e.version, '20');
  assert.equal(applyChangeTo(e, change('20', 'edit', '10', { body: 'again' }), '1'), null, 'the same change twice');
  assert.equal(applyChangeTo(e, change('19', 'react', '10', { emoji: '👍', on: true }), '1'), null, 'an older change');
  assert.equal(applyChangeTo(e, change('21', 'edit', '11', { body: 'x' }), '1'), null, 'another message’s');
  assert.equal(applyChangeTo(e, change('21', 'pin', '10'), '1'), null, 'a kind this client does not know');
  // IDs compare as unsigned 64-bit decimals, not as numbers or text.
  const big = applyChangeTo({ ...m, version: '9' }, change('10', 'edit', '10', { body: 'longer ID wins' }), '1');
  assert.equal(big.body, 'longer ID wins');
  const d = applyChangeTo({ ...e, reactions: [{ emoji: '👍', count: 2 }] }, change('22', 'delete', '10'), '1');
  assert.deepEqual([d.deleted, d.body, d.reactions, d.version], [true, '', undefined, '22']);
  assert.equal(applyChangeTo(d, change('23', 'edit', '10', { body: 'back?' }), '1').body, '', 'a deleted message stays deleted');
});

test('reactions count per emoji; mine are marked; the last one taken back removes the emoji', () => {
  let rs = reactionsAfter(undefined, '👍', true, false);
  assert.deepEqual(rs, [{ emoji: '👍', count: 1 }]);
  rs = reactionsAfter(rs, '👍', true, true);
  rs = reactionsAfter(rs, '🎉', true, true);
  assert.deepEqual(rs, [{ emoji: '👍', count: 2, me: true }, { emoji: '🎉', count: 1, me: true }]);
  rs = reactionsAfter(rs, '👍', false, true);
  assert.deepEqual(rs, [{ emoji: '👍', count: 1 }, { emoji: '🎉', count: 1, me: true }]);
  rs = reactionsAfter(rs, '🎉', false, true);
  assert.deepEqual(rs, [{ emoji: '👍', count: 1 }]);
  assert.deepEqual(reactionsAfter(rs, '😮', false, false), rs, 'taking back what is not there');
  assert.ok(validEmoji('👍') && validEmoji('👍🏽') && validEmoji('❤️'));
  assert.ok(!validEmoji(':)') && !validEmoji('') && !validEmoji('👍 ') && !validEmoji('🎉'.repeat(11)));
});

test('the state applies live changes to held messages, their quotes and the last message; an ack’s change counts once', () => {
  const st = new ChatState();
  st.me = ME;
  st.upsertConversation(conv('c1'));
  st.applyHistoryBefore('c1', [msg('12', { reply_to: '10', reply: quoteOf(msg('10')) }), msg('11'), msg('10')], null);
  assert.ok(st.applyChange(change('20', 'edit', '10', { body: 'fixed' })));
  assert.equal(st.message('c1', '10').body, 'fixed');
  assert.equal(st.message('c1', '12').reply.body, 'fixed', 'the reply’s quote follows the edit');
  assert.ok(st.applyChange(change('21', 'react', '11', { emoji: '👍', on: true, user: '1' }), { cursor: false }));
  assert.ok(!st.applyChange(change('21', 'react', '11', { emoji: '👍', on: true, user: '1' })), 'the live copy of my ack');
  assert.deepEqual(st.message('c1', '11').reactions, [{ emoji: '👍', count: 1, me: true }]);
  assert.equal(st.conv('c1').changeCursor, '21', 'from the live frame, not the ack');
  assert.ok(st.applyChange(change('22', 'delete', '10')));
  assert.deepEqual(st.message('c1', '12').reply, { id: '10', sender: '2', body: '', deleted: true });
  assert.ok(st.applyChange(change('23', 'edit', '12', { body: 'newest, edited' })));
  assert.equal(st.conv('c1').lastMessage.body, 'newest, edited', 'the list preview');
  assert.ok(!st.applyChange({ ...change('24', 'edit', '12'), conversation: 'nope' }), 'unknown conversation');
});

test('a change to a message whose page is still on its way is applied when the page lands, unless the page has it', () => {
  const st = new ChatState();
  st.me = ME;
  st.upsertConversation(conv('c1'));
  st.applyHistoryBefore('c1', [msg('30')], '29');
  // Message 25 is in the older page being loaded; its edit arrives live first.
  st.applyChange(change('40', 'edit', '25', { body: 'edited while loading' }));
  st.applyChange(change('41', 'react', '26', { emoji: '🎉', on: true }));
  st.applyHistoryBefore('c1', [msg('26', { version: '41', reactions: [{ emoji: '🎉', count: 1 }] }), msg('25')], null);
  assert.equal(st.message('c1', '25').body, 'edited while loading');
  assert.deepEqual(st.message('c1', '26').reactions, [{ emoji: '🎉', count: 1 }], 'already in the page: not counted twice');
  assert.equal(st.conv('c1').pendingChanges.length, 0);
  // An older copy never replaces a newer one.
  st.applyHistoryBefore('c1', [msg('25')], null);
  assert.equal(st.message('c1', '25').body, 'edited while loading');
});

test('after a reconnect: history after the cursor, then changes after it, page by page, applied from the messages as they are now', async () => {
  const { c, made, timers, outcomes } = setup({ followAll: true });
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('10'))] });
  let h = sentOf(made[0], 'history');
  assert.equal(sentOf(made[0], 'changes').length, 0, 'nothing held before the first hello: no changes to ask for');
  made[0].frame({ type: 'history', id: h[0].id, messages: [msg('11'), msg('12')], next_after: null });
  await flush();
  made[0].frame({ type: 'change', change: change('13', 'react', '11', { emoji: '👍', on: true }) });
  made[0].drop();
  timers.advance(500);
  made[1].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('15'))] });
  h = sentOf(made[1], 'history');
  assert.deepEqual(h.map((f) => f.after), ['12']);
  assert.equal(sentOf(made[1], 'changes').length, 0, 'changes wait for the history catch-up');
  made[1].frame({ type: 'history', id: h[0].id, messages: [msg('15')], next_after: null });
  await flush();
  let ch = sentOf(made[1], 'changes');
  assert.deepEqual(ch.map((f) => [f.conversation, f.after]), [['c1', '13']], 'after the cursor: the newest of message and change IDs');
  made[1].frame({
    type: 'changes',
    id: ch[0].id,
    conversation: 'c1',
    changes: [
      change('14', 'edit', '11', {
        body: 'x',
        message: msg('11', { body: 'edited offline', edited_at: '2026-01-02T00:00:00.000Z', version: '16', reactions: [{ emoji: '👍', count: 1 }] }),
      }),
    ],
    next_after: '14',
  });
  await flush();
  ch = sentOf(made[1], 'changes');
  assert.equal(ch.at(-1).after, '14', 'the next page');
  made[1].frame({
    type: 'changes',
    id: ch.at(-1).id,
    conversation: 'c1',
    changes: [
      change('17', 'delete', '12', { message: msg('12', { body: '', deleted: true, version: '17' }) }),
      change('18', 'react', '15', { emoji: '🎉', on: true, message: msg('15', { reactions: [{ emoji: '🎉', count: 1 }], version: '18' }) }),
    ],
    next_after: null,
  });
  await flush();
  const st = c.state;
  assert.equal(st.message('c1', '11').body, 'edited offline');
  assert.deepEqual(st.message('c1', '11').reactions, [{ emoji: '👍', count: 1 }], 'the live reaction, not counted twice');
  assert.equal(st.message('c1', '12').deleted, true);
  assert.deepEqual(st.message('c1', '15').reactions, [{ emoji: '🎉', count: 1 }]);
  assert.equal(st.conv('c1').changeCursor, '18');
  assert.equal(st.conv('c1').changesBehind, null, 'caught up');
  assert.deepEqual(outcomes, [['c1', 'done']]);
  // A live change the page already included is not applied again.
  made[1].frame({ type: 'change', change: change('18', 'react', '15', { emoji: '🎉', on: true }) });
  assert.deepEqual(st.message('c1', '15').reactions, [{ emoji: '🎉', count: 1 }]);
});

test('a changes catch-up cut off by another disconnect resumes from where it stopped, not from newer live frames', async () => {
  const { c, made, timers } = setup({ followAll: true });
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('10'))] });
  made[0].frame({ type: 'history', id: sentOf(made[0], 'history')[0].id, messages: [], next_after: null });
  await flush();
  made[0].drop();
  timers.advance(500);
  made[1].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('30'))] });
  made[1].frame({ type: 'history', id: sentOf(made[1], 'history')[0].id, messages: [msg('30')], next_after: null });
  await flush();
  const first = sentOf(made[1], 'changes')[0];
  assert.equal(first.after, '10');
  made[1].frame({ type: 'changes', id: first.id, conversation: 'c1', changes: [change('20', 'edit', '10', { message: msg('10', { body: 'e', version: '20' }) })], next_after: '20' });
  await flush();
  made[1].frame({ type: 'change', change: change('40', 'react', '30', { emoji: '👍', on: true }) });
  made[1].drop();
  timers.advance(1000);
  made[2].frame({ type: 'hello', user: ME, conversations: [conv('c1', msg('30'))] });
  made[2].frame({ type: 'history', id: sentOf(made[2], 'history')[0].id, messages: [], next_after: null });
  await flush();
  assert.equal(sentOf(made[2], 'changes')[0].after, '20', 'not 40: changes between 20 and 40 were never seen');
});

test('edit, delete and react send their frames with a client_id, apply the ack, and retry a busy server with the same client_id', async () => {
  const { c, made, timers } = setup();
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1')] });
  c.state.applyHistoryBefore('c1', [msg('10', { sender: ME.id })], null);
  const p = c.edit('c1', '10', 'better');
  const f1 = sentOf(made[0], 'edit')[0];
  assert.deepEqual([f1.conversation, f1.message_id, f1.body], ['c1', '10', 'better']);
  assert.ok(f1.client_id && f1.id);
  made[0].frame({ type: 'error', id: f1.id, code: 'unavailable', message: 'retry' });
  await flush();
  timers.advance(1000);
  await flush();
  const f2 = sentOf(made[0], 'edit')[1];
  assert.equal(f2.client_id, f1.client_id, 'the same client_id: stored once');
  made[0].frame({ type: 'ack', id: f2.id, change: change('20', 'edit', '10', { body: 'better', user: ME.id, client_id: f1.client_id }) });
  assert.equal((await p).id, '20');
  assert.equal(c.state.message('c1', '10').body, 'better');
  assert.equal(c.state.conv('c1').changeCursor, null, 'an ack does not move the cursor');

  const r = c.react('c1', '10', '👍');
  const fr = sentOf(made[0], 'react')[0];
  assert.equal(fr.emoji, '👍');
  made[0].frame({ type: 'ack', id: fr.id, change: change('21', 'react', '10', { emoji: '👍', on: true, user: ME.id }) });
  await r;
  assert.deepEqual(c.state.message('c1', '10').reactions, [{ emoji: '👍', count: 1, me: true }]);

  const d = c.delete('c1', '10');
  const fd = sentOf(made[0], 'delete')[0];
  made[0].frame({ type: 'error', id: fd.id, code: 'forbidden', message: 'no' });
  await assert.rejects(d, (e) => e.code === 'forbidden', 'refused for good: no retry');
  await assert.rejects(c.edit('c1', '10', '   '), (e) => e.code === 'invalid_message');
  await assert.rejects(c.react('c1', '10', ':)'), (e) => e.code === 'invalid_message');
  assert.equal(sentOf(made[0], 'edit').length, 2, 'bad input never reaches the server');
});

test('a reply carries reply_to, in the frame and across a saved outbox', () => {
  let n = 0;
  const { c, made } = setup({ random: () => (n++ % 97) / 97 });
  c.start();
  made[0].frame({ type: 'hello', user: ME, conversations: [conv('c1')] });
  const e = c.send('c1', 'answer', { replyTo: '10' });
  assert.equal(sentOf(made[0], 'send')[0].reply_to, '10');
  const plain = c.send('c1', 'plain');
  assert.equal('reply_to' in sentOf(made[0], 'send')[1], false, 'absent when not a reply');
  const saved = c.state.exportOutbox();
  const st = new ChatState();
  st.importOutbox(saved);
  assert.equal(st.outbox.get(e.client_id).reply_to, '10');
  assert.equal(st.outbox.get(plain.client_id).reply_to, undefined);
});
