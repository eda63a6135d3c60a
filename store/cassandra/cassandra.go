// Package cassandra is the production store.Backend: the chat's accounts,
// conversations, memberships, messages and read marks in Apache Cassandra,
// in the tables of schema/migrations (see schema/README.md for the data
// model and its reasoning).
//
// Writes are idempotent, so a redelivered JetStream message or a retried
// request leaves the same state, and every query is marked idempotent so the
// driver may retry it. Three techniques keep that cheap:
//   - Lightweight transactions (INSERT ... IF NOT EXISTS) only where a
//     decision must be made once: claiming a username, creating a
//     conversation, adding members (one conditional batch per
//     conversation, not one transaction per member).
//   - Write timestamps chosen on purpose where a value must only move one
//     way: a conversation's last message and a read mark are written
//     USING TIMESTAMP equal to the message ID, so last-write-wins keeps the
//     largest ID in any arrival order, with no read and no transaction.
//     Messages are written with a timestamp that decreases with wall-clock
//     time, so a later replay of a stored ID never overwrites the first
//     write. A consequence: deleting such cells needs USING TIMESTAMP
//     above theirs (TTLs are not affected).
//   - Nothing written as null: unset values use gocql.UnsetValue, which
//     leaves no tombstone.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/schema"
	"github.com/chatcluster/chat/store"
)

var _ store.Backend = (*Backend)(nil)

// ErrSchema reports a keyspace that is missing migrations or was set up with
// another bucket width.
var ErrSchema = errors.New("cassandra: schema mismatch")

// Backend is a store.Backend on a Cassandra cluster. Safe for concurrent use.
type Backend struct {
	s       *gocql.Session
	cfg     Config
	widthMS int64
	sem     chan struct{} // bounds fan-out reads (and account/membership writes) in flight
	wsem    chan struct{} // bounds message writes in flight: a burst of reads does not slow persisting
	spec    *specPolicy   // speculative execution of reads; nil when off
	split   uint          // bucket_split_bits of the keyspace (buckets.go)
	levels  levelCache    // recorded region levels (buckets.go)
	// prefixes remembers the username_prefixes keys written (usersearch.go).
	prefixes prefixSeen
	buckets  bucketCache
	// changeBuckets remembers buckets recorded in change_buckets.
	changeBuckets bucketCache
	// claimed, set by tests, runs right after a username claim: an error
	// there stands for the process dying between the claim and the rest.
	claimed func() error
	// wave, set by tests, sees how many buckets each round of a history
	// page reads at once.
	wave func(buckets int)
	// observer, set by tests, sees every query made through q.
	observer gocql.QueryObserver

	closeOnce sync.Once
}

// Open connects to cfg.Hosts, checks that cfg.Keyspace is migrated to the
// schema this binary knows, and fixes or checks the keyspace's bucket width.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Keyspace = cfg.Keyspace
	cl.Consistency = cfg.Consistency
	cl.SerialConsistency = cfg.SerialConsistency
	cl.Timeout = cfg.Timeout
	cl.ConnectTimeout = cfg.ConnectTimeout
	cl.NumConns = cfg.NumConns
	// A node back from a restart is used again within seconds, so the
	// backlog JetStream held meanwhile drains at once (gocql's default
	// waits a minute).
	cl.ReconnectInterval = 2 * time.Second
	// Queries go straight to a replica of their partition; which replicas
	// are eligible is the fallback policy's choice (the local data centre
	// when one is named).
	fallback := gocql.RoundRobinHostPolicy()
	if cfg.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(cfg.LocalDC)
	}
	up := newUpCounter(gocql.TokenAwareHostPolicy(fallback, gocql.ShuffleReplicas()))
	cl.PoolConfig.HostSelectionPolicy = up
	cl.RetryPolicy = newRetryPolicy(cfg.Retries)
	cl.DefaultIdempotence = true
	if cfg.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}

	type result struct {
		s   *gocql.Session
		err error
	}
	// CreateSession takes no context; run it aside so ctx can end the wait.
	ch := make(chan result, 1)
	go func() {
		s, err := cl.CreateSession()
		ch <- result{s, err}
	}()
	var s *gocql.Session
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("cassandra: connecting to %v keyspace %s: %w: %w", cfg.Hosts, cfg.Keyspace, chat.ErrUnavailable, r.err)
		}
		s = r.s
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("cassandra: connecting: %w: %w", chat.ErrUnavailable, ctx.Err())
	}

	b := &Backend{
		s:       s,
		cfg:     cfg,
		widthMS: cfg.BucketWidth.Milliseconds(),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		wsem:    make(chan struct{}, cfg.MaxWritesInFlight),
	}
	if cfg.SpeculativeAttempts > 0 {
		b.spec = &specPolicy{attempts: cfg.SpeculativeAttempts, delay: cfg.SpeculativeDelay, up: up}
	}
	if err := b.checkSchema(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) checkSchema(ctx context.Context) error {
	applied, err := schema.Applied(ctx, b.s)
	if err != nil {
		return fmt.Errorf("%w: keyspace %s: %w (run chat migrate)", ErrSchema, b.cfg.Keyspace, err)
	}
	for v := 1; v <= schema.Latest(); v++ {
		if _, ok := applied[v]; !ok {
			return fmt.Errorf("%w: keyspace %s lacks migration %d (run chat migrate)", ErrSchema, b.cfg.Keyspace, v)
		}
	}
	// The first backend to open the keyspace fixes its bucket width.
	want := strconv.FormatInt(b.widthMS, 10)
	prev := map[string]any{}
	applied2, err := b.q(ctx, `INSERT INTO settings (name, value) VALUES ('bucket_width_ms', ?) IF NOT EXISTS`, want).MapScanCAS(prev)
	if err != nil {
		return wrap("checking bucket width", err)
	}
	if !applied2 && prev["value"] != want {
		return fmt.Errorf("%w: keyspace %s stores messages in buckets of %v ms, not %s ms", ErrSchema, b.cfg.Keyspace, prev["value"], want)
	}
	return b.claimSplit(ctx, applied2)
}

// Close closes the session. Safe to call more than once.
func (b *Backend) Close() error {
	b.closeOnce.Do(b.s.Close)
	return nil
}

// Ping checks that a Cassandra node answers, for readiness probes.
func (b *Backend) Ping(ctx context.Context) error {
	var v string
	if err := b.s.Query(`SELECT release_version FROM system.local`).WithContext(ctx).
		Consistency(gocql.One).Scan(&v); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// q makes an idempotent query bound to ctx; a read (SELECT) may speculate.
func (b *Backend) q(ctx context.Context, stmt string, args ...any) *gocql.Query {
	q := b.s.Query(stmt, args...).WithContext(ctx).Idempotent(true)
	if b.spec != nil && isRead(stmt) {
		q = q.SetSpeculativeExecutionPolicy(b.spec)
	}
	if b.observer != nil {
		q = q.Observer(b.observer)
	}
	return q
}

// wrap turns a driver error into one that is both chat.ErrUnavailable (the
// service answers 503 and JetStream redelivers) and the driver's error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cassandra %s: %w: %w", op, chat.ErrUnavailable, err)
}

// holdsSlot marks the context of a call made by each, which holds one of
// the backend's in-flight slots.
type holdsSlot struct{}

// each runs fn(ctx, i) for every i in [0, n), with at most MaxInFlight calls
// in flight across the whole backend, and returns the first error (the
// others are cancelled through ctx). Called from within such a call, it runs
// the calls one after another in the slot already held: waiting for more
// slots there could deadlock once every slot is held by a waiting caller.
func (b *Backend) each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	return eachOn(ctx, b.sem, n, fn)
}

// eachWrite is each on the budget of message writes (MaxWritesInFlight).
func (b *Backend) eachWrite(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	return eachOn(ctx, b.wsem, n, fn)
}

func eachOn(ctx context.Context, sem chan struct{}, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	if ctx.Value(holdsSlot{}) != nil {
		for i := range n {
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inSlot := context.WithValue(ctx, holdsSlot{}, true)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() {
			first = err
			cancel()
		})
	}
loop:
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
			break loop
		}
		// A failed call cancels ctx before it frees its slot, so no call
		// starts after a failure once a slot had to be waited for.
		if err := ctx.Err(); err != nil {
			<-sem
			fail(err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(inSlot, i); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	return first
}

// Stored IDs are bigint: the top bit of a generated ID is always 0.
func validID(id chat.ID) bool { return id != 0 && id <= math.MaxInt64 }

// unsetIfEmpty leaves an empty string unwritten instead of writing a null
// (a tombstone).
func unsetIfEmpty(s string) any {
	if s == "" {
		return gocql.UnsetValue
	}
	return s
}

// unsetIfZero leaves a zero ID unwritten.
func unsetIfZero(id chat.ID) any {
	if id == 0 {
		return gocql.UnsetValue
	}
	return int64(id)
}

// bucketCache remembers (conversation, bucket) pairs already recorded in
// conversation_buckets by this process, to skip rewriting them for every
// batch. Bounded: it starts over when full, which only costs rewrites.
type bucketCache struct {
	mu sync.Mutex
	m  map[bucketKey]struct{}
}

type bucketKey struct {
	conv   string
	bucket int
}

const bucketCacheMax = 100_000

func (c *bucketCache) has(k bucketKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

func (c *bucketCache) add(k bucketKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= bucketCacheMax {
		c.m = make(map[bucketKey]struct{})
	}
	c.m[k] = struct{}{}
}

func toTime(v any) time.Time {
	t, _ := v.(time.Time)
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func toInt64(v any) int64 {
	n, _ := v.(int64)
	return n
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}
