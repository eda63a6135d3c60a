// The WebSocket connection: connects, reconnects with backoff, matches
// answers to requests by ID, and notices a dead link with application pings.
// It takes the WebSocket class and timers as arguments (no DOM), so tests
// drive it with fakes.

import { Backoff, drainDelay } from './state.js';

export const CLOSE_TOKEN_EXPIRED = 4001;
export const CLOSE_DRAINING = 4002;

export class RequestError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Connection {
  /**
   * @param {object} o
   * @param {() => string} o.url          the /ws URL with the token
   * @param {Function} o.WebSocket         the WebSocket class
   * @param {(frame: object) => void} o.onFrame   every frame without a waiting request, and hello
   * @param {(status: string, info?: object) => void} o.onStatus  'connecting' | 'online' | 'offline'
   * @param {() => void} o.onAuthExpired   close code 4001
   * @param {() => void} [o.onConnectFailed] a connection closed before its hello (maybe a refused token)
   */
  constructor({
    url,
    WebSocket,
    onFrame,
    onStatus = () => {},
    onAuthExpired = () => {},
    onConnectFailed = () => {},
    setTimeout: st = globalThis.setTimeout.bind(globalThis),
    clearTimeout: ct = globalThis.clearTimeout.bind(globalThis),
    random = Math.random,
    backoff = new Backoff({ random }),
    pingEveryMs = 25000,
    pongTimeoutMs = 10000,
    requestTimeoutMs = 15000,
  }) {
    this.url = url;
    this.WS = WebSocket;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onAuthExpired = onAuthExpired;
    this.onConnectFailed = onConnectFailed;
    this.setTimeout = st;
    this.clearTimeout = ct;
    this.random = random;
    this.backoff = backoff;
    this.pingEveryMs = pingEveryMs;
    this.pongTimeoutMs = pongTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.ws = null;
    this.status = 'offline';
    this.stopped = true;
    this.ready = false; // hello received on the current socket
    this.seq = 0;
    this.waiting = new Map(); // request id -> {resolve, reject, timer}
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#open();
  }

  /** Closes for good (log out). */
  stop() {
    this.stopped = true;
    this.#clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        // Already closing.
      }
    }
    this.#failWaiting('disconnected');
    this.#setStatus('offline');
  }

  /** Reconnects at once if waiting for a retry (e.g. the browser came back online). */
  nudge() {
    if (this.stopped || this.ws) return;
    if (this.retryTimer) this.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.#open();
  }

  /** Drops the current socket and reconnects (e.g. a ping went unanswered). */
  restart() {
    if (this.stopped) return;
    const ws = this.ws;
    if (ws) {
      this.#lost(ws, { code: 1006 });
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
  }

  get isReady() {
    return this.ready;
  }

  /** Sends a frame that expects no answer. Returns false when not connected. */
  send(frame) {
    if (!this.ready || !this.ws) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  nextId() {
    this.seq++;
    return `r${this.seq}`;
  }

  /**
   * Sends a frame with a fresh `id` and resolves with the answer carrying
   * that id; rejects with RequestError(code) on an `error` answer, and with
   * code 'disconnected' or 'timeout'.
   */
  request(frame, { id = this.nextId(), timeoutMs = this.requestTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.ready || !this.ws) {
        reject(new RequestError('disconnected'));
        return;
      }
      const timer = this.setTimeout(() => {
        if (this.waiting.get(id)?.timer === timer) {
          this.waiting.delete(id);
          reject(new RequestError('timeout'));
        }
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      try {
        this.ws.send(JSON.stringify({ ...frame, id }));
      } catch {
        this.clearTimeout(timer);
        this.waiting.delete(id);
        reject(new RequestError('disconnected'));
      }
    });
  }

  #setStatus(s, info) {
    if (this.status === s && !info) return;
    this.status = s;
    this.onStatus(s, info);
  }

  #open() {
    if (this.stopped) return;
    this.retryTimer = null;
    this.ready = false;
    this.#setStatus('connecting');
    let ws;
    try {
      ws = new this.WS(this.url());
    } catch {
      this.#schedule(this.backoff.next());
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.#onMessage(ws, ev);
    ws.onclose = (ev) => this.#lost(ws, ev);
    ws.onerror = () => {
      // A close event follows; nothing to do here.
    };
  }

  #onMessage(ws, ev) {
    if (ws !== this.ws) return;
    let f;
    try {
      f = JSON.parse(typeof ev.data === 'string' ? ev.data : '');
    } catch {
      return;
    }
    if (!f || typeof f.type !== 'string') return;
    this.#armPing();
    if (f.type === 'hello') {
      this.ready = true;
      this.backoff.reset();
      this.#setStatus('online');
      this.onFrame(f);
      return;
    }
    if (f.type === 'pong') {
      if (this.pongTimer) this.clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
    if (f.id != null && this.waiting.has(f.id) && f.type !== 'message') {
      const w = this.waiting.get(f.id);
      this.waiting.delete(f.id);
      this.clearTimeout(w.timer);
      if (f.type === 'error') w.reject(new RequestError(f.code || 'internal', f.message));
      else w.resolve(f);
      return;
    }
    this.onFrame(f);
  }

  /** Any frame proves the link alive; ping only after a quiet spell. */
  #armPing() {
    if (this.pingTimer) this.clearTimeout(this.pingTimer);
    this.pingTimer = this.setTimeout(() => {
      this.pingTimer = null;
      if (!this.ready) return;
      this.send({ type: 'ping', id: this.nextId() });
      if (!this.pongTimer) {
        this.pongTimer = this.setTimeout(() => {
          this.pongTimer = null;
          this.restart();
        }, this.pongTimeoutMs);
      }
    }, this.pingEveryMs);
  }

  #clearTimers() {
    for (const k of ['retryTimer', 'pingTimer', 'pongTimer']) {
      if (this[k]) this.clearTimeout(this[k]);
      this[k] = null;
    }
  }

  #failWaiting(code) {
    const w = [...this.waiting.values()];
    this.waiting.clear();
    for (const x of w) {
      this.clearTimeout(x.timer);
      x.reject(new RequestError(code));
    }
  }

  #lost(ws, ev) {
    if (ws !== this.ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    const hadHello = this.ready;
    this.ws = null;
    this.ready = false;
    this.#clearTimers();
    this.#failWaiting('disconnected');
    if (this.stopped) return;
    const code = ev && ev.code;
    if (code === CLOSE_TOKEN_EXPIRED) {
      this.stopped = true;
      this.#setStatus('offline', { code });
      this.onAuthExpired();
      return;
    }
    let delay;
    if (code === CLOSE_DRAINING) {
      delay = drainDelay(this.random);
    } else {
      delay = this.backoff.next();
    }
    this.#setStatus('offline', { code, retryIn: delay });
    if (!hadHello) this.onConnectFailed();
    this.#schedule(delay);
  }

  #schedule(delay) {
    if (this.stopped) return;
    if (this.retryTimer) this.clearTimeout(this.retryTimer);
    this.retryTimer = this.setTimeout(() => this.#open(), delay);
  }
}
