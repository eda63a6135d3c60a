import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api } from '../static/api.js';
import { ChatState } from '../static/state.js';
import { ListPager, conversationsPage, forgetConversation, leaveGroup } from '../static/convlist.js';

function recordingApi(answers) {
  const calls = [];
  const api = new Api({
    token: 'T',
    fetch: async (url, init) => {
      calls.push([init.method, url]);
      const r = answers.shift();
      return { ok: r.status < 300, status: r.status, text: async () => (r.body === undefined ? '' : JSON.stringify(r.body)) };
    },
  });
  return { api, calls };
}

test('list pages and leaving follow the protocol', async () => {
  const { api, calls } = recordingApi([
    { status: 200, body: { conversations: [], next_before: null } },
    { status: 200, body: { conversations: [], next_before: null } },
    { status: 204 },
  ]);
  await conversationsPage(api, { before: '1700000000000:42' });
  await conversationsPage(api, { before: 'a b', limit: 20 });
  assert.equal(await leaveGroup(api, 'g/1'), null);
  assert.deepEqual(calls, [
    ['GET', '/api/v1/conversations?before=1700000000000%3A42'],
    ['GET', '/api/v1/conversations?limit=20&before=a%20b'],
    ['DELETE', '/api/v1/conversations/g%2F1/members/me'],
  ]);
});

test('the pager follows next_before to the end, newest activity first, without duplicates', async () => {
  const st = new ChatState();
  st.applyHello({ user: { id: '1', username: 'me' }, conversations: [{ id: 'c9', kind: 'group', title: 'nine', members: [] }], next_before: 'k1' });
  const pages = {
    k1: { conversations: [{ id: 'c8', kind: 'group', title: 'eight', members: [] }, { id: 'c7', kind: 'group', title: 'seven', members: [] }], next_before: 'k2' },
    // The list moved meanwhile: c9 again, already known.
    k2: { conversations: [{ id: 'c9', kind: 'group', title: 'nine', members: [] }, { id: 'c6', kind: 'group', title: 'six', members: [] }], next_before: null },
  };
  const asked = [];
  const pager = new ListPager({
    load: async (c) => {
      asked.push(c);
      return pages[c];
    },
    add: (convs) => {
      for (const c of convs) st.upsertConversation(c);
    },
  });
  pager.reset('k1');
  assert.equal(pager.more, true);
  const first = pager.next();
  assert.equal(pager.next(), first, 'a second call while one is on the way shares it');
  assert.equal(pager.loading, true);
  assert.deepEqual((await first).map((c) => c.id), ['c8', 'c7']);
  assert.equal(pager.loading, false);
  await pager.next();
  assert.equal(pager.more, false);
  assert.deepEqual(await pager.next(), []);
  assert.deepEqual(asked, ['k1', 'k2']);
  assert.deepEqual(st.order, ['c9', 'c8', 'c7', 'c6']);
});

test('an error keeps the cursor; a new hello drops a page still on the way', async () => {
  let fail = true;
  let release;
  const added = [];
  const pager = new ListPager({
    load: async (c) => {
      if (fail) throw new Error('offline');
      if (c === 'slow') await new Promise((r) => (release = r));
      return { conversations: [{ id: c }], next_before: null };
    },
    add: (convs) => added.push(...convs.map((c) => c.id)),
  });
  pager.reset('k1');
  await assert.rejects(pager.next(), /offline/);
  assert.equal(pager.more, true);
  assert.equal(pager.loading, false);
  fail = false;
  pager.reset('slow');
  const stale = pager.next();
  while (!release) await new Promise((r) => setImmediate(r));
  pager.reset('k2');
  release();
  assert.deepEqual(await stale, []);
  assert.equal(pager.cursor, 'k2');
  await pager.next();
  assert.deepEqual(added, ['k2']);
  assert.equal(pager.more, false);
});

test('forgetting a conversation takes it out of the state and the order', () => {
  const st = new ChatState();
  st.upsertConversation({ id: 'a', kind: 'group', title: 'A', members: [] });
  st.upsertConversation({ id: 'b', kind: 'group', title: 'B', members: [] });
  forgetConversation(st, 'a');
  assert.equal(st.conv('a'), null);
  assert.deepEqual(st.order, ['b']);
});
