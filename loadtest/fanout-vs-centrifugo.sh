#!/usr/bin/env bash
# Fan-out side by side, one run: chat dev (built from the checkout $1,
# default this one) and Centrifugo v6.9.1 (go install
# github.com/centrifugal/centrifugo/v6@v6.9.1), the same chatload client
# against both. RATES (default 100) publishes/s, OUT the results file,
# CHAT_DEV_FLAGS flags for chat dev (default: the per-user send rate out of
# the way, as the publisher is one user). Each rate waits for the load
# average to fall under 0.8 first: figures taken on a busy machine mislead.
set -euo pipefail
src=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
rates=${RATES:-100}
out=$(realpath -m "${OUT:-fanout-$(date +%H%M).txt}")
cd "$src"
go build -o /tmp/bench-chat ./cmd/chat
go build -o /tmp/bench-chatload ./cmd/chatload
rm -rf /tmp/bench-data
/tmp/bench-chat dev --addr 127.0.0.1:18080 --data /tmp/bench-data ${CHAT_DEV_FLAGS:---user-send-rate 100000 --user-send-burst 100000} > /tmp/bench-chat.log 2>&1 &
chat=$!
/tmp/bench-chatload fanout --print-centrifugo-config > /tmp/bench-centrifugo.json
"${CENTRIFUGO:-$(go env GOPATH)/bin/centrifugo}" --config /tmp/bench-centrifugo.json > /tmp/bench-centrifugo.log 2>&1 &
cent=$!
trap 'kill $chat $cent 2>/dev/null; wait 2>/dev/null' EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && curl -s -o /dev/null http://127.0.0.1:8000/ && break; sleep 0.2; done
sleep 5
for r in $rates; do
  for i in $(seq 1 60); do awk '{exit !($1 < 0.8)}' /proc/loadavg && break; sleep 5; done
  echo "== rate $r, load before: $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)" | tee -a "$out"
  /tmp/bench-chatload fanout --url http://127.0.0.1:18080 --centrifugo http://127.0.0.1:8000 \
     --subscribers 2000 --rate "$r" --duration 15s --chat-pid $chat --centrifugo-pid $cent 2>/tmp/bench-fanout-progress.log | tee -a "$out"
  sleep 10
done
