package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// DefaultLeaseCheck is Options.LeaseCheck's default.
const DefaultLeaseCheck = time.Second

// Options are the parts a store process is assembled from.
type Options struct {
	// NATS is the connection the Service consumes and answers on
	// (required). The Process never closes it.
	NATS *nats.Conn
	// JetStream is the JetStream context of NATS (default: jetstream.New).
	JetStream jetstream.JetStream
	// Backend is the storage served (required). The Process never closes
	// it: its owner does, after Shutdown.
	Backend Backend
	// Config configures the Service; zero values take its defaults.
	Config ServiceConfig
	// Stream, when set, is the message stream to create or update before
	// the Service starts (the router package owns its configuration).
	Stream *router.StreamConfig
	// Lease configures the node-ID lease that seeds new user and group
	// IDs; its Log defaults to Log.
	Lease router.LeaseConfig
	// LeaseCheck is how often the lease is checked for a takeover
	// (DefaultLeaseCheck).
	LeaseCheck time.Duration
	// Registry receives the Service's metrics (a private registry when
	// nil).
	Registry prometheus.Registerer
	// Log receives the process's logs (none when nil).
	Log *zap.Logger
}

// Process is a running store: a Service holding a node-ID lease. It stops
// issuing new IDs the moment it notices that the lease was taken over, and
// issues them again once it holds a new one, so that two processes never
// make the same user or group ID.
type Process struct {
	svc   *Service
	js    jetstream.JetStream
	opts  Options
	log   *zap.Logger
	ctx   context.Context // cancelled by Shutdown: ends the lease watch
	halt  context.CancelFunc
	done  chan struct{} // closed when Run returned
	wg    sync.WaitGroup
	once  sync.Once
	err   error // Shutdown's
	runMu sync.Mutex
	run   error // Run's

	leaseMu sync.Mutex
	lease   *router.Lease // nil while none is held
}

// Start assembles and starts a store process: it ensures the stream (when
// asked), leases a node ID, creates the Service and runs it. Shutdown stops
// it all.
func Start(ctx context.Context, o Options) (_ *Process, err error) {
	if o.NATS == nil || o.Backend == nil {
		return nil, fmt.Errorf("%w: store.Start needs a NATS connection and a backend", chat.ErrInvalid)
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Lease.Log == nil {
		o.Lease.Log = o.Log
	}
	if o.LeaseCheck <= 0 {
		o.LeaseCheck = DefaultLeaseCheck
	}
	js := o.JetStream
	if js == nil {
		if js, err = jetstream.New(o.NATS); err != nil {
			return nil, fmt.Errorf("store: jetstream: %w", err)
		}
	}
	if o.Stream != nil {
		if _, err := router.EnsureStream(ctx, js, *o.Stream); err != nil {
			return nil, err
		}
	}
	lease, err := router.AcquireNodeID(ctx, js, o.Lease)
	if err != nil {
		return nil, err
	}
	svc, err := NewService(o.Config, o.Backend, o.NATS, js, lease.Node, o.Registry, o.Log)
	if err != nil {
		lease.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	p := &Process{svc: svc, js: js, opts: o, log: o.Log, lease: lease, done: make(chan struct{})}
	p.ctx, p.halt = context.WithCancel(context.Background())
	p.log.Info("store started", zap.Int("node", lease.Node))
	p.wg.Go(func() {
		defer close(p.done)
		err := svc.Run(context.Background())
		if errors.Is(err, ErrClosed) {
			err = nil
		}
		p.runMu.Lock()
		p.run = err
		p.runMu.Unlock()
	})
	p.wg.Go(p.watchLease)
	return p, nil
}

// Service returns the running Service.
func (p *Process) Service() *Service { return p.svc }

// Ready reports whether the process can serve (Service.Ready, which is false
// while no node ID is held).
func (p *Process) Ready() bool { return p.svc.Ready() }

// Node returns the node ID held, -1 while none is.
func (p *Process) Node() int {
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	if p.lease == nil {
		return -1
	}
	return p.lease.Node
}

// Done is closed when the Service stopped: after Shutdown, or when its NATS
// connection closed for good (then Err says why).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the Service's error once Done is closed: nil after Shutdown.
func (p *Process) Err() error {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	return p.run
}

// Shutdown stops the Service (see Service.Shutdown), then releases the
// lease. Safe to call twice; every call returns the first one's result.
func (p *Process) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		p.halt()
		p.err = p.svc.Shutdown(ctx)
		p.wg.Wait()
		p.leaseMu.Lock()
		l := p.lease
		p.lease = nil
		p.leaseMu.Unlock()
		if l != nil {
			l.Release(context.WithoutCancel(ctx))
		}
	})
	return p.err
}

// watchLease notices a lease taken over by another process (router.Lease
// reports it on its next renewal), stops issuing IDs at once and leases a
// new node ID.
func (p *Process) watchLease() {
	t := time.NewTicker(p.opts.LeaseCheck)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.leaseMu.Lock()
		l := p.lease
		p.leaseMu.Unlock()
		lost := l.Err()
		if lost == nil {
			continue
		}
		// Another process makes IDs with this node number now: ours would
		// collide with its, and a colliding user overwrites another's row.
		p.svc.setGenerator(nil)
		p.log.Error("node ID lease lost: no new IDs until a new one is held", zap.Error(lost))
		p.leaseMu.Lock()
		p.lease = nil
		p.leaseMu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), p.opts.LeaseCheck)
		l.Release(rctx) // stops renewing; the key, now someone else's, stays
		cancel()
		if !p.reacquire() {
			return
		}
	}
}

// reacquire leases a new node ID, trying again every SetupRetry until it
// holds one or the process stops.
func (p *Process) reacquire() bool {
	ctx := p.ctx
	for {
		l, err := router.AcquireNodeID(ctx, p.js, p.opts.Lease)
		if err == nil {
			gen, err := chat.NewGenerator(l.Node)
			if err != nil { // cannot happen: leases are in range
				l.Release(ctx)
				return false
			}
			p.leaseMu.Lock()
			p.lease = l
			p.leaseMu.Unlock()
			p.svc.setGenerator(gen)
			p.log.Info("node ID leased again", zap.Int("node", l.Node))
			return true
		}
		p.log.Warn("node ID lease", zap.Error(err))
		if !sleepCtx(ctx, p.svc.cfg.SetupRetry) {
			return false
		}
	}
}
