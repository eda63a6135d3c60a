// Many conversations: CHAT_CONNS users in groups of CHAT_GROUP; CHAT_SENDERS
// of them send CHAT_RATE messages per second in total while every member is
// connected. Ack and end-to-end latency are Trends with thresholds.
//
//   CHAT_URL=http://127.0.0.1:8080 CHAT_CONNS=200 CHAT_GROUP=10 CHAT_SENDERS=20 CHAT_RATE=200 k6 run chat.ts
import type { Options } from "k6/options";
import { member, untilHoldEnd, signupMany, createGroup, accountOfVU, envNum, prefix, type SetupData, type Group } from "./lib/chat.ts";

const conns = envNum("CHAT_CONNS", 100);
const groupSize = Math.max(2, envNum("CHAT_GROUP", 10));
const rate = envNum("CHAT_RATE", 100);
// Default: one sender per group, and enough senders that each sends at most
// 10 msg/s (the gateway allows 20 requests/s per connection by default).
const senders = envNum("CHAT_SENDERS", Math.min(conns, Math.max(1, Math.floor(conns / groupSize), Math.ceil(rate / 10))));
const rampS = envNum("CHAT_RAMP", 20);
const holdS = envNum("CHAT_HOLD", 60);
const bodySize = envNum("CHAT_BODY_SIZE", 64);

export const options: Options = {
  setupTimeout: "10m",
  scenarios: {
    chat: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: `${rampS}s`, target: conns },
        { duration: `${holdS}s`, target: conns },
        { duration: "5s", target: 0 },
      ],
      gracefulRampDown: "5s",
    },
  },
  thresholds: {
    chat_connect_ok: ["rate>0.99"],
    chat_ack_latency: ["p(50)<50", "p(99)<500"],
    chat_e2e_latency: ["p(50)<100", "p(99)<1000"],
    chat_error_frames: ["count<10"],
  },
};

export function setup(): SetupData {
  const accounts = signupMany(conns);
  const groups: Group[] = [];
  const groupOf = accounts.map(() => -1);
  for (let start = 0; start + groupSize <= accounts.length; start += groupSize) {
    const members: number[] = [];
    for (let i = start; i < start + groupSize; i++) {
      members.push(i);
    }
    const id = createGroup(accounts[start], members.slice(1).map((i) => accounts[i]), `k6 ${prefix} ${groups.length}`);
    if (id !== "") {
      members.forEach((i) => (groupOf[i] = groups.length));
      groups.push({ id, members });
    }
  }
  return { accounts, groups, groupOf, senders: Math.min(senders, groups.length * groupSize) };
}

export default function (data: SetupData): void {
  const a = accountOfVU(data);
  const g = data.groupOf[a];
  // Senders are spread over groups first: member k of group k mod #groups.
  let isSender = false;
  if (g >= 0) {
    const k = data.groups[g].members.indexOf(a) * data.groups.length + g;
    isSender = k < data.senders;
  }
  member({
    account: data.accounts[a],
    conversation: g >= 0 ? data.groups[g].id : "",
    rate: isSender ? rate / data.senders : 0,
    // Senders start once their socket is up; everyone holds until the end of the hold phase.
    holdMs: untilHoldEnd(rampS, holdS),
    bodySize,
  });
}
