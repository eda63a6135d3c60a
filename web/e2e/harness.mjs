// What an end-to-end test of the web client needs: build ./cmd/chat and
// start `chat dev` on a free port with a fresh data folder, Debian's
// Chromium through playwright-core (one clean profile per person), sign-up,
// locators, and axe-core. Not a test file itself (node --test runs only
// *.test.mjs).
//
//   E2E_BASE_URL=http://127.0.0.1:8080/  use a server that is already running
//   CHROMIUM=/path/to/chromium           another browser binary

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
export const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const WAIT = 20000;
export const PASSWORD = 'correct horse battery';

/** One test file's world: its server, temp folder and people. */
export class World {
  /** `args`: more flags for `chat dev` (e.g. --hello-conversations 3). */
  constructor({ args = [] } = {}) {
    this.args = args;
    this.tmp = null;
    this.server = null;
    this.serverLog = '';
    this.base = process.env.E2E_BASE_URL || null;
    this.people = {};
    this.pageErrors = [];
    this.dialogs = [];
    this.suffix = Math.random().toString(36).slice(2, 7);
  }

  async start() {
    assert.ok(existsSync(browserPath), `no browser at ${browserPath}: apt-get install -y chromium`);
    this.tmp = await mkdtemp(path.join(tmpdir(), 'chat-e2e-'));
    if (this.base) return;
    const bin = path.join(this.tmp, 'chat');
    await promisify(execFile)('go', ['build', '-o', bin, './cmd/chat'], { cwd: repoRoot, timeout: 600000, maxBuffer: 1 << 24 });
    const data = path.join(this.tmp, 'data');
    await new Promise((resolve, reject) => {
      const proc = spawn(bin, ['dev', '--addr', '127.0.0.1:0', '--data', data, ...this.args], { cwd: this.tmp, stdio: ['ignore', 'pipe', 'pipe'] });
      this.server = proc;
      const timer = setTimeout(() => reject(new Error(`chat dev printed no URL within 60 s:\n${this.serverLog}`)), 60000);
      proc.stdout.on('data', (d) => {
        this.serverLog += d.toString();
        const m = this.serverLog.match(/chat dev: open (http:\/\/\S+?)\/?\s/);
        if (m) {
          clearTimeout(timer);
          this.base = m[1] + '/';
          resolve();
        }
      });
      proc.stderr.on('data', (d) => {
        this.serverLog += d.toString();
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`chat dev exited with ${code}:\n${this.serverLog}`));
      });
    });
  }

  async stop() {
    for (const p of Object.values(this.people)) await p.context.close().catch(() => {});
    const s = this.server;
    if (s && s.exitCode === null) {
      const exited = new Promise((r) => s.once('exit', r));
      s.kill('SIGTERM');
      const t = setTimeout(() => s.kill('SIGKILL'), 20000);
      await exited;
      clearTimeout(t);
    }
    if (this.tmp) await rm(this.tmp, { recursive: true, force: true });
  }

  url(p = '') {
    return new URL(p, this.base).toString();
  }

  /** A person with a clean browser profile of their own. */
  async person(key) {
    const dir = await mkdtemp(path.join(this.tmp, `profile-${key}-`));
    const context = await chromium.launchPersistentContext(dir, {
      executablePath: browserPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'Europe/Berlin',
    });
    context.setDefaultTimeout(WAIT);
    const watch = (page) => {
      page.on('dialog', (d) => {
        this.dialogs.push(`${key}: ${d.type()} ${d.message()}`);
        d.dismiss().catch(() => {});
      });
      page.on('pageerror', (e) => this.pageErrors.push(`${key}: ${e.message}`));
    };
    for (const pg of context.pages()) watch(pg);
    context.on('page', watch);
    const page = context.pages()[0] || (await context.newPage());
    const p = { key, username: `${key}_${this.suffix}`, context, page };
    this.people[key] = p;
    return p;
  }

  async signUp(p, displayName) {
    await p.page.goto(this.url('/'));
    await p.page.getByLabel('Username').fill(p.username);
    await p.page.getByLabel('Password').fill(PASSWORD);
    if (displayName) await p.page.getByLabel('Display name').fill(displayName);
    await p.page.getByRole('button', { name: 'Sign up' }).click();
    await convNav(p.page).waitFor();
  }
}

export const log = (page) => page.getByRole('log');
export const messageBox = (page) => page.getByRole('textbox', { name: 'Message' });
export const convNav = (page) => page.getByRole('navigation', { name: 'Conversations' });

export async function send(page, text) {
  await messageBox(page).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

/** The message element in the log whose body is exactly text. */
export function messageIn(page, text) {
  return log(page).locator('li.msg').filter({ has: page.locator('p.body', { hasText: new RegExp(`^${escapeRe(text)}$`) }) }).last();
}

/** The message element with an ID. */
export function messageById(page, id) {
  return log(page).locator(`li.msg[data-id="${id}"]`);
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

let axeSource = null;

/** Runs axe-core in the page and fails on any violation. */
export async function checkA11y(page, name) {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  const found = result.violations.map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  assert.deepEqual(found, [], `accessibility problems on ${name}`);
}
