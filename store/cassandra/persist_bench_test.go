package cassandra_test

// Persist throughput: messages per second that one store.Service writes from
// the JetStream stream into Cassandra, next to the ceiling of plain gocql
// writing the same rows from one process. docs/BENCHMARKS.md has the figures
// and the command:
//
//	CHAT_TEST_CASSANDRA=127.0.0.1:9042 go test -run '^$' -bench 'Persist' -benchtime 3x ./store/cassandra/
//
// CHAT_BENCH_STORE tunes the store side for experiments, e.g.
// CHAT_BENCH_STORE='BatchSize=2000,Prefetch=4000,MaxInFlight=128' (keys:
// ServiceConfig's BatchSize, BatchLinger, BatchIdle, Prefetch,
// MaxAckPending, WritesInFlight, and cassandra.Config's MaxInFlight,
// MaxWritesInFlight, NumConns). Each benchmark has the sub-benchmarks
// spread (10,000 conversations) and concentrated (100); the ratio of
// issue 12 is BenchmarkPersistStore/<shape> over the better of
// BenchmarkPersistGocqlCeiling/<shape>/{inserts,batches}.
// CHAT_BENCH_CASSANDRA_PID=<pid of the local node> adds the node's CPU time
// per message.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/schema"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/cassandra"
)

// Every iteration persists persistBatch messages spread evenly over the
// conversations of its shape, so iterations are comparable whatever b.N is.
const (
	persistBatch   = 20_000
	persistWorkers = 64 // goroutines of the gocql ceiling
	persistBody    = "a message body of a typical length, about sixty bytes long."
	persistTimeout = 5 * time.Minute // one iteration; a stuck store fails the run
)

// persistShapes are the sub-benchmarks of both persist benchmarks (issue
// 12): messages spread over many conversations (about two per partition
// per iteration: the batch per partition is small, the conversation-row
// updates many) or concentrated in few (200 per partition).
var persistShapes = []struct {
	name  string
	convs int
}{
	{"spread", 10_000},
	{"concentrated", 100},
}

// persistKeyspace migrates a fresh keyspace on the node of
// CHAT_TEST_CASSANDRA (skipping when it is unset) and drops it when b ends.
func persistKeyspace(b *testing.B) (hosts []string, keyspace string) {
	b.Helper()
	v := os.Getenv("CHAT_TEST_CASSANDRA")
	if v == "" {
		b.Skip("set CHAT_TEST_CASSANDRA=127.0.0.1:9042 to run against a Cassandra node (schema/cassandra.sh start)")
	}
	hosts = cassandra.ParseHosts(v)
	addr := hosts[0]
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "9042")
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatalf("CHAT_TEST_CASSANDRA=%s does not answer: %v", v, err)
	}
	c.Close()

	var r [4]byte
	_, _ = rand.Read(r[:])
	keyspace = "persist_bench_" + hex.EncodeToString(r[:])
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := schema.Migrate(ctx, schema.Config{Hosts: hosts, Keyspace: keyspace, Consistency: gocql.One}); err != nil {
		b.Fatalf("migrating keyspace %s: %v", keyspace, err)
	}
	b.Cleanup(func() {
		cl := gocql.NewCluster(hosts...)
		cl.Timeout = time.Minute
		s, err := cl.CreateSession()
		if err != nil {
			b.Logf("dropping keyspace %s: %v", keyspace, err)
			return
		}
		defer s.Close()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec(); err != nil {
			b.Logf("dropping keyspace %s: %v", keyspace, err)
		}
	})
	return hosts, keyspace
}

// persistSession is a plain gocql session set up as the backend sets up
// its own: consistency ONE, token-aware routing, idempotent queries.
func persistSession(b *testing.B, hosts []string, keyspace string) *gocql.Session {
	b.Helper()
	cl := gocql.NewCluster(hosts...)
	cl.Keyspace = keyspace
	cl.Consistency = gocql.One
	cl.Timeout = 10 * time.Second
	cl.NumConns = cassandra.DefaultNumConns
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	cl.DefaultIdempotence = true
	s, err := cl.CreateSession()
	if err != nil {
		b.Fatalf("gocql session: %v", err)
	}
	b.Cleanup(s.Close)
	return s
}

// persistMessages makes the next n messages, round robin over the
// conversations "1".."convs", with fresh IDs.
func persistMessages(gen *chat.Generator, n, convs int) []chat.Message {
	msgs := make([]chat.Message, n)
	for i := range msgs {
		id := gen.Next()
		msgs[i] = chat.Message{
			ID:           id,
			Conversation: strconv.Itoa(1 + i%convs),
			Sender:       chat.ID(1000 + i%50),
			Body:         persistBody,
			SentAt:       id.Time(),
			ClientID:     "c" + id.String(),
		}
	}
	return msgs
}

// persistBucket is the messages partition of an ID as the backend computes
// it with the default bucket width in a fresh keyspace (buckets.go): units
// of width/2^16, and region-wide buckets (256 units, 56 min) for a
// conversation's first region. A run that crosses a region boundary would
// see later regions narrowed.
func persistBucket(id chat.ID) int {
	ms := id.Time().UnixMilli() - chat.Epoch.UnixMilli()
	return int((ms<<16)/cassandra.DefaultBucketWidth.Milliseconds()) &^ 255
}

type partKey struct {
	conv   string
	bucket int
}

// rowCounter checks, outside the timed part, that every message written so
// far is in the messages table.
type rowCounter struct {
	s     *gocql.Session
	parts map[partKey]bool
	want  int
}

func (c *rowCounter) add(msgs []chat.Message) {
	if c.parts == nil {
		c.parts = map[partKey]bool{}
	}
	for _, m := range msgs {
		c.parts[partKey{m.Conversation, persistBucket(m.ID)}] = true
	}
	c.want += len(msgs)
}

func (c *rowCounter) check(b *testing.B) {
	b.Helper()
	got := 0
	for k := range c.parts {
		var n int
		if err := c.s.Query(`SELECT COUNT(*) FROM messages WHERE conversation_id = ? AND bucket = ?`, k.conv, k.bucket).
			WithContext(b.Context()).Scan(&n); err != nil {
			b.Fatalf("counting rows of %v: %v", k, err)
		}
		got += n
	}
	if got != c.want {
		b.Fatalf("messages table holds %d rows, want %d", got, c.want)
	}
}

// storeTuning is the configuration CHAT_BENCH_STORE asks for.
func storeTuning(b *testing.B) (store.ServiceConfig, cassandra.Config) {
	b.Helper()
	var sc store.ServiceConfig
	var cc cassandra.Config
	spec := os.Getenv("CHAT_BENCH_STORE")
	for _, kv := range strings.Split(spec, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		n, nerr := strconv.Atoi(v)
		d, derr := time.ParseDuration(v)
		var err error
		switch k {
		case "BatchSize":
			sc.BatchSize, err = n, nerr
		case "Prefetch":
			sc.Prefetch, err = n, nerr
		case "MaxAckPending":
			sc.MaxAckPending, err = n, nerr
		case "BatchLinger":
			sc.BatchLinger, err = d, derr
		case "BatchIdle":
			sc.BatchIdle, err = d, derr
		case "WritesInFlight":
			sc.WritesInFlight, err = n, nerr
		case "MaxInFlight":
			cc.MaxInFlight, err = n, nerr
		case "MaxWritesInFlight":
			cc.MaxWritesInFlight, err = n, nerr
		case "NumConns":
			cc.NumConns, err = n, nerr
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			b.Fatalf("CHAT_BENCH_STORE=%q: %q: %v", spec, kv, err)
		}
	}
	if spec != "" {
		b.Logf("store tuning: %s", spec)
	}
	return sc, cc
}

// BenchmarkPersistStore measures one store.Service with the Cassandra
// backend draining a backlog: each iteration publishes 20,000 messages to
// the stream of an embedded JetStream server (untimed), then starts a
// Service and times until the consumer's ack floor reaches the last of
// them, that is until all are written and acked.
func BenchmarkPersistStore(b *testing.B) {
	for _, shape := range persistShapes {
		b.Run(shape.name, func(b *testing.B) { persistStore(b, shape.convs) })
	}
}

func persistStore(b *testing.B, convs int) {
	hosts, keyspace := persistKeyspace(b)
	sc, cc := storeTuning(b)
	cc.Hosts, cc.Keyspace, cc.Consistency = hosts, keyspace, gocql.One
	be, err := cassandra.Open(b.Context(), cc)
	if err != nil {
		b.Fatalf("cassandra.Open: %v", err)
	}
	b.Cleanup(func() { _ = be.Close() })
	counter := &rowCounter{s: persistSession(b, hosts, keyspace)}

	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	ns.Start()
	b.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats server not ready")
	}
	// The publisher and poller use one connection, the Service its own, as
	// a gateway and a store pod would.
	pc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pc.Close)
	pjs, err := jetstream.New(pc)
	if err != nil {
		b.Fatal(err)
	}
	sconn, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sconn.Close)
	sjs, err := jetstream.New(sconn)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := router.EnsureStream(b.Context(), pjs, router.StreamConfig{}); err != nil {
		b.Fatal(err)
	}

	gen, err := chat.NewGenerator(1)
	if err != nil {
		b.Fatal(err)
	}
	var stats saveStats
	cpu := newCassandraCPU(b)
	for b.Loop() {
		b.StopTimer()
		msgs := persistMessages(gen, persistBatch, convs)
		last := persistPublish(b, pjs, msgs)
		counter.add(msgs)

		s, err := store.NewService(sc, countingBackend{be, &stats}, sconn, sjs, 1, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		runErr := make(chan error, 1)
		cpu.begin(b)
		b.StartTimer()
		go func() { runErr <- s.Run(ctx) }()
		persistWaitAcked(b, pjs, last, runErr)
		b.StopTimer()
		cpu.end(b)

		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		if err := s.Shutdown(sctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		scancel()
		cancel()
		if err := <-runErr; err != nil {
			b.Fatalf("Run: %v", err)
		}
		counter.check(b)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*persistBatch)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*persistBatch)/float64(stats.writes.Load()), "msgs/write")
	// The time spent inside SaveMessages, summed over the writes in flight,
	// per second of the timed run: above 100 means writes overlap.
	b.ReportMetric(100*float64(stats.nanos.Load())/float64(b.Elapsed()), "%in-save")
	b.ReportMetric(float64(stats.stmts.Load())/float64(b.N*persistBatch), "stmts/msg")
	cpu.report(b, b.N*persistBatch)
}

// countingBackend counts the backend's message writes and the time spent
// in them.
type countingBackend struct {
	*cassandra.Backend
	st *saveStats
}

type saveStats struct {
	writes atomic.Int64
	nanos  atomic.Int64
	stmts  atomic.Int64
}

func (c countingBackend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	return c.SaveMessagesReporting(ctx, msgs, nil)
}

// SaveMessagesReporting is what the Service calls (store.ReportingSaver):
// counted like SaveMessages.
func (c countingBackend) SaveMessagesReporting(ctx context.Context, msgs []chat.Message, stored func(string)) error {
	// The requests the backend sends for msgs, as messages.go builds them:
	// one unlogged batch per partition and 100 rows, then one update of
	// each conversation's row (conversation_buckets inserts are cached and
	// left out).
	parts := map[partKey]int{}
	convs := map[string]bool{}
	for _, m := range msgs {
		parts[partKey{m.Conversation, persistBucket(m.ID)}]++
		convs[m.Conversation] = true
	}
	stmts := len(convs)
	for _, n := range parts {
		stmts += (n + 99) / 100
	}
	c.st.stmts.Add(int64(stmts))
	start := time.Now()
	err := c.Backend.SaveMessagesReporting(ctx, msgs, stored)
	c.st.nanos.Add(int64(time.Since(start)))
	c.st.writes.Add(1)
	return err
}

// persistPublish publishes msgs as the gateway does (the Message JSON on
// chat.msg.<conversation>, with a deduplication ID) and returns the stream
// sequence of the last. The gateway's expected-last-sequence guard is left
// out: it only orders concurrent publishers, and the store does not see it.
func persistPublish(b *testing.B, js jetstream.JetStream, msgs []chat.Message) uint64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), persistTimeout)
	defer cancel()
	var last uint64
	// Acks are awaited every window, below the client's async limit.
	const window = 1000
	futures := make([]jetstream.PubAckFuture, 0, window)
	await := func() {
		for _, f := range futures {
			select {
			case ack := <-f.Ok():
				if ack.Duplicate {
					b.Fatalf("publish: sequence %d reported as a duplicate", ack.Sequence)
				}
				last = max(last, ack.Sequence)
			case err := <-f.Err():
				b.Fatalf("publish: %v", err)
			case <-ctx.Done():
				b.Fatalf("publish: %v", ctx.Err())
			}
		}
		futures = futures[:0]
	}
	// Numbered as the gateway numbers them (chat.Number), in ID order.
	nums := map[string]chat.Number{}
	for _, m := range msgs {
		nm := &nats.Msg{Subject: chat.MsgSubject(m.Conversation), Data: m.AppendJSON(nil), Header: nats.Header{}}
		num := nums[m.Conversation].Next(m.ID)
		nums[m.Conversation] = num
		nm.Header.Set(chat.HdrNum, strconv.FormatUint(num.N, 10))
		nm.Header.Set(chat.HdrNumBase, num.Base.String())
		f, err := js.PublishMsgAsync(nm, jetstream.WithMsgID(chat.MsgIDHeader(m.Conversation, m.Sender, m.ClientID)))
		if err != nil {
			b.Fatalf("publish: %v", err)
		}
		if futures = append(futures, f); len(futures) == window {
			await()
		}
	}
	await()
	return last
}

// persistWaitAcked polls the store's consumer until its ack floor reaches
// seq: every message up to it is written and acked.
func persistWaitAcked(b *testing.B, js jetstream.JetStream, seq uint64, runErr <-chan error) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), persistTimeout)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var floor uint64
	for {
		select {
		case err := <-runErr:
			b.Fatalf("store service stopped early: %v", err)
		case <-ctx.Done():
			b.Fatalf("ack floor %d after %v, want %d", floor, persistTimeout, seq)
		case <-t.C:
		}
		cons, err := js.Consumer(ctx, chat.StreamName, chat.StoreDurable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // the Service has not created it yet
		}
		if err != nil {
			b.Fatalf("consumer: %v", err)
		}
		// Consumer fetched the info just now.
		floor = cons.CachedInfo().AckFloor.Stream
		if floor >= seq {
			return
		}
	}
}

type persistRow struct {
	conv         string
	bucket       int
	id, sender   int64
	body, client string
	sent         time.Time
}

func persistRows(msgs []chat.Message) []persistRow {
	rows := make([]persistRow, len(msgs))
	for i, m := range msgs {
		rows[i] = persistRow{m.Conversation, persistBucket(m.ID), int64(m.ID), int64(m.Sender), m.Body, m.ClientID, m.SentAt}
	}
	return rows
}

const persistInsert = `INSERT INTO messages (conversation_id, bucket, message_id, sender_id, body, client_id, sent_at)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// BenchmarkPersistGocqlCeiling writes the rows the store writes for 20,000
// messages (the messages table only) with plain gocql, as fast as one
// process can: one prepared INSERT per row from 64 goroutines, or unlogged
// batches of up to 100 rows of one partition (the backend's batch shape)
// from 64 goroutines. The better of the two is the ceiling.
func BenchmarkPersistGocqlCeiling(b *testing.B) {
	hosts, keyspace := persistKeyspace(b)
	s := persistSession(b, hosts, keyspace)
	gen, err := chat.NewGenerator(2)
	if err != nil {
		b.Fatal(err)
	}
	counter := &rowCounter{s: s}
	run := func(b *testing.B, convs int, write func(context.Context, *gocql.Session, []persistRow) error) {
		cpu := newCassandraCPU(b)
		for b.Loop() {
			b.StopTimer()
			msgs := persistMessages(gen, persistBatch, convs)
			rows := persistRows(msgs)
			counter.add(msgs)
			cpu.begin(b)
			b.StartTimer()
			if err := write(b.Context(), s, rows); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu.end(b)
			counter.check(b)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.N*persistBatch)/b.Elapsed().Seconds(), "msgs/s")
		cpu.report(b, b.N*persistBatch)
	}
	for _, shape := range persistShapes {
		b.Run(shape.name, func(b *testing.B) {
			b.Run("inserts", func(b *testing.B) { run(b, shape.convs, persistInserts) })
			b.Run("batches", func(b *testing.B) { run(b, shape.convs, persistBatches) })
		})
	}
}

// persistParallel runs fn(i) for i in [0, n) on persistWorkers goroutines and
// returns the first error.
func persistParallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(persistWorkers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func persistInserts(ctx context.Context, s *gocql.Session, rows []persistRow) error {
	return persistParallel(ctx, len(rows), func(ctx context.Context, i int) error {
		r := rows[i]
		return s.Query(persistInsert, r.conv, r.bucket, r.id, r.sender, r.body, r.client, r.sent).
			WithContext(ctx).Exec()
	})
}

func persistBatches(ctx context.Context, s *gocql.Session, rows []persistRow) error {
	byPart := map[partKey][]persistRow{}
	var order []partKey
	for _, r := range rows {
		k := partKey{r.conv, r.bucket}
		if byPart[k] == nil {
			order = append(order, k)
		}
		byPart[k] = append(byPart[k], r)
	}
	const per = 100 // the backend's maxBatchStatements
	var chunks [][]persistRow
	for _, k := range order {
		p := byPart[k]
		for len(p) > 0 {
			n := min(per, len(p))
			chunks = append(chunks, p[:n])
			p = p[n:]
		}
	}
	return persistParallel(ctx, len(chunks), func(ctx context.Context, i int) error {
		batch := s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
		for _, r := range chunks[i] {
			batch.Entries = append(batch.Entries, gocql.BatchEntry{
				Stmt:       persistInsert,
				Args:       []any{r.conv, r.bucket, r.id, r.sender, r.body, r.client, r.sent},
				Idempotent: true,
			})
		}
		return s.ExecuteBatch(batch)
	})
}

// cassandraCPU adds up the CPU time of the Cassandra process over the timed
// parts, when CHAT_BENCH_CASSANDRA_PID names it (Linux /proc; for a node on
// this machine only). It tells what a message costs the database, which on
// a machine this small is what bounds both benchmarks.
type cassandraCPU struct {
	stat         string // /proc/<pid>/stat; empty when not measuring
	start, total time.Duration
}

func newCassandraCPU(b *testing.B) *cassandraCPU {
	b.Helper()
	pid := os.Getenv("CHAT_BENCH_CASSANDRA_PID")
	if pid == "" {
		return &cassandraCPU{}
	}
	c := &cassandraCPU{stat: "/proc/" + pid + "/stat"}
	if _, err := c.read(); err != nil {
		b.Fatalf("CHAT_BENCH_CASSANDRA_PID=%s: %v", pid, err)
	}
	return c
}

// read returns the process's user plus system time. The kernel counts it
// in clock ticks of 1/100 s (USER_HZ on Linux).
func (c *cassandraCPU) read() (time.Duration, error) {
	raw, err := os.ReadFile(c.stat)
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is the first, utime the 12th, stime the 13th.
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("unexpected %s: %q", c.stat, raw)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", c.stat, err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func (c *cassandraCPU) begin(b *testing.B) {
	if c.stat == "" {
		return
	}
	t, err := c.read()
	if err != nil {
		b.Fatalf("Cassandra CPU (did the node restart?): %v", err)
	}
	c.start = t
}

func (c *cassandraCPU) end(b *testing.B) {
	if c.stat == "" {
		return
	}
	t, err := c.read()
	if err != nil {
		b.Fatalf("Cassandra CPU (did the node restart?): %v", err)
	}
	c.total += t - c.start
}

// report adds the Cassandra CPU per message and its share of the timed run
// (100 is one core busy the whole time).
func (c *cassandraCPU) report(b *testing.B, msgs int) {
	if c.stat == "" {
		return
	}
	b.ReportMetric(float64(c.total.Microseconds())/float64(msgs), "cass-cpu-us/msg")
	b.ReportMetric(100*float64(c.total)/float64(b.Elapsed()), "%cass-cpu")
}
