// Limits as a person meets them, in Debian's Chromium against a real
// `chat dev` with small bounds (docs/PROTOCOL.md, Limits): the login form
// says in words how long to wait after too many wrong passwords (HTTP 429),
// and a second tab past the user's connection bound (1 here) says why it is
// not connected (close code 4029) while the first stays connected.
//
//   cd web && node --test e2e/limits.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { World, PASSWORD, checkA11y, convNav } from './harness.mjs';

const w = new World({ args: ['--throttle-exempt', 'none', '--login-failures-per-pair', '2', '--max-user-connections', '1'] });
let anna;

before(async () => {
  await w.start();
  anna = await w.person('anna');
});

after(async () => {
  await w.stop();
  assert.deepEqual(w.pageErrors, []);
});

test('too many wrong passwords: the form says how long to wait', async () => {
  await w.signUp(anna);
  await anna.page.getByRole('button', { name: /log out/i }).click();
  const page = anna.page;
  const alert = page.locator('#auth-error');
  for (let i = 0; i < 2; i++) {
    await page.getByLabel('Username').fill(anna.username);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await alert.filter({ hasText: 'Wrong username or password.' }).waitFor();
    await page.evaluate(() => { document.querySelector('#auth-error').textContent = ''; });
  }
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await alert.filter({ hasText: /^Too many attempts\. Try again in \d+ minutes?\.$/ }).waitFor();
  await checkA11y(page, 'login refused as throttled');
});

test('a tab past the connection bound says why it is not connected', async () => {
  // Logged in again from another address is not possible here (one
  // address): sign up a second person instead.
  const billy = await w.person('billy');
  await w.signUp(billy);
  const second = await billy.context.newPage();
  await second.goto(w.url('/'));
  await convNav(second).waitFor();
  await second.getByRole('status').filter({ hasText: 'Too many tabs or devices connected: close one.' }).waitFor();
  // The first tab stays connected: no banner there.
  assert.equal(await billy.page.locator('#banner').isHidden(), true);
});
