// The library in Chromium (Debian's, driven by playwright-core): a page of
// the real `chat dev` imports the built ES module the server serves
// (/lib/index.js, the same files the web client uses), connects with the
// browser's own WebSocket and fetch, and exchanges a message with the
// library running in Node.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { ChatClient } from '../dist/index.js';
import { signup, startChatDev, waitFor } from './server.mjs';

const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
let server;
let browser;

before(async () => {
  server = await startChatDev();
  browser = await chromium.launch({ executablePath: browserPath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('the built module runs in Chromium and exchanges a message with Node', async () => {
  const anna = await signup(server.url, 'anna');
  const billy = await signup(server.url, 'billy');
  const got = [];
  const node = new ChatClient({ baseUrl: server.url, token: anna.token, WebSocket, followAll: true, onMessage: (m) => got.push(m) });
  try {
    const conv = await node.api.direct(billy.username);
    node.start();
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url + '/');
    const acked = await page.evaluate(
      async ({ token, convId }) => {
        const lib = await import('/lib/index.js');
        window.got = [];
        const c = new lib.ChatClient({ baseUrl: location.origin, token, followAll: true, onMessage: (m) => window.got.push(m) });
        window.chat = c;
        c.start();
        return c.sendAndWait(convId, 'from Chromium');
      },
      { token: billy.token, convId: conv.id },
    );
    assert.equal(acked.body, 'from Chromium');
    assert.equal(acked.sender, billy.user.id);
    await waitFor('Node received the browser’s message', () => got.some((m) => m.id === acked.id));
    const sent = await node.sendAndWait(conv.id, 'from Node');
    await page.waitForFunction((id) => window.got.some((m) => m.id === id), sent.id);
    const inBrowser = await page.evaluate(() => window.got.map((m) => m.body));
    assert.deepEqual(inBrowser, ['from Chromium', 'from Node']);
    await page.evaluate(() => window.chat.stop());
    assert.deepEqual(errors, []);
  } finally {
    node.stop();
  }
});
