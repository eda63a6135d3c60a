#!/usr/bin/env bash
# test.sh runs every test of the project, on a fresh machine too: it installs
# what the tests need (Debian's Chromium and Prometheus, npm packages,
# Cassandra's jars from Maven Central), starts the services they use (a real
# Cassandra node), runs them, and stops what it started.
#
#   ./test.sh            everything
#   ./test.sh go         only the Go module's checks and tests (still with Cassandra)
#
# Environment: FUZZTIME (default 10s per fuzz target), CHAT_TEST_CASSANDRA
# (use a Cassandra already running at HOST:PORT instead of starting one),
# CHAT_TEST_RING (use a three-node ring already running, HOST:PORT,... of
# `schema/cassandra.sh start --nodes 3`, with CHAT_TEST_RING_HOME its
# CASSANDRA_HOME_DIR; CHAT_TEST_RING=off skips the ring test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$(pwd)
only=${1:-all}
fuzztime=${FUZZTIME:-10s}
export GOFLAGS=${GOFLAGS:--buildvcs=false}

step() { printf '\n==> %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# --- what the tests need from outside Go ----------------------------------
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_apt+=(fonts-noto-color-emoji)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ "$only" = all ] && [ ${#need_apt[@]} -gt 0 ]; then
	step "apt-get install ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Cassandra: start it early, it takes a minute -------------------------
# What this run started is stopped at its end, and only that.
cleanups=()
cleanup() {
	local c
	for c in "${cleanups[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
cass_pid=
if [ -z "${CHAT_TEST_CASSANDRA:-}" ]; then
	export CHAT_TEST_CASSANDRA=${CASSANDRA_ADDR:-127.0.0.1}:${CASSANDRA_PORT:-9042}
	if schema/cassandra.sh status >/dev/null 2>&1; then
		step "Cassandra is already running (schema/cassandra.sh): using it, leaving it running"
	else
		step "starting Cassandra (schema/cassandra.sh) in the background"
		cass_log=$(mktemp)
		schema/cassandra.sh start >"$cass_log" 2>&1 &
		cass_pid=$!
		cleanups+=("schema/cassandra.sh stop")
	fi
fi

# --- Go: format, vet, cross-compile ----------------------------------------
step "gofmt, go vet, darwin and windows builds"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './web/node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed: $unformatted" >&2
	exit 1
fi
go vet ./...
GOOS=darwin GOARCH=arm64 go build -o /dev/null ./...
GOOS=windows GOARCH=amd64 go build -o /dev/null ./...
if go list -deps ./gateway/... | grep -q gocql; then
	echo "the gateway must not depend on the Cassandra driver" >&2
	exit 1
fi

if [ -n "$cass_pid" ]; then
	step "waiting for Cassandra"
	if ! wait "$cass_pid"; then
		cat "$cass_log" >&2
		echo "Cassandra did not start" >&2
		exit 1
	fi
	cat "$cass_log"
fi

# The three-node ring (127.0.0.2-127.0.0.4) of the ring test starts in the
# background now, once the single node above has resolved the jars it
# shares, and comes up while the other tests run.
ring_pid=
if [ -z "${CHAT_TEST_RING:-}" ]; then
	export CHAT_TEST_RING=127.0.0.2:9042,127.0.0.3:9042,127.0.0.4:9042
	export CHAT_TEST_RING_HOME=${CASSANDRA_HOME_DIR:-$root/schema/.cassandra}
	step "starting a three-node Cassandra ring (schema/cassandra.sh start --nodes 3) in the background"
	ring_log=$(mktemp)
	ring_t0=$(date +%s)
	schema/cassandra.sh start --nodes 3 >"$ring_log" 2>&1 &
	ring_pid=$!
	cleanups+=("schema/cassandra.sh stop --nodes 3")
fi

step "go test -race ./... (all but the cluster and ring tests)"
go test -race -count=1 -timeout 30m -skip '^(TestCluster|TestRing)$' ./...

# The RFC 6455 conformance suite passed above; this prints its table (one
# line a case, OK / NON-STRICT / FAILED / UNCLEAN) and totals.
step "Autobahn cases 1-7, 9 against the gateway (echo harness and /ws)"
go test -count=1 -run '^TestAutobahn' -v ./gateway/ | grep -Ev '^(=== RUN|--- PASS|PASS$)'

# The cluster test stops and restarts Cassandra (a fault it injects), so it
# runs alone, after the packages that use Cassandra are done.
step "go test -race -run TestCluster ./cmd/chat/ (the real cluster, one fault at a time)"
go test -race -count=1 -timeout 25m -run '^TestCluster$' -v ./cmd/chat/

if [ "$CHAT_TEST_RING" != off ]; then
	if [ -n "$ring_pid" ]; then
		step "waiting for the Cassandra ring"
		if ! wait "$ring_pid"; then
			cat "$ring_log" >&2
			echo "the Cassandra ring did not start" >&2
			exit 1
		fi
		cat "$ring_log"
		echo "ring up $(($(date +%s) - ring_t0)) s after its start began (it overlapped the tests above)"
	fi
	# The single node this run started is done with: its CPU goes to the ring.
	if [ -n "$cass_pid" ]; then
		schema/cassandra.sh stop >/dev/null 2>&1 || true
	fi
	step "go test -race -run TestRing ./cmd/chat/ (the cluster on a three-node RF 3 ring: one node killed, then two down)"
	go test -race -count=1 -timeout 25m -run '^TestRing$' -v ./cmd/chat/
	if [ -n "$ring_pid" ]; then
		schema/cassandra.sh stop --nodes 3
	fi
fi

step "fuzzing, $fuzztime per target"
for target in $(go test -list '^Fuzz' ./gateway/ | grep '^Fuzz'); do
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" ./gateway/
done

[ "$only" = go ] && exit 0

step "k8s: kustomize overlays, strict decoding, PromQL"
k8s/test.sh

step "k6 scripts type-check"
loadtest/k6/check.sh

step "clients/ts: build check (web/static/lib is the library's build), unit, integration and Chromium tests"
(cd clients/ts && npm ci --no-audit --no-fund && npm test)

step "web: unit tests and browser end-to-end tests"
(cd web && npm ci --no-audit --no-fund && node --test test/ && node --test --test-concurrency=1 e2e/)

step "all tests passed"
