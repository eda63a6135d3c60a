// Package workers is a bounded pool of goroutines for the gateway's read
// path: the poller hands it "this connection is readable" and a worker does
// the reading. Workers start on demand up to a limit and exit when idle, so
// an idle gateway holds few goroutines and a busy one never holds more than
// the limit. When every worker is busy and the queue is full, Schedule fails
// at once (the caller sheds load) and ScheduleCtx waits (the accept loop
// uses it to stop accepting while the gateway is saturated).
package workers

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

var (
	// ErrFull is returned by Schedule when every worker is busy and the
	// queue is full.
	ErrFull = errors.New("workers: pool is full")
	// ErrClosed is returned by Schedule and ScheduleCtx after Close.
	ErrClosed = errors.New("workers: pool is closed")
)

// Defaults for Config's zero fields.
const (
	// DefaultSizePerCPU times GOMAXPROCS is the default Size. The bound is
	// about memory, not CPU: a gateway worker can sit in conn.Read on a
	// half-sent frame until its read deadline, or wait on NATS, and a few
	// such tasks per core must not stall every other connection's reads.
	// Workers start only when needed and exit when idle, so a large bound
	// costs nothing on an idle gateway.
	DefaultSizePerCPU = 64
	// DefaultQueue is the default Queue.
	DefaultQueue = 1024
	// DefaultIdleTimeout is the default IdleTimeout.
	DefaultIdleTimeout = 10 * time.Second
	// DefaultMinWorkers is the default MinWorkers.
	DefaultMinWorkers = 1
)

// Config configures a Pool. The zero value gives the defaults.
type Config struct {
	// Size is the most workers that run at once.
	// Default: DefaultSizePerCPU * runtime.GOMAXPROCS(0).
	Size int
	// Queue is how many tasks may wait for a worker when all Size are
	// busy. Default (or <= 0): DefaultQueue.
	Queue int
	// IdleTimeout is how long a worker waits for work before it exits,
	// unless it is one of the last MinWorkers. Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MinWorkers is how many workers stay when idle, once started (workers
	// start only when there is work). Default: DefaultMinWorkers; negative
	// means none stay.
	MinWorkers int
	// OnPanic, if set, recovers a task's panic and receives its value; the
	// worker carries on. Default: nil, a panicking task crashes the
	// process as a panic in any goroutine would.
	OnPanic func(v any)
}

func (c Config) withDefaults() Config {
	if c.Size <= 0 {
		c.Size = DefaultSizePerCPU * runtime.GOMAXPROCS(0)
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case c.MinWorkers == 0:
		c.MinWorkers = DefaultMinWorkers
	case c.MinWorkers < 0:
		c.MinWorkers = 0
	}
	c.MinWorkers = min(c.MinWorkers, c.Size)
	return c
}

// Pool runs tasks on a bounded, lazily started set of goroutines.
//
// A task goes to an idle worker by a direct hand-off (each idle worker has
// a channel of its own), else to a new worker while fewer than Size run,
// and only when all Size are busy into the shared queue. So a burst grows
// the pool instead of piling up behind the one worker that happened to be
// idle, and a task never waits in the queue while a worker could start.
type Pool struct {
	cfg   Config
	queue chan func() // overflow: tasks waiting while all Size workers are busy
	quit  chan struct{}
	// room holds a token when a queue slot may have opened, for
	// ScheduleCtx's waiters.
	room chan struct{}
	wg   sync.WaitGroup

	// mu guards the fields below. A task enters the queue only under mu
	// with no worker idle, and a worker checks the queue under mu before
	// it goes idle or exits, so a queued task always has a worker to run it.
	mu      sync.Mutex
	running int       // workers alive
	idle    []*worker // waiting for a hand-off, most recently idle last
	closed  bool
}

// worker is one goroutine's hand-off point: a task is sent on it only by
// the Schedule call that took the worker off the idle list, so one slot is
// enough and the send never blocks.
type worker struct {
	task chan func()
}

// New returns a pool with no workers yet; they start with the first tasks.
func New(cfg Config) *Pool {
	cfg = cfg.withDefaults()
	return &Pool{
		cfg:   cfg,
		queue: make(chan func(), cfg.Queue),
		quit:  make(chan struct{}),
		room:  make(chan struct{}, 1),
	}
}

// Schedule runs task on a worker: an idle one, a new one if fewer than Size
// run, or the next free one if there is room in the queue. Otherwise it
// returns ErrFull at once. After Close it returns ErrClosed.
func (p *Pool) Schedule(task func()) error {
	if task == nil {
		return errors.New("workers: nil task")
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.task <- task
		return nil
	}
	if p.running < p.cfg.Size {
		p.running++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.work(&worker{task: make(chan func(), 1)}, task)
		return nil
	}
	select {
	case p.queue <- task:
		p.mu.Unlock()
		return nil
	default:
	}
	p.mu.Unlock()
	return ErrFull
}

// ScheduleCtx is Schedule that waits for room instead of returning ErrFull,
// until ctx is done (it then returns an error that wraps ctx's) or the pool
// is closed (ErrClosed).
func (p *Pool) ScheduleCtx(ctx context.Context, task func()) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("workers: schedule: %w", err)
		}
		err := p.Schedule(task)
		if !errors.Is(err, ErrFull) {
			if err == nil && !p.Saturated() {
				p.signalRoom() // pass the wake-up on to another waiter
			}
			return err
		}
		select {
		case <-p.room:
		case <-p.quit:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("workers: schedule: %w", ctx.Err())
		}
	}
}

// Saturated reports whether every worker is busy and the queue is full, so
// that Schedule would return ErrFull.
func (p *Pool) Saturated() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running >= p.cfg.Size && len(p.idle) == 0 && len(p.queue) >= cap(p.queue)
}

// Stats is a snapshot of the pool, for metrics.
type Stats struct {
	Workers int // goroutines alive
	Idle    int // of which waiting for work
	Queued  int // tasks waiting for a worker
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Workers: p.running, Idle: len(p.idle), Queued: len(p.queue)}
}

// Close stops taking work (Schedule then returns ErrClosed), lets the
// workers finish the running and queued tasks, and waits for them all.
// Safe to call twice; it must not be called from a task.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Pool) signalRoom() {
	select {
	case p.room <- struct{}{}:
	default:
	}
}

func (p *Pool) work(w *worker, task func()) {
	defer p.wg.Done()
	timer := time.NewTimer(p.cfg.IdleTimeout)
	timer.Stop()
	for {
		p.run(task)

		// Busy path: take queued work without the lock.
		select {
		case task = <-p.queue:
			p.signalRoom()
			continue
		default:
		}

		p.mu.Lock()
		select {
		case task = <-p.queue: // queued while we looked
			p.mu.Unlock()
			p.signalRoom()
			continue
		default:
		}
		if p.closed {
			p.running--
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		p.signalRoom()

		var ok bool
		if task, ok = p.waitIdle(w, timer); !ok {
			return
		}
	}
}

// waitIdle waits for a hand-off. It returns false when the worker should
// exit: idle too long, or the pool closed with nothing left to run.
func (p *Pool) waitIdle(w *worker, timer *time.Timer) (func(), bool) {
	timer.Reset(p.cfg.IdleTimeout)
	for {
		select {
		case task := <-w.task:
			timer.Stop()
			return task, true
		case <-timer.C:
			p.mu.Lock()
			if p.running > p.cfg.MinWorkers && p.unidle(w) {
				p.running--
				p.mu.Unlock()
				return nil, false
			}
			p.mu.Unlock()
			// One of the last MinWorkers, or a task is being handed over.
			timer.Reset(p.cfg.IdleTimeout)
		case <-p.quit:
			timer.Stop()
			p.mu.Lock()
			if !p.unidle(w) {
				// Taken off the idle list: its task is on the way.
				p.mu.Unlock()
				return <-w.task, true
			}
			select {
			case task := <-p.queue: // Close runs what was queued
				p.mu.Unlock()
				return task, true
			default:
			}
			p.running--
			p.mu.Unlock()
			return nil, false
		}
	}
}

// unidle takes w off the idle list under p.mu; false if it was not on it.
func (p *Pool) unidle(w *worker) bool {
	for i, x := range p.idle {
		if x == w {
			last := len(p.idle) - 1
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[last] = nil
			p.idle = p.idle[:last]
			return true
		}
	}
	return false
}

func (p *Pool) run(task func()) {
	if p.cfg.OnPanic != nil {
		defer func() {
			if v := recover(); v != nil {
				p.cfg.OnPanic(v)
			}
		}()
	}
	task()
}
