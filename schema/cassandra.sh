#!/usr/bin/env bash
# cassandra.sh start|stop|status|kill [--nodes N | --node K]
#
# Runs a real single-node Apache Cassandra 5.0 for development and CI without
# Docker or a tarball: the server jars come from Maven Central through
# cassandra-pom.xml, and CassandraDaemon is started with java directly.
#
# --nodes N (N = 1..9): a ring of N nodes instead, on 127.0.0.2 .. 127.0.0.N+1
# (CQL on CASSANDRA_PORT, 9042, on each address), every node a seed, tokens
# spread evenly, in CASSANDRA_HOME_DIR/ring/nK with the jars shared, cluster
# name chat-ring (so it never gossips with the single node on 127.0.0.1).
# The nodes start side by side; the heap defaults to 1g each. --node K acts
# on node K of the ring alone (restart one after a kill). kill sends SIGKILL
# (a crash, for tests) and waits for the process to end.
#
# Environment (all optional):
#   CASSANDRA_HOME_DIR      jars, config, data, logs, pid   (default: schema/.cassandra)
#   CASSANDRA_ADDR          listen and CQL address          (default: 127.0.0.1)
#   CASSANDRA_PORT          CQL (native transport) port     (default: 9042)
#   CASSANDRA_STORAGE_PORT  inter-node port                 (default: 7000)
#   CASSANDRA_SEEDS         seed list                       (default: ADDR:STORAGE_PORT)
#   CASSANDRA_INITIAL_TOKEN token of this node              (default: 0)
#   CASSANDRA_HEAP          -Xmx and -Xms                   (default: 1g)
#   CASSANDRA_START_TIMEOUT seconds from launch to CQL      (default: 300)
#   CASSANDRA_CLUSTER_NAME  cluster name                    (default: chat-dev)
#   CASSANDRA_LIB_DIR       the jars                        (default: CASSANDRA_HOME_DIR/lib)
#   JAVA_HOME               a JDK 11 or 17 (default: the java 17 on PATH or in /usr/lib/jvm)
#
# A second instance needs its own CASSANDRA_HOME_DIR and either another
# CASSANDRA_ADDR (127.0.0.2) or other ports.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
home=${CASSANDRA_HOME_DIR:-$here/.cassandra}
addr=${CASSANDRA_ADDR:-127.0.0.1}
port=${CASSANDRA_PORT:-9042}
storage_port=${CASSANDRA_STORAGE_PORT:-7000}
seeds=${CASSANDRA_SEEDS:-$addr:$storage_port}
initial_token=${CASSANDRA_INITIAL_TOKEN:-0}
heap=${CASSANDRA_HEAP:-1g}
timeout=${CASSANDRA_START_TIMEOUT:-300}
cluster_name=${CASSANDRA_CLUSTER_NAME:-chat-dev}
# Fast-start settings of a throwaway node (CASSANDRA.md). A ring is for crash
# tests: unsafesystem would lose a killed node's schema (its system tables
# skip the commit log), and a superuser set-up retried without delay
# floods the log while a node is down.
unsafe_system=${CASSANDRA_UNSAFE_SYSTEM:-true}
superuser_delay=${CASSANDRA_SUPERUSER_SETUP_DELAY_MS:-0}

lib=${CASSANDRA_LIB_DIR:-$home/lib}
conf=$home/conf
data=$home/data
logs=$home/logs
pidfile=$home/cassandra.pid

log() { printf 'cassandra.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# find_java prints a java binary of major version 11 or 17: Cassandra 5.0
# refuses newer ones.
find_java() {
	local c v
	for c in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" \
		/usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-arm64/bin/java \
		/usr/lib/jvm/java-17-openjdk/bin/java /usr/lib/jvm/temurin-17-jdk-amd64/bin/java \
		/usr/lib/jvm/java-11-openjdk-amd64/bin/java; do
		[[ -n $c && -x $c ]] || continue
		v=$("$c" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
		if [[ $v == 17 || $v == 11 ]]; then
			printf '%s\n' "$c"
			return 0
		fi
	done
	return 1
}

# install_deps installs what a fresh Debian machine lacks (a JDK 17, Maven)
# when running as root with apt-get, as CI does; elsewhere it only says what
# is missing. CASSANDRA_NO_INSTALL=1 turns it off.
install_deps() {
	local pkgs=()
	find_java >/dev/null || pkgs+=(openjdk-17-jdk-headless)
	jars_complete || command -v mvn >/dev/null || pkgs+=(maven)
	((${#pkgs[@]})) || return 0
	if [[ $(id -u) != 0 || -n ${CASSANDRA_NO_INSTALL:-} ]] || ! command -v apt-get >/dev/null; then
		die "missing: ${pkgs[*]} (install them, or set JAVA_HOME to a JDK 11 or 17)"
	fi
	log "installing ${pkgs[*]} with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 ||
		die "apt-get install ${pkgs[*]} failed"
}

# port_open tells whether something accepts TCP connections on host:port.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# running prints the pid of our Cassandra if it is alive. The command line is
# checked so a stale pid file whose number was reused is not mistaken for it.
running() {
	local pid
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q CassandraDaemon || return 1
	printf '%s\n' "$pid"
}

# jars_complete tells whether $lib holds a complete copy: a stamp holding
# the pom's checksum is written after a successful copy.
jars_complete() {
	[[ -f $lib/.complete && $(<"$lib/.complete") == "$(sha256sum "$here/cassandra-pom.xml" | cut -d' ' -f1)" ]]
}

# resolve_jars copies cassandra-all and its runtime dependencies into $lib,
# once.
resolve_jars() {
	jars_complete && return 0
	log "resolving Cassandra jars from Maven Central into $lib"
	rm -rf "$lib"
	mkdir -p "$lib"
	# Maven 3.8 warns that three sjk-* parser POMs are invalid (they point at
	# a ${jmc5.path} system path); harmless. Its output goes to a log, shown
	# only when it fails.
	mkdir -p "$logs"
	if ! mvn -B -Dstyle.color=never -f "$here/cassandra-pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$lib" >"$logs/mvn.log" 2>&1; then
		tail -n 30 "$logs/mvn.log" >&2
		die "mvn dependency:copy-dependencies failed (see $logs/mvn.log)"
	fi
	ls "$lib"/cassandra-all-*.jar >/dev/null 2>&1 || die "no cassandra-all jar in $lib"
	ls "$lib"/jamm-*.jar >/dev/null 2>&1 || die "no jamm jar in $lib"
	sha256sum "$here/cassandra-pom.xml" | cut -d' ' -f1 >"$lib/.complete"
}

write_config() {
	mkdir -p "$conf" "$data"/{data,commitlog,saved_caches,hints,cdc_raw} "$logs" "$home/triggers" "$home/tmp"
	sed -e "s|@ADDR@|$addr|g" -e "s|@PORT@|$port|g" -e "s|@STORAGE_PORT@|$storage_port|g" \
		-e "s|@SEEDS@|$seeds|g" -e "s|@INITIAL_TOKEN@|$initial_token|g" -e "s|@DATA@|$data|g" \
		-e "s|@CLUSTER@|$cluster_name|g" \
		"$here/cassandra.yaml.tmpl" >"$conf/cassandra.yaml"
	cp "$here/cassandra-logback.xml" "$conf/logback.xml"
}

start() {
	local pid java jamm t0 t1 now elapsed waited
	if pid=$(running); then
		log "already running (pid $pid) on $addr:$port"
		return 0
	fi
	t0=$(date +%s.%N)
	port_open "$addr" "$port" && die "$addr:$port is already in use by another process"
	install_deps
	java=$(find_java) || die "no JDK 11 or 17 found (Cassandra 5.0 runs on no other); set JAVA_HOME"
	resolve_jars
	write_config
	jamm=$(ls "$lib"/jamm-*.jar | head -1)

	local -a opts=(
		-Xss256k -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:+HeapDumpOnOutOfMemoryError
		-XX:HeapDumpPath="$logs" -Djava.net.preferIPv4Stack=true
		-Djdk.attach.allowAttachSelf=true -javaagent:"$jamm"
		-Djava.io.tmpdir="$home/tmp"
		-Dio.netty.tryReflectionSetAccessible=true
		-Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
		-Dcassandra.config="file://$conf/cassandra.yaml"
		-Dcassandra.storagedir="$data"
		-Dcassandra.logdir="$logs"
		-Dlogback.configurationFile="$conf/logback.xml"
		-Dcassandra.triggers_dir="$home/triggers"
		-Dcassandra-foreground=yes
		-Dcassandra-pidfile="$home/cassandra.daemon.pid"
		-Dcassandra.skip_wait_for_gossip_to_settle=0
		-Dcassandra.ring_delay_ms=1000
		-Dcassandra.superuser_setup_delay_ms="$superuser_delay"
		-Dcassandra.unsafesystem="$unsafe_system"
		-Dchronicle.analytics.disable=true
	)
	local m
	for m in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi \
		java.management/com.sun.jmx.remote.security java.rmi/sun.rmi.registry java.rmi/sun.rmi.server \
		java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc \
		jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
		opts+=(--add-exports "$m=ALL-UNNAMED")
	done
	for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
		java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
		java.base/jdk.internal.util.jar java.base/sun.nio.ch java.base/java.io \
		java.base/java.lang.reflect java.base/java.lang java.base/java.util java.base/java.nio \
		jdk.management/com.sun.management.internal jdk.compiler/com.sun.tools.javac; do
		opts+=(--add-opens "$m=ALL-UNNAMED")
	done

	log "starting Cassandra on $addr:$port (storage $storage_port, logs $logs/system.log)"
	# setsid: the daemon must outlive this script and the shell (or CI step)
	# that ran it. The inner shell records its own pid, then becomes java.
	# 9>&-: the daemon must not inherit (and so hold) the start/stop lock.
	# shellcheck disable=SC2016
	rm -f "$pidfile"
	setsid bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && shift && exec "$@"' _ "$pidfile" \
		"$java" "${opts[@]}" -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon \
		</dev/null >"$logs/stdout.log" 2>&1 9>&- &
	pid=

	# The timeout counts from the launch: resolving jars has its own pace.
	t1=$(date +%s.%N)
	while :; do
		now=$(date +%s.%N)
		elapsed=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
		waited=$(awk -v a="$t1" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
		if port_open "$addr" "$port"; then
			log "CQL answers on $addr:$port after ${elapsed}s (${waited}s since launch)"
			return 0
		fi
		[[ -z $pid && -f $pidfile ]] && pid=$(<"$pidfile")
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			tail -n 40 "$logs/stdout.log" >&2 || true
			rm -f "$pidfile"
			die "Cassandra exited during start (see $logs)"
		fi
		if awk -v e="$waited" -v t="$timeout" 'BEGIN { exit !(e > t) }'; then
			tail -n 40 "$logs/system.log" >&2 || true
			stop || true
			die "CQL did not answer within ${timeout}s"
		fi
		sleep 0.5
	done
}

stop() {
	local pid i
	if ! pid=$(running); then
		rm -f "$pidfile"
		log "not running"
		return 0
	fi
	kill -TERM "$pid"
	for ((i = 0; i < 120; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "still alive after 60s; killing"
		kill -KILL "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
	fi
	rm -f "$pidfile"
	log "stopped (pid $pid)"
}

# kill_now ends the daemon with SIGKILL, as a crash would: no drain, no
# flush (the commit log is replayed at the next start).
kill_now() {
	local pid
	if ! pid=$(running); then
		rm -f "$pidfile"
		log "not running"
		return 0
	fi
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	rm -f "$pidfile"
	log "killed (pid $pid)"
}

status() {
	local pid
	if pid=$(running); then
		if port_open "$addr" "$port"; then
			echo "running (pid $pid), CQL on $addr:$port"
		else
			echo "running (pid $pid), CQL on $addr:$port not answering yet"
		fi
		return 0
	fi
	echo "not running"
	return 3
}

# lock serialises start and stop of one CASSANDRA_HOME_DIR, so that two
# callers starting at once (a developer and a test script) do not launch two
# daemons on one data folder: the second waits and finds it running.
# stop waits only briefly: a daemon started by an older version of this
# script may hold the lock itself, and stopping must never hang on that.
lock() {
	mkdir -p "$home"
	exec 9>"$home/.lock"
	flock -w "$1" 9 && return 0
	[[ $2 == stop ]] || die "could not lock $home/.lock"
	log "$home/.lock is busy; stopping anyway"
}

# ring_node K prints the environment of node K (1-based) of an N-node
# ring: its folder, address, the seeds, its token (the Murmur3 range split
# evenly) and the shared jars.
ring_env() {
	local k=$1 n=$2 i seedlist=() token
	for ((i = 1; i <= n; i++)); do seedlist+=("127.0.0.$((i + 1)):$storage_port"); done
	token=$(awk -v k="$k" -v n="$n" 'BEGIN { printf "%.0f", -9223372036854775808 + (k - 1) * (18446744073709551616 / n) }')
	# awk's doubles round the token; any distinct values in range will do.
	printf '%s\0' "CASSANDRA_HOME_DIR=$home/ring/n$k" "CASSANDRA_ADDR=127.0.0.$((k + 1))" \
		"CASSANDRA_SEEDS=$(IFS=,; echo "${seedlist[*]}")" "CASSANDRA_INITIAL_TOKEN=$token" \
		"CASSANDRA_LIB_DIR=$lib" "CASSANDRA_CLUSTER_NAME=chat-ring" \
		"CASSANDRA_UNSAFE_SYSTEM=false" "CASSANDRA_SUPERUSER_SETUP_DELAY_MS=10000" \
		"CASSANDRA_START_TIMEOUT=${CASSANDRA_START_TIMEOUT:-600}"
}

# ring runs cmd on nodes (a list of K) of an N-node ring, side by side, and
# fails if any failed.
ring() {
	local cmd=$1 n=$2 k rc=0 t0 t1
	shift 2
	local -a pids=() envs
	t0=$(date +%s.%N)
	if [[ $cmd == start ]]; then
		# The jars once, for every node.
		mkdir -p "$home"
		install_deps
		resolve_jars
	fi
	for k in "$@"; do
		mapfile -d '' envs < <(ring_env "$k" "$n")
		# A subshell, so that wait gets the pipeline's status (pipefail).
		if [[ $cmd == status ]]; then
			(env "${envs[@]}" "$0" "$cmd" 2>&1 | sed -u "s/^/n$k 127.0.0.$((k + 1)): /") &
		else
			(env "${envs[@]}" "$0" "$cmd" 2>&1 | sed -u "s/^/[n$k 127.0.0.$((k + 1))] /" >&2) &
		fi
		pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k" || rc=1; done
	t1=$(date +%s.%N)
	log "$cmd of ring node(s) $* done in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
	return $rc
}

cmd=${1:-}
nodes=
node=
shift || true
while (($#)); do
	case $1 in
	--nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
	--node) node=${2:?--node needs a number}; shift 2 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
if [[ -n $nodes || -n $node ]]; then
	nodes=${nodes:-3}
	[[ $nodes =~ ^[1-9]$ ]] || die "--nodes must be 1..9"
	[[ -z $node || ($node =~ ^[1-9]$ && $node -le $nodes) ]] || die "--node must be 1..$nodes"
	case $cmd in
	start | stop | status | kill) ;;
	*) echo "usage: $0 start|stop|status|kill [--nodes N | --node K]" >&2; exit 2 ;;
	esac
	if [[ -n $node ]]; then
		ring "$cmd" "$nodes" "$node"
	else
		ring "$cmd" "$nodes" $(seq 1 "$nodes")
	fi
	exit
fi

case $cmd in
start) lock "$((timeout + 600))" start && start ;;
stop) lock 15 stop && stop ;;
kill) lock 15 stop && kill_now ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status|kill [--nodes N | --node K]" >&2
	exit 2
	;;
esac
