// Idle connections: CHAT_CONNS authenticated WebSockets ramped up over
// CHAT_RAMP, held for CHAT_HOLD, then ramped down.
//
//   CHAT_URL=http://127.0.0.1:8080 CHAT_CONNS=1000 k6 run idle.ts
import type { Options } from "k6/options";
import { member, untilHoldEnd, signupMany, accountOfVU, envNum, type SetupData } from "./lib/chat.ts";

const conns = envNum("CHAT_CONNS", 100);
const rampS = envNum("CHAT_RAMP", 30);
const holdS = envNum("CHAT_HOLD", 60);

export const options: Options = {
  setupTimeout: "10m",
  scenarios: {
    idle: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: `${rampS}s`, target: conns },
        { duration: `${holdS}s`, target: conns },
        { duration: "10s", target: 0 },
      ],
      gracefulRampDown: "5s",
    },
  },
  thresholds: {
    chat_connect_ok: ["rate>0.99"],
    chat_hello_latency: ["p(99)<2000"],
    chat_connections_dropped: ["count<1"],
  },
};

export function setup(): SetupData {
  const accounts = signupMany(conns);
  return { accounts, groups: [], groupOf: accounts.map(() => -1), senders: 0 };
}

export default function (data: SetupData): void {
  // Hold the socket for the rest of the hold phase (at least a few seconds):
  // a VU that starts late in the ramp still ends with the others.
  member({ account: data.accounts[accountOfVU(data)], conversation: "", rate: 0, holdMs: untilHoldEnd(rampS, holdS), bodySize: 0 });
}
