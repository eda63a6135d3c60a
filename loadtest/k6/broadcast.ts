// One large group: CHAT_MEMBERS members all connected, CHAT_SENDERS of them
// sending CHAT_RATE messages per second in total; every message fans out to
// every other member.
//
//   CHAT_URL=http://127.0.0.1:8080 CHAT_MEMBERS=500 CHAT_SENDERS=5 CHAT_RATE=10 k6 run broadcast.ts
import type { Options } from "k6/options";
import { member, untilHoldEnd, signupMany, createGroup, addMember, accountOfVU, envNum, prefix, type SetupData } from "./lib/chat.ts";

const members = Math.max(2, envNum("CHAT_MEMBERS", 200));
const rate = envNum("CHAT_RATE", 10);
// At most 10 msg/s per sender by default (the gateway allows 20/s per connection).
const senders = Math.max(1, envNum("CHAT_SENDERS", Math.max(5, Math.ceil(rate / 10))));
const rampS = envNum("CHAT_RAMP", 20);
const holdS = envNum("CHAT_HOLD", 60);
const bodySize = envNum("CHAT_BODY_SIZE", 64);
// The create call names at most this many members; the rest are added one by one.
const createBatch = envNum("CHAT_CREATE_BATCH", 999);

export const options: Options = {
  setupTimeout: "20m",
  scenarios: {
    broadcast: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: `${rampS}s`, target: members },
        { duration: `${holdS}s`, target: members },
        { duration: "5s", target: 0 },
      ],
      gracefulRampDown: "5s",
    },
  },
  thresholds: {
    chat_connect_ok: ["rate>0.99"],
    chat_ack_latency: ["p(99)<500"],
    chat_e2e_latency: ["p(50)<200", "p(99)<2000"],
    chat_error_frames: ["count<10"],
  },
};

export function setup(): SetupData {
  const accounts = signupMany(members);
  const others = accounts.slice(1);
  const id = createGroup(accounts[0], others.slice(0, createBatch), `k6 broadcast ${prefix}`);
  if (id === "") {
    throw new Error("could not create the broadcast group");
  }
  others.slice(createBatch).forEach((m) => addMember(accounts[0], id, m));
  return {
    accounts,
    groups: [{ id, members: accounts.map((_, i) => i) }],
    groupOf: accounts.map(() => 0),
    senders: Math.min(senders, accounts.length),
  };
}

export default function (data: SetupData): void {
  const a = accountOfVU(data);
  // Senders spread evenly over the members: sender k is member floor(k*N/S).
  const n = data.accounts.length;
  const k = Math.ceil((a * data.senders) / n);
  const isSender = k < data.senders && Math.floor((k * n) / data.senders) === a;
  member({
    account: data.accounts[a],
    conversation: data.groups[0].id,
    rate: isSender ? rate / data.senders : 0,
    holdMs: untilHoldEnd(rampS, holdS),
    bodySize,
  });
}
