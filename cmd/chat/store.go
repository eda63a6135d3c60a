package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/cassandra"
	"github.com/gocql/gocql"
	"go.uber.org/zap"
)

func init() { commands["store"] = runStore }

// runStore runs one store replica: it consumes the message stream into
// Cassandra (replicas share one durable consumer) and answers queries.
func runStore(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat store", flag.ContinueOnError)
	addr := fs.String("addr", ":8081", "address of /healthz and /readyz")
	metricsAddr, pprofOn := metricsFlags(fs, defaultStoreMetrics)
	natsF := addNATSFlags(fs)
	hosts := fs.String("cassandra", "127.0.0.1:9042", "Cassandra contact points, comma separated")
	keyspace := fs.String("keyspace", "chat", "Cassandra keyspace (made by chat migrate)")
	consistency := fs.String("consistency", "LOCAL_QUORUM", "Cassandra consistency: LOCAL_QUORUM, QUORUM, ONE, ...")
	serial := fs.String("serial-consistency", "SERIAL", "consistency of the username transactions: SERIAL, or LOCAL_SERIAL to keep them in the local data centre")
	localDC := fs.String("local-dc", "", "keep queries in this Cassandra data centre")
	specDelay := fs.Duration("speculative-delay", cassandra.DefaultSpeculativeDelay, "a read unanswered this long is also sent to another replica, the first answer wins; 0 turns it off")
	replicas := fs.Int("stream-replicas", 1, "JetStream replicas of the message stream (3 in a cluster)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	var limits groupLimits
	groupLimitFlags(fs, &limits)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cons, err := parseConsistency(*consistency)
	if err != nil {
		return err
	}
	var serialCons gocql.SerialConsistency
	if err := serialCons.UnmarshalText([]byte(strings.ToUpper(*serial))); err != nil {
		return fmt.Errorf("--serial-consistency %q: %w", *serial, err)
	}
	if *specDelay <= 0 {
		*specDelay = -1 // Config: negative is off, zero the default
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr

	reg := newRegistry()
	var procMu sync.Mutex
	var proc *store.Process
	ready := func() bool {
		procMu.Lock()
		defer procMu.Unlock()
		return proc != nil && proc.Ready()
	}
	health, err := serveHTTP(*addr, healthHandler(ready), log)
	if err != nil {
		return err
	}
	defer health.Close()
	metrics, err := serveHTTP(*metricsAddr, metricsHandler(reg, *pprofOn), log)
	if err != nil {
		return err
	}
	defer metrics.Close()

	nc, err := connectNATS(natsF, "store", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := waitConnected(ctx, nc); err != nil {
		return err
	}

	// Cassandra may still be starting: keep trying, not ready meanwhile.
	var backend *cassandra.Backend
	for {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		backend, err = cassandra.Open(octx, cassandra.Config{Hosts: splitList(*hosts), Keyspace: *keyspace, Consistency: cons, SerialConsistency: serialCons, LocalDC: *localDC,
			SpeculativeDelay: *specDelay})
		cancel()
		if err == nil {
			break
		}
		log.Warn("cassandra not reachable yet", zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("cassandra: %w", err)
		case <-time.After(2 * time.Second):
		}
	}
	defer backend.Close()

	// Bigger batches for Cassandra: per message they cost it a fifth of the
	// requests; measured +83% persisted per second (docs/BENCHMARKS.md), at
	// up to 100 ms more before a message is in history under steady load.
	// Four such writes in flight keep the node busy (issue 12; not yet
	// measured on a quiet machine), so the prefetch holds four batches.
	storeConfig := store.ServiceConfig{Stream: chat.StreamName, Durable: chat.StoreDurable, AckWait: storeAckWait,
		BatchSize: 2000, Prefetch: 8000, WritesInFlight: 4, BatchLinger: 100 * time.Millisecond, KVReplicas: *replicas}
	limits.apply(&storeConfig)
	p, err := store.Start(ctx, store.Options{
		NATS: nc, Backend: backend, Registry: reg, Log: log,
		Stream: &router.StreamConfig{Replicas: *replicas},
		Lease:  router.LeaseConfig{Replicas: *replicas},
		Config: storeConfig,
	})
	if err != nil {
		return err
	}
	procMu.Lock()
	proc = p
	procMu.Unlock()
	log.Info("store running", zap.String("health", health.URL()), zap.String("metrics", metrics.URL()), zap.Int("node", p.Node()))
	select {
	case <-ctx.Done():
	case <-p.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		log.Warn("shutdown", zap.Error(err))
	}
	return p.Err()
}

func parseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(strings.ToUpper(s))
	if err != nil {
		return 0, fmt.Errorf("--consistency %q: %w", s, err)
	}
	return c, nil
}

// storeAckWait is how long a message delivered to a store that died stays
// unacknowledged before JetStream hands it to another. History waits for
// those messages (it never returns a page with a hole), so this bounds how
// long a conversation's history is unavailable after a store crash. The
// service extends the deadline of a batch whose write is merely slow.
const storeAckWait = 5 * time.Second
