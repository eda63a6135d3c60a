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
type Pool struct {
	cfg   Config
	tasks chan func()
	quit  chan struct{} // closed by Close
	// room holds a token when a queue slot may have opened, for
	// ScheduleCtx's waiters.
	room chan struct{}
	wg   sync.WaitGroup

	// mu guards the counts and closed. A task is queued only under mu and
	// a worker exits for idleness only under mu with the queue empty, so a
	// queued task always has a worker left to run it.
	mu      sync.Mutex
	running int // workers alive
	idle    int // workers waiting for a task
	closed  bool
}

// New returns a pool with no workers yet; they start with the first tasks.
func New(cfg Config) *Pool {
	cfg = cfg.withDefaults()
	return &Pool{
		cfg:   cfg,
		tasks: make(chan func(), cfg.Queue),
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
	// Queue it when a worker is free to take it or no new one may start.
	if p.idle > 0 || p.running >= p.cfg.Size {
		select {
		case p.tasks <- task:
			p.mu.Unlock()
			return nil
		default:
		}
	}
	if p.running < p.cfg.Size {
		p.running++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.worker(task)
		return nil
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
	return p.running >= p.cfg.Size && p.idle == 0 && len(p.tasks) >= cap(p.tasks)
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
	return Stats{Workers: p.running, Idle: p.idle, Queued: len(p.tasks)}
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

func (p *Pool) worker(task func()) {
	defer p.wg.Done()
	var timer *time.Timer
	for {
		p.run(task)

		// Busy path: take queued work without bookkeeping.
		select {
		case task = <-p.tasks:
			p.signalRoom()
			continue
		default:
		}

		var ok bool
		if task, ok = p.waitTask(&timer); !ok {
			return
		}
	}
}

// waitTask waits as an idle worker. It returns false when the worker
// should exit: idle too long, or the pool closed and the queue is empty.
func (p *Pool) waitTask(timer **time.Timer) (func(), bool) {
	p.mu.Lock()
	p.idle++
	p.mu.Unlock()
	p.signalRoom()

	if *timer == nil {
		*timer = time.NewTimer(p.cfg.IdleTimeout)
	} else {
		(*timer).Reset(p.cfg.IdleTimeout)
	}
	for {
		select {
		case task := <-p.tasks:
			(*timer).Stop()
			p.mu.Lock()
			p.idle--
			p.mu.Unlock()
			p.signalRoom()
			return task, true
		case <-(*timer).C:
			p.mu.Lock()
			if p.running > p.cfg.MinWorkers && len(p.tasks) == 0 {
				p.running--
				p.idle--
				p.mu.Unlock()
				return nil, false
			}
			p.mu.Unlock()
			(*timer).Reset(p.cfg.IdleTimeout)
		case <-p.quit:
			(*timer).Stop()
			p.mu.Lock()
			p.idle--
			select {
			case task := <-p.tasks: // Close runs what was queued
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
