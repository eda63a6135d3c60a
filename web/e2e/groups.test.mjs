// The conversation list a page at a time, and leaving a group, in Debian's
// Chromium against a real `chat dev` whose hello lists only 3
// conversations (--hello-conversations 3, which is also the most a list
// page holds): Anna is in 7 groups and a direct conversation; the list
// shows the 3 most recent and pages through the rest, newest activity
// first, by a keyboard-reachable "Show more conversations" button and by
// scrolling to its end. Then Anna leaves a group after a confirmation: it
// goes from her list in both her tabs, and Billy stays in it without her.
//
//   cd web && node --test e2e/groups.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { World, PASSWORD, checkA11y, convNav } from './harness.mjs';

const HELLO = 3;
const GROUPS = 7;
const w = new World({ args: ['--hello-conversations', String(HELLO)] });
let anna;
let billy;
const tokens = {};
const groups = []; // oldest first: {id, title}

async function api(method, path, token, body) {
  const res = await fetch(w.url('/api/v1' + path), {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function logIn(p) {
  await p.page.goto(w.url('/'));
  await p.page.getByLabel('Username').fill(p.username);
  await p.page.getByLabel('Password').fill(PASSWORD);
  await p.page.getByRole('button', { name: 'Log in' }).click();
  await convNav(p.page).waitFor();
}

/** The names of the conversation links, top to bottom. */
async function listed(page) {
  return convNav(page).getByRole('link').evaluateAll((as) => as.map((a) => a.querySelector('.conv-name').firstChild.textContent));
}

async function until(what, check, timeout = 20000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last === true) return;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: last saw ${JSON.stringify(last)}`);
}

const titles = (from, to) => groups.slice(from, to).map((g) => g.title).reverse();

before(async () => {
  await w.start();
  anna = await w.person('anna');
  billy = await w.person('billy');
  for (const p of [anna, billy]) {
    const r = await api('POST', '/signup', null, { username: p.username, password: PASSWORD, display_name: p.key === 'anna' ? 'Anna Adams' : 'Billy Brown' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    tokens[p.key] = r.body.token;
  }
  // The direct conversation first: the oldest activity of all.
  assert.equal((await api('POST', '/conversations/direct', tokens.anna, { username: billy.username })).status, 200);
  for (let i = 1; i <= GROUPS; i++) {
    const r = await api('POST', '/conversations', tokens.anna, { title: `Group ${i}`, members: [billy.username] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    groups.push({ id: r.body.id, title: `Group ${i}` });
  }
});

after(async () => {
  await w.stop();
  assert.deepEqual(w.pageErrors, []);
});

test('the list shows hello’s conversations and pages through the rest with the keyboard, newest activity first', async () => {
  const page = anna.page;
  await logIn(anna);
  await until('hello’s 3 conversations', async () => JSON.stringify(await listed(page)) === JSON.stringify(titles(GROUPS - HELLO, GROUPS)));
  const more = convNav(page).getByRole('button', { name: 'Show more conversations' });
  await more.waitFor();
  await checkA11y(page, 'a list with more to load');

  // Keyboard only: focus the button, Enter; focus lands on the first
  // conversation the page brought.
  await more.focus();
  await page.keyboard.press('Enter');
  await until('the second page', async () => (await listed(page)).length === 2 * HELLO);
  assert.deepEqual(await listed(page), titles(GROUPS - 2 * HELLO, GROUPS));
  await until('focus on the first new conversation', async () => (await page.evaluate(() => document.activeElement?.querySelector?.('.conv-name')?.firstChild?.textContent)) === `Group ${GROUPS - HELLO}`);
  assert.match(await page.locator('#conv-more-status').textContent(), /^3 more conversations loaded\.$/);

  // The last page: Group 1 and the direct conversation; then no button.
  await more.focus();
  await page.keyboard.press('Space');
  await until('the whole list', async () => (await listed(page)).length === GROUPS + 1);
  assert.deepEqual(await listed(page), [...titles(0, GROUPS), 'Billy Brown']);
  await more.waitFor({ state: 'hidden' });
  assert.match(await page.locator('#conv-more-status').textContent(), /that is all/);

  // A conversation from a later page works like any other.
  await convNav(page).getByRole('link', { name: /^Group 1\b/ }).click();
  await page.getByRole('heading', { name: 'Group 1' }).waitFor();
});

test('scrolling to the end of the list loads the next page', async () => {
  const page = billy.page;
  await page.setViewportSize({ width: 1280, height: 330 });
  await logIn(billy);
  await until('hello’s 3 conversations', async () => (await listed(page)).length === HELLO);
  const nav = page.locator('#conv-nav');
  const scrollable = await nav.evaluate((n) => n.scrollHeight > n.clientHeight);
  assert.ok(scrollable, 'the list must scroll in a short window for this test');
  let n = HELLO;
  while (n < GROUPS + 1) {
    await nav.evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    const before = n;
    await until(`a page after ${before}`, async () => (n = (await listed(page)).length) > before);
  }
  assert.deepEqual(await listed(page), [...titles(0, GROUPS), 'Anna Adams']);
  await nav.getByRole('button', { name: 'Show more conversations' }).waitFor({ state: 'hidden' });
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('leaving a group: confirmed in a dialog, gone from both of Anna’s tabs, Billy stays without her', async () => {
  const page = anna.page;
  const g = groups[0];
  const other = await anna.context.newPage();
  await other.goto(w.url('/'));
  await convNav(other).waitFor();
  // The second tab's hello lists the 3 newest; Group 1 is older. Open it by its URL.
  await other.goto(w.url(`/g/${g.id}/`));
  await other.getByRole('heading', { name: g.title }).waitFor();

  // A direct conversation offers no leaving.
  await page.goto(w.url(`/${billy.username}/`));
  await page.getByRole('heading', { name: 'Billy Brown' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Leave group' }).isVisible(), false);

  await page.goto(w.url(`/g/${g.id}/`));
  await page.getByRole('heading', { name: g.title }).waitFor();
  const leave = page.locator('#leave-group');
  await leave.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: `Leave “${g.title}”?` });
  await dialog.waitFor();
  await checkA11y(page, 'the leave dialog');
  // Cancel has the focus: Escape (or Cancel) changes nothing.
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Cancel');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'leave-group', 'focus goes back to the button');
  let members = await api('GET', `/conversations/${g.id}/members`, tokens.billy);
  assert.equal(members.body.member_count, 2);

  await leave.click();
  await dialog.getByRole('button', { name: 'Leave group' }).click();
  await page.waitForURL(w.url('/'));
  await until('Group 1 gone from the list', async () => !(await listed(page)).includes(g.title));
  // The other tab got the `left` frame: the group is gone there too.
  await until('Group 1 gone from the other tab', async () => (await other.getByRole('heading', { name: g.title }).count()) === 0 && !(await listed(other)).includes(g.title));
  await other.close();

  members = await api('GET', `/conversations/${g.id}/members`, tokens.billy);
  assert.equal(members.status, 200);
  assert.equal(members.body.member_count, 1);
  assert.deepEqual(members.body.members.map((u) => u.username), [billy.username]);
  assert.equal((await api('GET', `/conversations/${g.id}/members`, tokens.anna)).status, 404);
});
