package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Options are what Start needs to assemble a gateway on a NATS connection.
type Options struct {
	Config Config
	// NATS is the connection, already connected; Start does not close it.
	NATS *nats.Conn
	// StreamReplicas is the message stream's replica count when Start
	// creates it: 1 for one server (dev), 3 in a cluster. Default 1.
	StreamReplicas int
	// Lease configures the node-ID lease message IDs are made under; its
	// Replicas default to StreamReplicas and its Log to Log.
	Lease router.LeaseConfig
	// Store is the store's client; nil means one on NATS with its defaults.
	Store *storeclient.Client
	// Registry takes the gateway's metrics; nil means a registry of the
	// gateway's own. The process serves them on its metrics address.
	Registry prometheus.Registerer
	Log      *zap.Logger
}

// Process is a gateway assembled by Start: the Server and the node-ID lease
// its message IDs are made under.
type Process struct {
	*Server
	ids  *router.NodeIDs
	once sync.Once
	err  error
}

// Start assembles a gateway the way every process runs one (`chat gateway`,
// `chat dev`, the tests): it makes sure the message stream exists, leases a
// node ID from NATS so that no two processes make the same message ID,
// builds the ordered publisher and the store client, and starts the Server.
// Serve it on a listener; Shutdown releases everything Start took.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.NATS == nil {
		return nil, errors.New("gateway: Start needs a NATS connection")
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.StreamReplicas <= 0 {
		o.StreamReplicas = 1
	}
	if o.Config.TicketReplicas <= 0 {
		// The ticket bucket is as durable as the stream.
		o.Config.TicketReplicas = o.StreamReplicas
	}
	js, err := jetstream.New(o.NATS)
	if err != nil {
		return nil, fmt.Errorf("gateway: jetstream: %w", err)
	}
	stream, err := router.EnsureStream(ctx, js, router.StreamConfig{Replicas: o.StreamReplicas})
	if err != nil {
		return nil, err
	}
	if o.Lease.Replicas <= 0 {
		o.Lease.Replicas = o.StreamReplicas
	}
	if o.Lease.Log == nil {
		o.Lease.Log = o.Log
	}
	// A send answers unavailable while the lease is not certainly held
	// (cut off from NATS, or taken over), and the gateway is not ready;
	// NodeIDs leases another node ID when this one is lost.
	ids, err := router.LeaseNodeIDs(ctx, js, o.Lease)
	if err != nil {
		return nil, err
	}
	if check := o.Config.ReadyCheck; check != nil {
		o.Config.ReadyCheck = func() bool { return ids.Held() && check() }
	} else {
		o.Config.ReadyCheck = ids.Held
	}
	st := o.Store
	if st == nil {
		st = storeclient.NewClient(o.NATS, storeclient.ClientConfig{})
	}
	log := o.Log.With(zap.Int("node", ids.Node()))
	s, err := New(ctx, o.Config, Deps{
		NATS: o.NATS, Stream: stream, Publisher: router.NewPublisherFrom(js, stream, ids),
		Store: st, Registry: o.Registry, Log: log,
	})
	if err != nil {
		ids.Close(context.Background())
		return nil, err
	}
	return &Process{Server: s, ids: ids}, nil
}

// Node is the node number leased for this gateway's message IDs, -1 while
// none is held.
func (p *Process) Node() int { return p.ids.Node() }

// Shutdown stops the Server, then gives the node ID back. Safe to call
// twice; call Drain first for a graceful stop.
func (p *Process) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		p.err = p.Server.Shutdown(ctx)
		p.ids.Close(ctx)
	})
	return p.err
}
