package cassandra

import (
	"errors"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/chatcluster/chat"
)

func TestSpecPolicyAttempts(t *testing.T) {
	up := newUpCounter(gocql.RoundRobinHostPolicy())
	p := &specPolicy{attempts: 2, delay: time.Millisecond, up: up}
	for _, c := range []struct {
		up   int64
		want int
	}{{0, 0}, {1, 0}, {2, 1}, {3, 2}, {9, 2}} {
		up.n.Store(c.up)
		if got := p.Attempts(); got != c.want {
			t.Errorf("Attempts with %d hosts up = %d, want %d", c.up, got, c.want)
		}
	}
	for s, want := range map[string]bool{"SELECT a FROM t": true, "  select a": true, "INSERT INTO t": false, "UPDATE t": false, "SEL": false} {
		if got := isRead(s); got != want {
			t.Errorf("isRead(%q) = %v, want %v", s, got, want)
		}
	}
	for _, c := range []struct {
		in       Config
		delay    time.Duration
		attempts int
	}{
		{Config{Hosts: []string{"x"}}, DefaultSpeculativeDelay, DefaultSpeculativeAttempts},
		{Config{Hosts: []string{"x"}, SpeculativeDelay: -1}, 0, 0},
		{Config{Hosts: []string{"x"}, SpeculativeAttempts: -1}, 0, 0},
		{Config{Hosts: []string{"x"}, SpeculativeDelay: time.Second, SpeculativeAttempts: 3}, time.Second, 3},
	} {
		got, err := c.in.withDefaults()
		if err != nil || got.SpeculativeDelay != c.delay || got.SpeculativeAttempts != c.attempts {
			t.Errorf("withDefaults(%+v): delay %v attempts %d, %v; want %v, %d", c.in, got.SpeculativeDelay, got.SpeculativeAttempts, err, c.delay, c.attempts)
		}
	}
}

// TestSpeculativeReadsOneNode: a speculation that finds no other host
// would answer ErrNoConnections at once and win over the read still
// running (gocql#1707). With one node up the policy must not speculate,
// however short the delay.
func TestSpeculativeReadsOneNode(t *testing.T) {
	openEmpty(t)
	b, err := Open(t.Context(), Config{Hosts: env.hosts, Keyspace: env.keyspace, Consistency: gocql.One,
		SpeculativeDelay: time.Nanosecond, SpeculativeAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	id := chat.FirstID(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	if err := b.SaveMessages(ctx, []chat.Message{{ID: id, Conversation: "s", Sender: 1, Body: "x", SentAt: id.Time()}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		got, _, err := b.Messages(ctx, "s", chat.Page{Limit: 10})
		if err != nil || len(got) != 1 {
			t.Fatalf("read %d: %d messages, %v", i, len(got), err)
		}
	}

	// Reads speculate and writes do not: told there are two hosts up, a
	// read speculates at once onto a host that is not there and fails as
	// above, while a write still succeeds.
	b.spec.up.n.Store(2)
	failed := false
	for range 20 {
		if _, _, err := b.Messages(ctx, "s", chat.Page{Limit: 10}); errors.Is(err, gocql.ErrNoConnections) {
			failed = true
			break
		}
	}
	if !failed {
		t.Error("reads never speculated")
	}
	for i := range 5 {
		if err := b.q(ctx, `INSERT INTO settings (name, value) VALUES ('spec_test', ?)`, "x").Exec(); err != nil {
			t.Fatalf("write %d speculated: %v", i, err)
		}
	}
}
