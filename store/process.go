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
	// LeaseCheck is how often a lost lease is looked for and replaced
	// (Lease.Check when set, else DefaultLeaseCheck).
	LeaseCheck time.Duration
	// Registry receives the Service's metrics (a private registry when
	// nil).
	Registry prometheus.Registerer
	// Log receives the process's logs (none when nil).
	Log *zap.Logger
}

// Process is a running store: a Service holding a node-ID lease. It makes
// no new IDs while the lease is not certainly held (renewals failing, or
// taken over) and makes them again once it holds one, so that two
// processes never make the same user or group ID.
type Process struct {
	svc   *Service
	ids   *router.NodeIDs
	log   *zap.Logger
	done  chan struct{} // closed when Run returned
	wg    sync.WaitGroup
	once  sync.Once
	err   error // Shutdown's
	runMu sync.Mutex
	run   error // Run's
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
	if o.LeaseCheck > 0 {
		o.Lease.Check = o.LeaseCheck
	}
	if o.Lease.Check <= 0 {
		o.Lease.Check = DefaultLeaseCheck
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
	ids, err := router.LeaseNodeIDs(ctx, js, o.Lease)
	if err != nil {
		return nil, err
	}
	svc, err := NewService(o.Config, o.Backend, o.NATS, js, max(ids.Node(), 0), o.Registry, o.Log)
	if err != nil {
		ids.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	svc.setIDs(ids)
	p := &Process{svc: svc, ids: ids, log: o.Log, done: make(chan struct{})}
	p.log.Info("store started", zap.Int("node", ids.Node()))
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
	return p, nil
}

// Service returns the running Service.
func (p *Process) Service() *Service { return p.svc }

// Ready reports whether the process can serve (Service.Ready, which is false
// while no node ID is certainly held).
func (p *Process) Ready() bool { return p.svc.Ready() }

// Node returns the node ID held, -1 while none is.
func (p *Process) Node() int { return p.ids.Node() }

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
		p.err = p.svc.Shutdown(ctx)
		p.wg.Wait()
		p.ids.Close(context.WithoutCancel(ctx))
	})
	return p.err
}
