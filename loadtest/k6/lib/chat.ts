// Shared parts of the k6 scenarios: configuration from the environment, the
// HTTP API calls of PROTOCOL.md, the WebSocket member loop, and the metrics.
import http from "k6/http";
import { check, fail } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";
import { WebSocket } from "k6/websockets";
import { setInterval, setTimeout, clearInterval, clearTimeout } from "k6/timers";
import exec from "k6/execution";

/** Milliseconds from `send` to its `ack`. */
export const ackLatency = new Trend("chat_ack_latency", true);
/** Milliseconds from `send` to the `message` frame at another member. */
export const e2eLatency = new Trend("chat_e2e_latency", true);
/** Share of WebSocket connections that reached `hello`. */
export const connectOK = new Rate("chat_connect_ok");
/** Milliseconds from opening the socket to `hello`. */
export const helloLatency = new Trend("chat_hello_latency", true);
export const sent = new Counter("chat_messages_sent");
export const acked = new Counter("chat_messages_acked");
export const delivered = new Counter("chat_messages_delivered");
/** Error frames, tagged with their code. */
export const errorFrames = new Counter("chat_error_frames");
/** Connections closed by the server before the script closed them. */
export const dropped = new Counter("chat_connections_dropped");

function env(name: string, def: string): string {
  const v = __ENV[name];
  return v === undefined || v === "" ? def : v;
}

/** A positive number from the environment, or the default. */
export function envNum(name: string, def: number): number {
  const v = Number(env(name, String(def)));
  if (!isFinite(v) || v < 0) {
    fail(`${name} must be a non-negative number`);
  }
  return v;
}

/** Base URL of the server: CHAT_URL, loopback only (as for chatload). */
export const baseURL: string = (() => {
  const u = env("CHAT_URL", "http://127.0.0.1:8080").replace(/\/+$/, "");
  const m = /^http:\/\/(\[[^\]]+\]|[^/:]+)(:\d+)?$/.exec(u);
  if (!m) {
    fail(`CHAT_URL ${u} must look like http://127.0.0.1:8080`);
  }
  const host = m![1];
  if (!(host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host))) {
    fail(`CHAT_URL ${u}: only loopback targets (127.0.0.0/8, [::1], localhost) are allowed`);
  }
  return u;
})();

export const wsURL: string = baseURL.replace(/^http/, "ws") + "/ws";
const password = env("CHAT_PASSWORD", "k6-loadtest-password");
/** Username prefix, unique per run unless CHAT_PREFIX is set. */
export const prefix: string = env("CHAT_PREFIX", "k6" + Math.floor(Math.random() * 36 ** 6).toString(36));

export interface Account {
  name: string;
  token: string;
}

export interface Group {
  id: string;
  /** Indexes into the accounts array. */
  members: number[];
}

/** Everything setup() hands to the VUs. */
export interface SetupData {
  accounts: Account[];
  groups: Group[];
  /** Group of each account (-1 for none). */
  groupOf: number[];
  senders: number;
}

const jsonHeaders = { "Content-Type": "application/json" };

/** Signs up n users in parallel batches; fails the test if none works. */
export function signupMany(n: number, batch = 50): Account[] {
  const out: Account[] = [];
  for (let start = 0; start < n; start += batch) {
    const reqs = [];
    for (let i = start; i < Math.min(n, start + batch); i++) {
      const name = `${prefix}_${i}`;
      reqs.push({
        method: "POST",
        url: `${baseURL}/api/v1/signup`,
        body: JSON.stringify({ username: name, password, display_name: name }),
        params: { headers: jsonHeaders, tags: { name: "signup" } },
      });
    }
    const resps = http.batch(reqs);
    resps.forEach((r, j) => {
      const name = `${prefix}_${start + j}`;
      if (r.status === 409) {
        // A repeated run with the same CHAT_PREFIX: log the existing user in.
        r = http.post(`${baseURL}/api/v1/login`, JSON.stringify({ username: name, password }), {
          headers: jsonHeaders,
          tags: { name: "login" },
        });
      }
      const ok = check(r, { "signup or login": (x) => x.status === 201 || x.status === 200 });
      if (ok) {
        out.push({ name, token: String(r.json("token")) });
      }
    });
  }
  if (out.length === 0) {
    fail("no user could sign up");
  }
  return out;
}

/** Creates a group of owner and the other members; returns its ID or "". */
export function createGroup(owner: Account, members: Account[], title: string): string {
  const r = http.post(`${baseURL}/api/v1/conversations`, JSON.stringify({ title, members: members.map((m) => m.name) }), {
    headers: { ...jsonHeaders, Authorization: `Bearer ${owner.token}` },
    tags: { name: "create_group" },
  });
  if (!check(r, { "create group 201": (x) => x.status === 201 })) {
    return "";
  }
  return String(r.json("id"));
}

/** Adds a member to a conversation. */
export function addMember(owner: Account, conv: string, member: Account): boolean {
  const r = http.post(`${baseURL}/api/v1/conversations/${conv}/members`, JSON.stringify({ username: member.name }), {
    headers: { ...jsonHeaders, Authorization: `Bearer ${owner.token}` },
    tags: { name: "add_member" },
  });
  return check(r, { "add member 200": (x) => x.status === 200 });
}

// A message body carries the send time and the sending VU, so that any
// receiver computes the end-to-end latency with the one clock of this k6
// instance: "lt1 <ms> <vu> xxxx".
function body(vu: number, size: number): string {
  const head = `lt1 ${Date.now()} ${vu} x`;
  return head.length >= size ? head : head + "x".repeat(size - head.length);
}

interface Frame {
  type?: string;
  id?: string;
  code?: string;
  message?: { body?: string };
}

export interface MemberOptions {
  account: Account;
  /** Conversation to send into; "" for none. */
  conversation: string;
  /** Messages per second this VU sends (0: receive only). */
  rate: number;
  /** How long to keep the socket open, in ms. */
  holdMs: number;
  bodySize: number;
}

/**
 * Opens one WebSocket as the account, waits for hello, sends at the given
 * rate while open, records latencies, and closes after holdMs. The k6
 * iteration lasts as long as the socket is open.
 */
export function member(o: MemberOptions): void {
  const vu = exec.vu.idInTest;
  const opened = Date.now();
  const pending = new Map<string, number>();
  let seq = 0;
  let ready = false;
  let closing = false;
  let sender: number | undefined;
  const ws = new WebSocket(wsURL, null, { headers: { Authorization: `Bearer ${o.account.token}` } });

  const stop = setTimeout(() => {
    closing = true;
    if (sender !== undefined) {
      clearInterval(sender);
    }
    ws.close(1000);
  }, o.holdMs);

  ws.onmessage = (ev) => {
    if (typeof ev?.data !== "string") {
      return;
    }
    const now = Date.now();
    let f: Frame;
    try {
      f = JSON.parse(ev.data) as Frame;
    } catch {
      errorFrames.add(1, { code: "not_json" });
      return;
    }
    switch (f.type) {
      case "hello":
        ready = true;
        connectOK.add(true);
        helloLatency.add(now - opened);
        if (o.rate > 0 && o.conversation !== "") {
          sender = setInterval(() => {
            if (!ready || closing) {
              return;
            }
            const id = `${vu}-${++seq}`;
            pending.set(id, Date.now());
            ws.send(
              JSON.stringify({
                type: "send",
                id,
                conversation: o.conversation,
                client_id: `k6-${id}`,
                body: body(vu, o.bodySize),
              }),
            );
            sent.add(1);
          }, 1000 / o.rate);
        }
        break;
      case "ack": {
        const t = f.id !== undefined ? pending.get(f.id) : undefined;
        if (t !== undefined) {
          pending.delete(f.id!);
          ackLatency.add(now - t);
          acked.add(1);
        }
        break;
      }
      case "message": {
        const m = /^lt1 (\d+) (\d+) /.exec(f.message?.body ?? "");
        if (m && Number(m[2]) !== vu) {
          e2eLatency.add(now - Number(m[1]));
          delivered.add(1);
        }
        break;
      }
      case "error":
        errorFrames.add(1, { code: f.code ?? "unknown" });
        if (f.id !== undefined) {
          pending.delete(f.id);
        }
        break;
    }
  };
  ws.onerror = (ev) => {
    if (!ready) {
      connectOK.add(false);
    }
    console.warn(`vu ${vu}: websocket error: ${ev?.error ?? "unknown"}`);
  };
  ws.onclose = () => {
    if (!closing) {
      dropped.add(1);
      if (!ready) {
        connectOK.add(false);
      }
    }
    clearTimeout(stop);
    if (sender !== undefined) {
      clearInterval(sender);
    }
  };
}

/** The account of the running VU (one account per VU, by VU number). */
export function accountOfVU(data: SetupData): number {
  return (exec.vu.idInTest - 1) % data.accounts.length;
}

/**
 * Milliseconds left until the end of the ramp-up and hold stages (at least
 * one second), so that VUs started late in the ramp still close together.
 */
export function untilHoldEnd(rampS: number, holdS: number): number {
  return Math.max(1000, exec.scenario.startTime + (rampS + holdS) * 1000 - Date.now());
}
