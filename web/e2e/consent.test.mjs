// Consent in two browsers against a real `chat dev` (issue 14): Billy
// blocks Anna from their direct conversation with the keyboard, Anna's
// next message fails, Billy unblocks and it flows again; Billy sets "who
// may add me to groups" to Nobody in Settings and Anna's new group with
// him is refused with a clear message.
//
//   cd web && node --test --test-concurrency=1 e2e/consent.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { World, WAIT, checkA11y, log, messageIn, send } from './harness.mjs';

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
  assert.deepEqual(w.pageErrors, [], 'no script errors');
});

test('block and unblock from a direct conversation, with the keyboard', async () => {
  await send(a.page, 'Hello Billy');
  await messageIn(b.page, 'Hello Billy').waitFor();
  const block = b.page.getByRole('button', { name: 'Block', exact: true });
  await block.focus();
  await b.page.keyboard.press('Enter');
  const unblock = b.page.getByRole('button', { name: 'Unblock', exact: true });
  await unblock.waitFor();
  assert.equal(await unblock.getAttribute('aria-pressed'), 'true');
  await checkA11y(b.page, 'a blocked direct conversation');

  // Anna's next message is refused, and never reaches Billy.
  await send(a.page, 'Are you there?');
  await log(a.page).locator('li.msg[data-status=failed]', { hasText: 'Are you there?' }).waitFor({ timeout: WAIT });
  assert.equal(await messageIn(b.page, 'Are you there?').count(), 0);

  await unblock.focus();
  await b.page.keyboard.press('Enter');
  await block.waitFor();
  assert.equal(await block.getAttribute('aria-pressed'), 'false');
  // A reload still knows: the blocks come from the server.
  await b.page.reload();
  await b.page.getByRole('button', { name: 'Block', exact: true }).waitFor();
  await send(a.page, 'Back again');
  await messageIn(b.page, 'Back again').waitFor({ timeout: WAIT });
});

test('who may add me to groups: Nobody refuses a new group with me', async () => {
  await b.page.getByRole('button', { name: 'Settings' }).click();
  const dialog = b.page.getByRole('dialog', { name: 'Settings' });
  const select = dialog.getByLabel('Who may add me to groups');
  await select.waitFor();
  assert.equal(await select.inputValue(), 'anyone', 'the default');
  await checkA11y(b.page, 'the settings dialog');
  await select.focus();
  await select.selectOption('nobody');
  await dialog.getByText('Saved.').waitFor();
  await b.page.keyboard.press('Escape');

  await a.page.getByRole('button', { name: 'New group' }).click();
  await a.page.getByLabel('Group name').fill('Surprise');
  await a.page.getByLabel('Members').fill(b.username);
  await a.page.getByRole('button', { name: 'Create group' }).click();
  await a.page.locator('#group-error', { hasText: 'Not allowed' }).waitFor({ timeout: WAIT });
  await a.page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

  // Back to Anyone: the same group can be made.
  await b.page.getByRole('button', { name: 'Settings' }).click();
  await select.selectOption('anyone');
  await dialog.getByText('Saved.').waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();
  await a.page.getByRole('button', { name: 'New group' }).click();
  await a.page.getByLabel('Group name').fill('Surprise');
  await a.page.getByLabel('Members').fill(b.username);
  await a.page.getByRole('button', { name: 'Create group' }).click();
  await a.page.getByRole('heading', { name: 'Surprise' }).waitFor();
});
