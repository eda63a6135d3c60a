// Messages that change, in two browsers against a real `chat dev`: Anna
// edits (the up arrow, the Edit button; Escape cancels), deletes after a
// confirmation, Billy replies with a quote that leads back to the original,
// both react; each change shows live on the other side. Then Billy is
// offline twice: with his page closed (the reopened page loads the changed
// state) and with the page open but its connection cut (the client catches
// up with `changes after` its cursor and patches what it holds).
//
//   cd web && node --test --test-concurrency=1 e2e/

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { World, checkA11y, log, messageBox, messageById, messageIn, send } from './harness.mjs';

const w = new World();
let a;
let b;
const ids = {};

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

/** Sends text and returns the stored message's ID once both people have it. */
async function sendSeen(from, to, text) {
  await send(from.page, text);
  const mine = log(from.page).locator('li.msg[data-status=sent]').filter({ has: from.page.locator('p.body', { hasText: text }) }).last();
  await mine.waitFor();
  const id = await mine.getAttribute('data-id');
  assert.ok(id, 'a stored message has its ID');
  await messageById(to.page, id).waitFor();
  return id;
}

/** A button of a message's own controls. */
function action(page, id, name) {
  return messageById(page, id).getByRole('button', { name, exact: true });
}

async function bodyOf(page, id) {
  return messageById(page, id).locator('p.body').textContent();
}

/** Polls until check() is true (a deadline, not a sleep). */
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

async function reactionChip(page, id, emoji) {
  const chip = messageById(page, id).locator('.reaction').filter({ hasText: emoji });
  if ((await chip.count()) === 0) return null;
  return { count: (await chip.locator('.r-count').textContent()).trim(), pressed: await chip.getAttribute('aria-pressed'), name: await chip.getAttribute('aria-label') };
}

test('edit: the up arrow edits my last message, Escape cancels, Enter saves; the other person sees it live', async () => {
  ids.lunch = await sendSeen(a, b, 'Lunch at noon?');
  ids.typo = await sendSeen(a, b, 'See you thre');
  const box = messageBox(a.page);
  await box.click();
  await a.page.keyboard.press('ArrowUp');
  assert.equal(await box.inputValue(), 'See you thre', 'the up arrow puts my last message in the composer');
  await a.page.getByText('Editing your message').waitFor();
  await a.page.getByRole('button', { name: 'Save' }).waitFor();
  assert.match(await box.getAttribute('aria-describedby'), /compose-context-text/, 'the composer says it is editing');
  await checkA11y(a.page, 'editing');
  await a.page.keyboard.press('Escape');
  assert.equal(await box.inputValue(), '', 'Escape gives the empty draft back');
  await a.page.getByRole('heading', { name: 'Billy Brown' }).waitFor();
  assert.equal(await a.page.getByText('Editing your message').isVisible(), false);
  assert.equal(await bodyOf(a.page, ids.typo), 'See you thre', 'cancelled: unchanged');

  await a.page.keyboard.press('ArrowUp');
  await a.page.keyboard.press('Control+A');
  await a.page.keyboard.type('See you there');
  await a.page.keyboard.press('Enter');
  assert.equal(await box.inputValue(), '');
  for (const p of [a, b]) {
    await until(`${p.key} sees the edit`, async () => (await bodyOf(p.page, ids.typo)) === 'See you there');
    await messageById(p.page, ids.typo).locator('.edited', { hasText: 'edited' }).waitFor();
  }
  // The Edit button does the same for an older message; a draft survives it.
  await box.fill('half-written draft');
  await action(a.page, ids.lunch, 'Edit').click();
  assert.equal(await box.inputValue(), 'Lunch at noon?');
  await box.fill('Lunch at 12:30?');
  await a.page.keyboard.press('Enter');
  assert.equal(await box.inputValue(), 'half-written draft', 'the draft comes back after saving');
  await until('Billy sees the older edit', async () => (await bodyOf(b.page, ids.lunch)) === 'Lunch at 12:30?');
  await box.fill('');
  assert.equal(await action(b.page, ids.lunch, 'Edit').count(), 0, 'no Edit on someone else’s message');
});

test('delete: only after a confirmation, and for both people', async () => {
  ids.oops = await sendSeen(a, b, 'Oops, wrong chat');
  await action(a.page, ids.oops, 'Delete').click();
  const dialog = a.page.getByRole('dialog', { name: 'Delete this message?' });
  await dialog.waitFor();
  await checkA11y(a.page, 'delete confirmation');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await bodyOf(a.page, ids.oops), 'Oops, wrong chat', 'cancelled: not deleted');
  assert.equal(await bodyOf(b.page, ids.oops), 'Oops, wrong chat');
  await action(a.page, ids.oops, 'Delete').click();
  await dialog.getByRole('button', { name: 'Delete' }).click();
  for (const p of [a, b]) {
    await messageById(p.page, ids.oops).locator('.tombstone', { hasText: 'Message deleted' }).waitFor();
    assert.equal(await messageById(p.page, ids.oops).locator('p.body').count(), 0, `${p.key}: the text is gone`);
    assert.equal(await messageById(p.page, ids.oops).getByRole('button', { name: 'Reply' }).count(), 0, 'nothing to do with a deleted message');
  }
});

test('reply: the quote shows the original, follows its edits, and scrolls to it', async () => {
  for (let i = 1; i <= 20; i++) {
    await messageBox(b.page).fill(`Filler ${i}`);
    await b.page.keyboard.press('Enter');
  }
  await messageIn(a.page, 'Filler 20').waitFor();
  await action(b.page, ids.lunch, 'Reply').click();
  await b.page.getByText('Replying to Anna Adams').waitFor();
  await messageBox(b.page).fill('Yes, that works');
  await b.page.keyboard.press('Enter');
  const reply = messageIn(b.page, 'Yes, that works');
  await reply.waitFor();
  await b.page.locator('li.msg[data-status=sent]', { hasText: 'Yes, that works' }).waitFor();
  ids.reply = await reply.getAttribute('data-id');
  for (const p of [a, b]) {
    const quote = messageById(p.page, ids.reply).getByRole('button', { name: /^In reply to Anna Adams\s+Lunch at 12:30\?/ });
    await quote.waitFor();
  }
  // Anna scrolls down and follows the quote back to her message.
  await log(a.page).evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
  const inView = (page, id) =>
    page.evaluate((id) => {
      const el = document.querySelector(`li.msg[data-id="${id}"]`);
      const box = document.querySelector('[role=log]').getBoundingClientRect();
      const r = el.getBoundingClientRect();
      return r.bottom > box.top && r.top < box.bottom;
    }, id);
  await until('the original is out of view before', async () => (await inView(a.page, ids.lunch)) === false);
  await messageById(a.page, ids.reply).getByRole('button', { name: /^In reply to/ }).click();
  await until('the original scrolled into view', async () => (await inView(a.page, ids.lunch)) === true);
  await until('and focused', async () => (await a.page.evaluate(() => document.activeElement?.dataset?.id)) === ids.lunch);
  // The quote follows an edit of the original, live.
  await action(a.page, ids.lunch, 'Edit').click();
  await messageBox(a.page).fill('Lunch at 1?');
  await a.page.keyboard.press('Enter');
  await messageById(b.page, ids.reply).getByRole('button', { name: /^In reply to Anna Adams\s+Lunch at 1\?/ }).waitFor();
  await checkA11y(b.page, 'a reply');
});

test('react: a picker, counts on both sides, mine highlighted, a second click takes mine back', async () => {
  await action(b.page, ids.typo, 'Add a reaction').click();
  const picker = b.page.getByRole('group', { name: 'Pick a reaction' });
  await picker.waitFor();
  await checkA11y(b.page, 'reaction picker');
  await picker.getByRole('button', { name: 'React with thumbs up' }).click();
  await picker.waitFor({ state: 'hidden' });
  await until('Billy: 👍 1, his', async () => JSON.stringify(await reactionChip(b.page, ids.typo, '👍')) === JSON.stringify({ count: '1', pressed: 'true', name: '👍 1 person, including you. Press to take yours back' }));
  await until('Anna: 👍 1, not hers', async () => {
    const c = await reactionChip(a.page, ids.typo, '👍');
    return c?.count === '1' && c.pressed === 'false';
  });
  // Anna adds hers by clicking the chip, then takes it back.
  await messageById(a.page, ids.typo).locator('.reaction', { hasText: '👍' }).click();
  for (const [p, mine] of [[a, 'true'], [b, 'true']]) {
    await until(`${p.key}: 👍 2`, async () => {
      const c = await reactionChip(p.page, ids.typo, '👍');
      return c?.count === '2' && c.pressed === mine;
    });
  }
  await messageById(a.page, ids.typo).locator('.reaction', { hasText: '👍' }).click();
  await until('Billy: back to 1', async () => (await reactionChip(b.page, ids.typo, '👍'))?.count === '1');
  await until('Anna: 1, not hers', async () => (await reactionChip(a.page, ids.typo, '👍'))?.pressed === 'false');
  // Keyboard alone: Enter opens the picker on its first emoji, arrows move, Enter picks, Escape closes.
  await action(b.page, ids.typo, 'Add a reaction').focus();
  await b.page.keyboard.press('Enter');
  await until('focus in the picker', async () => (await b.page.evaluate(() => document.activeElement?.getAttribute('aria-label'))) === 'React with thumbs up');
  await b.page.keyboard.press('ArrowRight');
  await b.page.keyboard.press('Enter');
  await until('Anna sees ❤️ 1', async () => (await reactionChip(a.page, ids.typo, '❤️'))?.count === '1');
  await until('focus back on the React button', async () => (await b.page.evaluate(() => document.activeElement?.getAttribute('aria-label'))) === 'Add a reaction');
  await b.page.keyboard.press('Enter');
  await picker.waitFor();
  await b.page.keyboard.press('Escape');
  await picker.waitFor({ state: 'hidden' });
  await b.page.getByRole('heading', { name: 'Anna Adams' }).waitFor();
  await checkA11y(a.page, 'reactions');
});

test('offline with the page closed: edits, a deletion and a reaction made meanwhile show when it reopens', async () => {
  ids.planA = await sendSeen(a, b, 'Plan A');
  ids.planB = await sendSeen(a, b, 'Plan B');
  ids.planC = await sendSeen(a, b, 'Plan C');
  await b.page.close();
  await action(a.page, ids.planA, 'Edit').click();
  await messageBox(a.page).fill('Plan A, revised');
  await a.page.keyboard.press('Enter');
  await until('Anna’s edit stored', async () => (await bodyOf(a.page, ids.planA)) === 'Plan A, revised');
  await action(a.page, ids.planB, 'Delete').click();
  await a.page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
  await messageById(a.page, ids.planB).locator('.tombstone').waitFor();
  await action(a.page, ids.planC, 'Add a reaction').click();
  await a.page.getByRole('group', { name: 'Pick a reaction' }).getByRole('button', { name: 'React with party' }).click();
  await until('Anna’s reaction stored', async () => (await reactionChip(a.page, ids.planC, '🎉'))?.count === '1');

  b.page = await b.context.newPage();
  await b.page.goto(w.url(`/${a.username}/`));
  await messageById(b.page, ids.planC).waitFor();
  assert.equal(await bodyOf(b.page, ids.planA), 'Plan A, revised');
  await messageById(b.page, ids.planA).locator('.edited').waitFor();
  await messageById(b.page, ids.planB).locator('.tombstone', { hasText: 'Message deleted' }).waitFor();
  assert.deepEqual(await reactionChip(b.page, ids.planC, '🎉'), { count: '1', pressed: 'false', name: '🎉 1 person. Press to react with 🎉' });
});

test('offline with the page open: after the reconnect the client pages `changes` and patches what it shows', async () => {
  let allow = true;
  const sockets = [];
  const sentByPage = [];
  await b.page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    if (!allow) {
      ws.close({ code: 4000, reason: 'test: network down' });
      return;
    }
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      try {
        sentByPage.push(JSON.parse(m));
      } catch {
        // Not JSON: forwarded as it is.
      }
      server.send(m);
    });
    sockets.push(ws);
  });
  await b.page.goto(w.url(`/${a.username}/`));
  await messageById(b.page, ids.planC).waitFor();
  allow = false;
  for (const ws of sockets) await ws.close({ code: 4000, reason: 'test: network down' });
  await b.page.getByRole('status').filter({ hasText: 'Offline, reconnecting' }).waitFor();

  await action(a.page, ids.planC, 'Edit').click();
  await messageBox(a.page).fill('Plan C, final');
  await a.page.keyboard.press('Enter');
  await action(a.page, ids.planA, 'Add a reaction').click();
  await a.page.getByRole('group', { name: 'Pick a reaction' }).getByRole('button', { name: 'React with eyes' }).click();
  await action(a.page, ids.lunch, 'Delete').click();
  await a.page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
  await messageById(a.page, ids.lunch).locator('.tombstone').waitFor();
  await until('Anna’s reaction stored', async () => (await reactionChip(a.page, ids.planA, '👀'))?.count === '1');
  // Meanwhile Billy's page still shows the old state.
  assert.equal(await bodyOf(b.page, ids.planC), 'Plan C');

  const before = sentByPage.length;
  allow = true;
  await b.page.getByRole('status').filter({ hasText: 'Offline' }).waitFor({ state: 'hidden', timeout: 60000 });
  await until('Billy sees the edit', async () => (await bodyOf(b.page, ids.planC)) === 'Plan C, final');
  await until('the reaction', async () => (await reactionChip(b.page, ids.planA, '👀'))?.count === '1');
  await messageById(b.page, ids.lunch).locator('.tombstone').waitFor();
  await messageById(b.page, ids.reply).getByRole('button', { name: /^In reply to Anna Adams\s+Message deleted/ }).waitFor();
  const asked = sentByPage.slice(before).filter((f) => f.type === 'changes');
  assert.ok(asked.length >= 1, 'the client asked for the changes it missed');
  assert.ok(asked.every((f) => typeof f.after === 'string' && f.after !== '0'), `from its cursor: ${JSON.stringify(asked)}`);
  await b.page.unrouteAll({ behavior: 'ignoreErrors' }).catch(() => {});
});

test('no page threw and no script ran', () => {
  assert.deepEqual(w.pageErrors, []);
  assert.deepEqual(w.dialogs, []);
});
