import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Backoff,
  ChatState,
  AUTO_SEND_TRIES,
  MAX_CATCHUP_PAGES,
  OUTBOX_STALE_MS,
  TYPING_SHOW_MS,
  Throttle,
  compareIds,
  drainDelay,
  maxId,
  mergeMessages,
  newClientId,
  validBody,
} from '../static/state.js';

const ME = { id: '1', username: 'me', display_name: 'Me' };
const BILLY = { id: '2', username: 'billy', display_name: 'Billy' };
const ANNA = { id: '3', username: 'anna', display_name: 'Anna' };

function msg(id, sender = BILLY.id, conversation = 'c1', extra = {}) {
  return { id, conversation, sender, body: `m${id}`, sent_at: '2026-11-26T19:10:32.123Z', client_id: `k${id}`, ...extra };
}

function conv(id = 'c1', extra = {}) {
  return { id, kind: 'direct', title: 'Billy', members: [{ ...ME, online: true }, { ...BILLY, online: false }], last_message: null, unread: 0, ...extra };
}

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function seq(values) {
  let i = 0;
  return () => values[i++ % values.length];
}

test('compareIds orders unsigned 64-bit decimals without losing precision', () => {
  assert.equal(compareIds('9', '10'), -1);
  assert.equal(compareIds('10', '9'), 1);
  assert.equal(compareIds('123', '123'), 0);
  // Beyond 2^53, Number would call these equal.
  assert.equal(compareIds('18446744073709551615', '18446744073709551614'), 1);
  assert.equal(compareIds('9007199254740993', '9007199254740992'), 1);
  assert.equal(compareIds('007', '7'), 0);
  assert.equal(compareIds('0', '1'), -1);
  const ids = ['100', '20', '3', '18446744073709551615', '99'];
  assert.deepEqual(ids.sort(compareIds), ['3', '20', '99', '100', '18446744073709551615']);
});

test('maxId treats null as the smallest', () => {
  assert.equal(maxId(null, '5'), '5');
  assert.equal(maxId('5', null), '5');
  assert.equal(maxId('10', '9'), '10');
  assert.equal(maxId(null, undefined), null);
});

test('mergeMessages sorts by ID and drops duplicates', () => {
  let r = mergeMessages([], [msg('30'), msg('10'), msg('20')]);
  assert.deepEqual(r.list.map((m) => m.id), ['10', '20', '30']);
  assert.equal(r.added, 3);
  r = mergeMessages(r.list, [msg('20'), msg('100'), msg('5'), msg('100')]);
  assert.deepEqual(r.list.map((m) => m.id), ['5', '10', '20', '30', '100']);
  assert.equal(r.added, 2);
  // Bad entries are ignored rather than breaking the order.
  r = mergeMessages(r.list, [null, { id: 12 }, { id: 'x' }]);
  assert.equal(r.added, 0);
  assert.equal(r.list.length, 5);
});

test('Backoff grows exponentially, stays within [cap/2, cap], is capped and resets', () => {
  const low = new Backoff({ base: 100, max: 1000, random: () => 0 });
  const high = new Backoff({ base: 100, max: 1000, random: () => 0.999999 });
  const lows = Array.from({ length: 6 }, () => low.next());
  const highs = Array.from({ length: 6 }, () => high.next());
  assert.deepEqual(lows, [50, 100, 200, 400, 500, 500]);
  assert.deepEqual(highs, [100, 200, 400, 800, 1000, 1000]);
  low.reset();
  assert.equal(low.next(), 50);
});

test('Backoff jitter spreads clients out', () => {
  const b = new Backoff({ base: 1000, max: 30000, random: seq([0.1, 0.9]) });
  b.attempt = 3;
  const a = b.next();
  b.attempt = 3;
  const c = b.next();
  assert.notEqual(a, c);
  assert.ok(a >= 4000 && a <= 8000 && c >= 4000 && c <= 8000);
});

test('drainDelay is short', () => {
  assert.ok(drainDelay(() => 0) >= 0);
  assert.ok(drainDelay(() => 0.9999) <= 1000);
});

test('newClientId is printable ASCII of at most 64 characters and differs each time', () => {
  const a = newClientId();
  const b = newClientId();
  assert.match(a, /^[\x21-\x7e]{1,64}$/);
  assert.notEqual(a, b);
});

test('validBody follows the protocol', () => {
  assert.equal(validBody('hi'), true);
  assert.equal(validBody('   '), false);
  assert.equal(validBody('\n\t'), false);
  assert.equal(validBody(''), false);
  assert.equal(validBody('x'.repeat(4096)), true);
  assert.equal(validBody('x'.repeat(4097)), false);
  // Code points, not UTF-16 units.
  assert.equal(validBody('😀'.repeat(4096)), true);
});

test('Throttle lets one typing frame through per interval', () => {
  const c = clock();
  const t = new Throttle(3000, c.now);
  assert.equal(t.take(), true);
  assert.equal(t.take(), false);
  c.t += 2999;
  assert.equal(t.take(), false);
  c.t += 1;
  assert.equal(t.take(), true);
  t.reset();
  assert.equal(t.take(), true);
});

test('hello sets the user, conversations in server order, presence', () => {
  const s = new ChatState();
  const plan = s.applyHello({
    type: 'hello',
    user: ME,
    conversations: [conv('c2', { members: [ME, { ...ANNA, online: true }] }), conv('c1', { last_message: msg('7'), unread: 2 })],
  });
  assert.deepEqual(plan, []);
  assert.equal(s.me.id, '1');
  assert.deepEqual(s.order, ['c2', 'c1']);
  assert.equal(s.user('3').online, true);
  assert.equal(s.user('2').online, false);
  assert.equal(s.conv('c1').unread, 2);
  assert.equal(s.peer('c1').username, 'billy');
  assert.equal(s.directWith('BILLY').id, 'c1');
  assert.equal(s.title('c1'), 'Billy');
});

test('messages are kept in ID order, deduplicated, and bump the conversation', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1'), conv('c2')] });
  assert.deepEqual(s.order, ['c1', 'c2']);
  s.addMessage(msg('20', BILLY.id, 'c2'));
  s.addMessage(msg('10', BILLY.id, 'c2'));
  const dup = s.addMessage(msg('20', BILLY.id, 'c2'));
  assert.equal(dup.added, false);
  assert.deepEqual(s.conv('c2').messages.map((m) => m.id), ['10', '20']);
  assert.equal(s.conv('c2').lastMessage.id, '20');
  assert.deepEqual(s.order, ['c2', 'c1']);
  // A new message counts as unread unless being viewed; a duplicate never does.
  assert.equal(s.conv('c2').unread, 1);
  s.addMessage(msg('30', BILLY.id, 'c2'), { viewing: true });
  assert.equal(s.conv('c2').unread, 1);
});

test('a message for an unknown conversation is kept and flagged', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [] });
  const r = s.addMessage(msg('5', ANNA.id, 'g9'));
  assert.equal(r.unknownConversation, true);
  assert.deepEqual(s.order, ['g9']);
});

test('outbox: pending until ack, keyed by client_id, ack replaces the pending entry', () => {
  const c = clock();
  const s = new ChatState({ now: c.now });
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  const e = s.enqueue('c1', 'hello');
  assert.equal(e.status, 'queued');
  let tl = s.timeline('c1');
  assert.equal(tl.length, 1);
  assert.equal(tl[0].status, 'pending');
  assert.equal(tl[0].key, `c:${e.client_id}`);
  assert.deepEqual(s.sendable().map((x) => x.client_id), [e.client_id]);
  s.markSending(e.client_id, 'r1');
  assert.deepEqual(s.sendable(), []);
  s.applyAck(msg('100', ME.id, 'c1', { client_id: e.client_id, body: 'hello' }));
  tl = s.timeline('c1');
  assert.equal(tl.length, 1);
  assert.equal(tl[0].status, 'sent');
  assert.equal(tl[0].key, `c:${e.client_id}`, 'the key survives the ack so the view keeps the element');
  assert.equal(s.outbox.size, 0);
  // The same message coming back as a `message` frame changes nothing.
  s.addMessage(msg('100', ME.id, 'c1', { client_id: e.client_id, body: 'hello' }));
  assert.equal(s.timeline('c1').length, 1);
});

test('a live copy of my own message from another tab settles the outbox too', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  const e = s.enqueue('c1', 'hi');
  s.markSending(e.client_id, 'r1');
  s.addMessage(msg('50', ME.id, 'c1', { client_id: e.client_id }));
  assert.equal(s.outbox.size, 0);
});

test('failed sends keep their client_id on retry; a disconnect requeues sends in flight', () => {
  const c = clock();
  const s = new ChatState({ now: c.now });
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  const a = s.enqueue('c1', 'one');
  c.t += 1;
  const b = s.enqueue('c1', 'two');
  s.markSending(a.client_id, 'r1');
  s.markSending(b.client_id, 'r2');
  s.markFailed(a.client_id, 'unavailable');
  assert.equal(s.timeline('c1')[0].status, 'failed');
  assert.equal(s.retry(a.client_id).client_id, a.client_id);
  s.applyDisconnect();
  // Both go out again in the order they were written, with the same client_ids.
  assert.deepEqual(s.sendable().map((x) => x.client_id), [a.client_id, b.client_id]);
  assert.equal(s.retry(b.client_id), null, 'only failed entries are retried by hand');
});

test('rate limits and a busy server are retried a few times, other errors wait for the user', () => {
  const s = new ChatState({ random: () => 0 });
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  const e = s.enqueue('c1', 'x');
  const delays = [];
  for (let i = 1; i < AUTO_SEND_TRIES; i++) {
    s.markSending(e.client_id, `r${i}`);
    delays.push(s.sendFailed(e.client_id, i % 2 ? 'rate_limited' : 'unavailable'));
    assert.equal(s.outbox.get(e.client_id).status, 'queued');
    assert.equal(s.outbox.get(e.client_id).client_id, e.client_id);
  }
  assert.deepEqual(delays, [250, 500, 1000]);
  s.markSending(e.client_id, 'rN');
  assert.equal(s.sendFailed(e.client_id, 'rate_limited'), null);
  assert.equal(s.outbox.get(e.client_id).status, 'failed');
  // Retry by hand starts the count again.
  s.retry(e.client_id);
  assert.notEqual(s.sendFailed(e.client_id, 'timeout'), null);
  const f = s.enqueue('c1', 'bad');
  assert.equal(s.sendFailed(f.client_id, 'invalid_message'), null);
  assert.equal(s.outbox.get(f.client_id).status, 'failed');
});

test('a conversation frame does not reset the unread count', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1', { unread: 4, last_message: msg('9') })] });
  s.upsertConversation(conv('c1', { unread: 0, last_message: null }), { keepCounts: true });
  assert.equal(s.conv('c1').unread, 4);
  assert.equal(s.conv('c1').lastMessage.id, '9');
});

test('the outbox survives export and import', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  const e = s.enqueue('c1', 'later');
  const f = s.enqueue('c1', 'broken');
  s.markFailed(f.client_id, 'invalid_message');
  const t = new ChatState();
  t.importOutbox(JSON.parse(JSON.stringify(s.exportOutbox())));
  t.importOutbox([{ bogus: true }, null]);
  assert.equal(t.outbox.get(e.client_id).status, 'queued');
  assert.equal(t.outbox.get(f.client_id).status, 'failed');
  assert.equal(t.outbox.size, 2);
});

test('old saved entries come back failed, not resent on their own', () => {
  const c = clock();
  const s = new ChatState({ now: c.now });
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  const e = s.enqueue('c1', 'long ago');
  const saved = s.exportOutbox();
  c.t += OUTBOX_STALE_MS + 1;
  const t = new ChatState({ now: c.now });
  t.importOutbox(saved);
  assert.equal(t.outbox.get(e.client_id).status, 'failed');
  assert.deepEqual(t.sendable(), []);
  // A stored copy found in history settles it.
  t.applyHello({ user: ME, conversations: [conv('c1')] });
  t.applyHistoryBefore('c1', [msg('70', ME.id, 'c1', { client_id: e.client_id })], null);
  assert.equal(t.outbox.size, 0);
});

test('catch-up plan uses the newest ID known at hello time, not later live messages', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1'), conv('c2'), conv('c3')] });
  s.applyHistoryBefore('c1', [msg('20'), msg('10')], null);
  s.applyHistoryBefore('c2', [msg('18446744073709551615', BILLY.id, 'c2')], null);
  // c3 was never opened: its list entry comes fresh from the next hello.
  s.addMessage(msg('5', BILLY.id, 'c3'));
  s.applyDisconnect();
  const plan = s.applyHello({
    user: ME,
    conversations: [
      conv('c1', { last_message: msg('40') }),
      conv('c2', { last_message: msg('18446744073709551615', BILLY.id, 'c2') }),
      conv('c3', { last_message: msg('9', BILLY.id, 'c3') }),
    ],
  });
  assert.deepEqual(plan, [
    { conversation: 'c1', after: '20' },
    { conversation: 'c2', after: '18446744073709551615' },
  ]);
  // The tail of the unopened c3 would leave a hole under its new last message.
  assert.deepEqual(s.conv('c3').messages.map((m) => m.id), []);
  // Live messages right after hello do not change the gap's start...
  s.addMessage(msg('50'));
  // ...and catch-up fills it.
  let r = s.applyHistoryAfter('c1', [msg('30'), msg('40')], '40', 1);
  assert.deepEqual(r, { next: '40', added: 2 });
  r = s.applyHistoryAfter('c1', [msg('50')], null, 2);
  assert.equal(r.done, true);
  assert.deepEqual(s.conv('c1').messages.map((m) => m.id), ['10', '20', '30', '40', '50']);
});

test('catch-up gives up after too many pages and asks for a reload', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  s.applyHistoryBefore('c1', [msg('1')], null);
  const r = s.applyHistoryAfter('c1', [msg('2')], '2', MAX_CATCHUP_PAGES);
  assert.equal(r.reload, true);
  assert.equal(s.conv('c1').loaded, false);
  assert.equal(s.conv('c1').messages.length, 0);
  assert.equal(s.hasOlder('c1'), true);
});

test('history before: cursor moves back only, and null means no more', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  assert.equal(s.hasOlder('c1'), true);
  s.applyHistoryBefore('c1', [msg('30'), msg('20')], '20');
  assert.equal(s.conv('c1').nextBefore, '20');
  s.applyHistoryBefore('c1', [msg('10')], null);
  assert.equal(s.hasOlder('c1'), false);
  // A late answer to an earlier page does not bring the cursor back.
  s.applyHistoryBefore('c1', [msg('30')], '30');
  assert.equal(s.hasOlder('c1'), false);
  assert.deepEqual(s.conv('c1').messages.map((m) => m.id), ['10', '20', '30']);
});

test('read marks move forward only; my own read clears unread', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1', { unread: 0 })] });
  s.applyHistoryBefore('c1', [], null);
  s.addMessage(msg('10'));
  s.addMessage(msg('11'));
  s.addMessage(msg('12'));
  assert.equal(s.conv('c1').unread, 3);
  // My other tab read up to 11.
  s.applyRead('c1', ME.id, '11');
  assert.equal(s.conv('c1').unread, 1);
  assert.equal(s.applyRead('c1', ME.id, '10'), false);
  assert.equal(s.conv('c1').unread, 1);
  // Reading here sends the newest ID once.
  assert.equal(s.markRead('c1'), '12');
  assert.equal(s.conv('c1').unread, 0);
  assert.equal(s.markRead('c1'), null);
});

test('seen marks: under my newest message at or before the peer’s read mark', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  s.applyHistoryBefore('c1', [msg('40', ME.id), msg('30', BILLY.id), msg('20', ME.id), msg('10', ME.id)], null);
  // Billy wrote 30, so he saw 20.
  assert.deepEqual([...s.seenMarks('c1')], [['20', ['2']]]);
  s.applyRead('c1', BILLY.id, '35');
  assert.deepEqual([...s.seenMarks('c1')], [['20', ['2']]]);
  s.applyRead('c1', BILLY.id, '40');
  assert.deepEqual([...s.seenMarks('c1')], [['40', ['2']]]);
  s.applyRead('c1', BILLY.id, '25');
  assert.deepEqual([...s.seenMarks('c1')], [['40', ['2']]], 'marks never move back');
});

test('a reply implies the replier read what came before', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  s.applyHistoryBefore('c1', [msg('30', BILLY.id), msg('20', ME.id), msg('10', ME.id)], null);
  assert.deepEqual([...s.seenMarks('c1')], [['20', ['2']]]);
  s.addMessage(msg('40', ME.id));
  assert.deepEqual([...s.seenMarks('c1')], [['20', ['2']]]);
  s.addMessage(msg('50', BILLY.id));
  assert.deepEqual([...s.seenMarks('c1')], [['40', ['2']]]);
});

test('a read mark carried on a member is used', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1', { members: [ME, { ...BILLY, last_read_id: '20' }] })] });
  s.applyHistoryBefore('c1', [msg('20', ME.id)], null);
  assert.deepEqual([...s.seenMarks('c1')], [['20', ['2']]]);
});

test('typing shows for a few seconds and stops with a message from that user', () => {
  const c = clock();
  const s = new ChatState({ now: c.now });
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  assert.equal(s.applyTyping('c1', ME.id), false, 'my own typing is not shown');
  s.applyTyping('c1', BILLY.id);
  assert.deepEqual(s.typingUsers('c1'), ['2']);
  c.t += TYPING_SHOW_MS - 1;
  assert.deepEqual(s.typingUsers('c1'), ['2']);
  c.t += 1;
  assert.deepEqual(s.typingUsers('c1'), []);
  s.applyTyping('c1', BILLY.id);
  s.addMessage(msg('9'));
  assert.deepEqual(s.typingUsers('c1'), []);
});

test('presence updates users, including ones first met in presence', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  assert.equal(s.peer('c1').online, false);
  s.applyPresence(BILLY.id, true);
  assert.equal(s.peer('c1').online, true);
  assert.equal(s.anyoneOnline('c1'), true);
  s.applyPresence('77', true);
  assert.equal(s.user('77').online, true);
  // A later conversation update without `online` keeps what presence said.
  s.upsertConversation(conv('c1', { members: [ME, BILLY] }));
  assert.equal(s.peer('c1').online, true);
});

test('conversation frames: a new one goes first, an update keeps its place', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1'), conv('c2')] });
  s.upsertConversation({ id: 'g1', kind: 'group', title: 'Team', members: [ME, BILLY] }, { front: true });
  assert.deepEqual(s.order, ['g1', 'c1', 'c2']);
  s.upsertConversation({ id: 'g1', kind: 'group', title: 'Team', members: [ME, BILLY, ANNA] });
  assert.deepEqual(s.order, ['g1', 'c1', 'c2']);
  assert.equal(s.conv('g1').members.length, 3);
  assert.equal(s.title('g1'), 'Team');
});

test('a hello for a different account forgets everything', () => {
  const s = new ChatState();
  s.applyHello({ user: ME, conversations: [conv('c1')] });
  s.enqueue('c1', 'x');
  s.applyHello({ user: BILLY, conversations: [] });
  assert.equal(s.convs.size, 0);
  assert.equal(s.outbox.size, 0);
});
