package workers_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatcluster/chat/gateway/workers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	wait  = 5 * time.Second       // bounds every positive wait
	quiet = 50 * time.Millisecond // window for "this must not happen"
)

// eventually polls cond until it holds or wait runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// blocker is a task that reports it started and runs until released.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (b *blocker) task() {
	b.started <- struct{}{}
	<-b.release
}

// fill occupies every worker of p with b and every queue slot with a task
// that counts into ran.
func fill(t *testing.T, p *workers.Pool, size, queue int, b *blocker, ran *atomic.Int32) {
	t.Helper()
	for range size {
		if err := p.Schedule(b.task); err != nil {
			t.Fatal(err)
		}
	}
	for range size {
		recv(t, b.started, "worker start")
	}
	for range queue {
		if err := p.Schedule(func() { ran.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunsEveryTask(t *testing.T) {
	p := workers.New(workers.Config{Size: 4, Queue: 16})
	defer p.Close()
	const n = 10000
	var wg sync.WaitGroup
	var ran atomic.Int32
	wg.Add(n)
	for range n {
		if err := p.ScheduleCtx(context.Background(), func() { ran.Add(1); wg.Done() }); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got := ran.Load(); got != n {
		t.Fatalf("ran %d of %d", got, n)
	}
}

func TestStartsLazilyAndStaysBounded(t *testing.T) {
	const size = 3
	p := workers.New(workers.Config{Size: size, Queue: 100})
	defer p.Close()
	if s := p.Stats(); s.Workers != 0 {
		t.Fatalf("new pool has %d workers", s.Workers)
	}
	var cur, peak atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(50)
	for range 50 {
		err := p.Schedule(func() {
			defer wg.Done()
			n := cur.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			<-release
			cur.Add(-1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all workers busy", func() bool { return cur.Load() == size })
	if s := p.Stats(); s.Workers != size || s.Queued != 50-size {
		t.Fatalf("stats %+v, want %d workers and %d queued", s, size, 50-size)
	}
	close(release)
	wg.Wait()
	if got := peak.Load(); got != size {
		t.Fatalf("peak concurrency %d, want %d", got, size)
	}
}

func TestFullAndSaturated(t *testing.T) {
	const size, queue = 2, 3
	p := workers.New(workers.Config{Size: size, Queue: queue})
	defer p.Close()
	b := newBlocker()
	var ran atomic.Int32
	if p.Saturated() {
		t.Fatal("empty pool saturated")
	}
	fill(t, p, size, queue, b, &ran)
	if !p.Saturated() {
		t.Fatal("full pool not saturated")
	}
	if err := p.Schedule(func() {}); !errors.Is(err, workers.ErrFull) {
		t.Fatalf("Schedule on a full pool: %v, want ErrFull", err)
	}
	close(b.release)
	eventually(t, "queued tasks", func() bool { return ran.Load() == queue })
	if p.Saturated() {
		t.Fatal("drained pool saturated")
	}
}

func TestScheduleCtxWaitsForRoom(t *testing.T) {
	const size, queue = 1, 1
	p := workers.New(workers.Config{Size: size, Queue: queue})
	defer p.Close()
	b := newBlocker()
	var ran atomic.Int32
	fill(t, p, size, queue, b, &ran)

	done := make(chan error, 1)
	go func() { done <- p.ScheduleCtx(context.Background(), func() { ran.Add(1) }) }()
	select {
	case err := <-done:
		t.Fatalf("ScheduleCtx returned %v while the pool was full", err)
	case <-time.After(quiet):
	}
	close(b.release)
	if err := recv(t, done, "ScheduleCtx"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both tasks", func() bool { return ran.Load() == 2 })
}

func TestScheduleCtxManyWaiters(t *testing.T) {
	const size, queue, waiters = 2, 2, 50
	p := workers.New(workers.Config{Size: size, Queue: queue})
	defer p.Close()
	b := newBlocker()
	var ran atomic.Int32
	fill(t, p, size, queue, b, &ran)

	errs := make(chan error, waiters)
	for range waiters {
		go func() { errs <- p.ScheduleCtx(context.Background(), func() { ran.Add(1) }) }()
	}
	close(b.release)
	for range waiters {
		if err := recv(t, errs, "a waiter"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every task", func() bool { return ran.Load() == queue+waiters })
}

func TestScheduleCtxCancelled(t *testing.T) {
	p := workers.New(workers.Config{Size: 1, Queue: 1})
	defer p.Close()
	b := newBlocker()
	defer close(b.release)
	var ran atomic.Int32
	fill(t, p, 1, 1, b, &ran)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ScheduleCtx(ctx, func() { t.Error("cancelled task ran") }) }()
	cancel()
	if err := recv(t, done, "ScheduleCtx"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// A done ctx fails even when there is room.
	if err := p.ScheduleCtx(ctx, func() {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestScheduleCtxUnblockedByClose(t *testing.T) {
	p := workers.New(workers.Config{Size: 1, Queue: 1})
	b := newBlocker()
	var ran atomic.Int32
	fill(t, p, 1, 1, b, &ran)

	done := make(chan error, 1)
	go func() { done <- p.ScheduleCtx(context.Background(), func() {}) }()
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	if err := recv(t, done, "ScheduleCtx"); !errors.Is(err, workers.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	close(b.release)
	recv(t, closed, "Close")
}

func TestCloseRunsQueuedAndWaits(t *testing.T) {
	const queue = 10
	p := workers.New(workers.Config{Size: 1, Queue: queue})
	b := newBlocker()
	var ran atomic.Int32
	fill(t, p, 1, queue, b, &ran)

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	eventually(t, "Close to start refusing work", func() bool {
		return errors.Is(p.Schedule(func() {}), workers.ErrClosed)
	})
	select {
	case <-closed:
		t.Fatal("Close returned while a task was running")
	case <-time.After(quiet):
	}
	close(b.release)
	recv(t, closed, "Close")
	if got := ran.Load(); got != queue {
		t.Fatalf("Close ran %d of %d queued tasks", got, queue)
	}
	if s := p.Stats(); s.Workers != 0 {
		t.Fatalf("%d workers left after Close", s.Workers)
	}
	p.Close() // twice is fine
	if err := p.ScheduleCtx(context.Background(), func() {}); !errors.Is(err, workers.ErrClosed) {
		t.Fatalf("ScheduleCtx after Close: %v", err)
	}
}

func TestCloseEmptyPool(t *testing.T) {
	p := workers.New(workers.Config{})
	p.Close()
	p.Close()
}

func TestIdleWorkersExit(t *testing.T) {
	for _, tc := range []struct {
		name string
		min  int
		want int
	}{
		{"default keeps one", 0, 1},
		{"keep three", 3, 3},
		{"keep none", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 8
			p := workers.New(workers.Config{Size: size, IdleTimeout: 5 * time.Millisecond, MinWorkers: tc.min})
			defer p.Close()
			b := newBlocker()
			var ran atomic.Int32
			fill(t, p, size, 0, b, &ran)
			if s := p.Stats(); s.Workers != size {
				t.Fatalf("%d workers, want %d", s.Workers, size)
			}
			close(b.release)
			eventually(t, "idle workers to exit", func() bool { return p.Stats().Workers == tc.want })
			// The pool still works after shrinking.
			done := make(chan struct{})
			if err := p.Schedule(func() { close(done) }); err != nil {
				t.Fatal(err)
			}
			recv(t, done, "task after shrink")
		})
	}
}

// Workers exiting for idleness as fast as possible must never strand a
// queued task.
func TestNoTaskStrandedByIdleExit(t *testing.T) {
	p := workers.New(workers.Config{Size: 4, Queue: 4, IdleTimeout: time.Microsecond, MinWorkers: -1})
	defer p.Close()
	const producers, each = 8, 2000
	var ran atomic.Int32
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range each {
				if err := p.ScheduleCtx(context.Background(), func() { ran.Add(1) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, "every task", func() bool { return ran.Load() == producers*each })
}

// The exit race at its sharpest: one task at a time, scheduled just as the
// last worker's idle timer may fire. A worker that exits with a task queued
// for it strands that task forever.
func TestNoTaskStrandedAtIdleTimeout(t *testing.T) {
	p := workers.New(workers.Config{Size: 2, Queue: 4, IdleTimeout: 20 * time.Microsecond, MinWorkers: -1})
	defer p.Close()
	for i := range 5000 {
		done := make(chan struct{})
		if err := p.Schedule(func() { close(done) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("round %d: task stranded", i)
		}
		// Vary the gap so that some Schedules meet a timer firing.
		for start := time.Now(); time.Since(start) < time.Duration(i%40)*time.Microsecond; {
		}
	}
}

func TestOnPanic(t *testing.T) {
	got := make(chan any, 1)
	p := workers.New(workers.Config{Size: 1, OnPanic: func(v any) { got <- v }})
	defer p.Close()
	if err := p.Schedule(func() { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	if v := recv(t, got, "OnPanic"); v != "boom" {
		t.Fatalf("OnPanic got %v", v)
	}
	done := make(chan struct{})
	if err := p.Schedule(func() { close(done) }); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "task after panic")
}

func TestNilTask(t *testing.T) {
	p := workers.New(workers.Config{})
	defer p.Close()
	if err := p.Schedule(nil); err == nil {
		t.Fatal("Schedule(nil) succeeded")
	}
}

// A burst grows the pool: with one worker idle, twenty tasks scheduled at
// once must each get a worker of their own (the pool has room for them),
// not wait in the queue behind the one idle worker.
func TestBurstGrowsThePool(t *testing.T) {
	p := workers.New(workers.Config{Size: 64, Queue: 64, IdleTimeout: time.Minute})
	defer p.Close()
	warm := make(chan struct{})
	if err := p.Schedule(func() { close(warm) }); err != nil {
		t.Fatal(err)
	}
	recv(t, warm, "warm-up task")
	eventually(t, "the warm-up worker to go idle", func() bool { return p.Stats().Idle == 1 })

	b := newBlocker()
	defer close(b.release)
	const burst = 20
	for range burst {
		if err := p.Schedule(b.task); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		select {
		case <-b.started:
		case <-time.After(wait):
			s := p.Stats()
			t.Fatalf("%d of %d burst tasks started (workers %d, idle %d, queued %d): the rest wait behind busy workers",
				i, burst, s.Workers, s.Idle, s.Queued)
		}
	}
}
