// Test helpers: a real `chat dev` (built from ./cmd/chat into a temporary
// folder, on a free port, with a fresh data folder), a TCP proxy the test
// controls to cut connections, and polling with a deadline.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');

/** Builds ./cmd/chat and starts `chat dev` (with extra flags `args`); resolves with {url, stop()}. */
export async function startChatDev({ args = [] } = {}) {
  const tmp = await mkdtemp(path.join(tmpdir(), 'chatclient-ts-'));
  const bin = path.join(tmp, 'chat');
  await promisify(execFile)('go', ['build', '-o', bin, './cmd/chat'], { cwd: repoRoot, maxBuffer: 1 << 24 });
  let log = '';
  const proc = spawn(bin, ['dev', '--addr', '127.0.0.1:0', '--data', path.join(tmp, 'data'), '--drain', '1s', ...args], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chat dev printed no URL within 60 s:\n${log}`)), 60000);
    proc.stdout.on('data', (d) => {
      log += d;
      const m = log.match(/chat dev: open (http:\/\/\S+?)\/?\s/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.stderr.on('data', (d) => {
      log += d;
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chat dev exited with ${code}:\n${log}`));
    });
  });
  await waitFor('/readyz 200', async () => (await fetch(url + '/readyz')).status === 200);
  return {
    url,
    log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(t);
      }
      await rm(tmp, { recursive: true, force: true });
    },
  };
}

/** Polls cond until it returns a truthy value or the deadline passes. */
export async function waitFor(what, cond, { timeoutMs = 20000, everyMs = 20 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A TCP proxy in front of the server. `freeze()` stops passing the server's
 * bytes to the clients (requests still reach the server, answers do not
 * come back), `cut()` destroys every connection through it (and unfreezes).
 */
export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const pairs = new Set();
  let frozen = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (d) => {
      if (!frozen) client.write(d);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    get connections() {
      return pairs.size;
    },
    freeze() {
      frozen = true;
    },
    cut() {
      for (const p of [...pairs]) {
        pairs.delete(p);
        p.client.destroy();
        p.upstream.destroy();
      }
      frozen = false;
    },
    close() {
      this.cut();
      return new Promise((r) => server.close(r));
    },
  };
}

/** Signs a fresh user up; resolves with {user, token, username}. */
export async function signup(base, name) {
  const username = `${name}_${Math.random().toString(36).slice(2, 8)}`;
  const res = await fetch(`${base}/api/v1/signup`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password: 'correct horse battery' }),
  });
  if (res.status !== 201) throw new Error(`signup ${username}: ${res.status} ${await res.text()}`);
  return { ...(await res.json()), username };
}
