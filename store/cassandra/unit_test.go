package cassandra

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// These tests need no Cassandra.

func TestEachBoundsInFlight(t *testing.T) {
	b := &Backend{sem: make(chan struct{}, 3)}
	var cur, peak, calls atomic.Int32
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.each(t.Context(), 20, func(ctx context.Context, i int) error {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			calls.Add(1)
			<-release
			cur.Add(-1)
			return nil
		})
	}()
	// Wait until the pool is full, then let everything finish.
	deadline := time.Now().Add(5 * time.Second)
	for cur.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls started", cur.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 3 || calls.Load() != 20 {
		t.Errorf("peak in flight %d (want 3), calls %d (want 20)", peak.Load(), calls.Load())
	}
}

func TestEachStopsAtFirstError(t *testing.T) {
	b := &Backend{sem: make(chan struct{}, 1)}
	boom := errors.New("boom")
	var calls atomic.Int32
	err := b.each(t.Context(), 100, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("each: err = %v, want boom", err)
	}
	// One slot: calls run one after another, and none starts after the
	// third failed.
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3: the rest cancelled after the third failed", n)
	}
}

func TestEachHonoursContext(t *testing.T) {
	b := &Backend{sem: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := b.each(ctx, 5, func(ctx context.Context, i int) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("each on a cancelled context: err = %v", err)
	}
}

type fakeQuery struct {
	attempts   int
	idempotent bool
}

func (q *fakeQuery) Attempts() int                     { return q.attempts }
func (q *fakeQuery) SetConsistency(gocql.Consistency)  {}
func (q *fakeQuery) GetConsistency() gocql.Consistency { return gocql.One }
func (q *fakeQuery) Context() context.Context          { return context.Background() }
func (q *fakeQuery) IsIdempotent() bool                { return q.idempotent }

func TestRetryPolicy(t *testing.T) {
	r := newRetryPolicy(2)
	r.backoff.Min, r.backoff.Max = time.Microsecond, time.Microsecond
	if r.Attempt(&fakeQuery{attempts: 1, idempotent: false}) {
		t.Error("a non-idempotent query was retried")
	}
	if !r.Attempt(&fakeQuery{attempts: 1, idempotent: true}) {
		t.Error("an idempotent query was not retried")
	}
	if r.Attempt(&fakeQuery{attempts: 3, idempotent: true}) {
		t.Error("retried beyond NumRetries")
	}
	if got := r.GetRetryType(&gocql.RequestErrUnavailable{}); got != gocql.RetryNextHost {
		t.Errorf("unavailable: %v, want RetryNextHost", got)
	}
	if got := r.GetRetryType(&gocql.RequestErrWriteTimeout{}); got != gocql.Retry {
		t.Errorf("write timeout: %v, want Retry", got)
	}
	if got := r.GetRetryType(gocql.ErrTimeoutNoResponse); got != gocql.Retry {
		t.Errorf("client timeout: %v, want Retry", got)
	}
}

func TestFirstWinsTimestampDecreases(t *testing.T) {
	a := firstWinsTimestamp()
	deadline := time.Now().Add(time.Second)
	for firstWinsTimestamp() == a {
		if time.Now().After(deadline) {
			t.Fatal("timestamp did not change in a second")
		}
	}
	if b := firstWinsTimestamp(); b >= a || b <= 0 {
		t.Errorf("later timestamp %d, earlier %d: want smaller and positive", b, a)
	}
}

// TestEachNested: each called from within each's calls, with every slot
// taken by an outer call, must not deadlock.
func TestEachNested(t *testing.T) {
	b := &Backend{sem: make(chan struct{}, 2)}
	var inner atomic.Int32
	err := b.each(t.Context(), 10, func(ctx context.Context, i int) error {
		return b.each(ctx, 5, func(ctx context.Context, j int) error {
			inner.Add(1)
			return nil
		})
	})
	if err != nil || inner.Load() != 50 {
		t.Errorf("nested each: err %v, %d inner calls (want 50)", err, inner.Load())
	}
}
