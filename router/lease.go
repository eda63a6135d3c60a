package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ErrNoNodeID is returned when every node ID is leased.
var ErrNoNodeID = errors.New("router: no free node ID")

// LeaseConfig tunes node-ID leases.
type LeaseConfig struct {
	// TTL is how long a lease outlives its holder; a crashed process's
	// node ID is free again after it. Default 30s.
	TTL time.Duration
	// Replicas of the lease bucket: 3 in a cluster. Default 1.
	Replicas int
	Log      *zap.Logger
}

// Lease is a node ID held in a NATS key-value bucket, so that every gateway
// and store process makes unique message IDs without configuration by
// hand: a process takes a free ID with a create-if-absent write and renews
// it while it lives. Two processes never hold the same ID at once.
type Lease struct {
	Node int

	kv     jetstream.KeyValue
	key    string
	rev    uint64
	cfg    LeaseConfig
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	lostMu sync.Mutex
	lost   error
}

// AcquireNodeID leases a free node ID in 0..chat.MaxNode.
func AcquireNodeID(ctx context.Context, js jetstream.JetStream, cfg LeaseConfig) (*Lease, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	kvc := jetstream.KeyValueConfig{
		Bucket: chat.NodeIDBucket, TTL: cfg.TTL, Replicas: cfg.Replicas, History: 1,
		Description: "node IDs for time-ordered message IDs, leased by gateways and stores",
	}
	kv, err := ensure(ctx, "lease bucket", func(actx context.Context) (jetstream.KeyValue, error) {
		kv, err := js.CreateKeyValue(actx, kvc)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.UpdateKeyValue(actx, kvc)
		}
		return kv, err
	})
	if err != nil {
		return nil, err
	}
	start := rand.IntN(chat.MaxNode + 1)
	for i := 0; i <= chat.MaxNode; i++ {
		n := (start + i) % (chat.MaxNode + 1)
		key := "node." + strconv.Itoa(n)
		rev, err := kv.Create(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339)))
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("router: lease node %d: %w", n, err)
		}
		l := &Lease{Node: n, kv: kv, key: key, rev: rev, cfg: cfg, stop: make(chan struct{})}
		l.wg.Add(1)
		go l.renew()
		return l, nil
	}
	return nil, ErrNoNodeID
}

func (l *Lease) renew() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.cfg.TTL/3)
			rev, err := l.kv.Update(ctx, l.key, []byte(time.Now().UTC().Format(time.RFC3339)), l.rev)
			cancel()
			if err != nil {
				// A failed renewal is retried next tick; only a revision
				// mismatch means someone else holds the ID now.
				if errors.Is(err, jetstream.ErrKeyExists) {
					l.lostMu.Lock()
					l.lost = fmt.Errorf("router: node ID %d lease lost: %w", l.Node, err)
					l.lostMu.Unlock()
				}
				l.cfg.Log.Warn("node ID lease renewal failed", zap.Int("node", l.Node), zap.Error(err))
				continue
			}
			l.rev = rev
		}
	}
}

// Err reports a lease that another process has taken over.
func (l *Lease) Err() error {
	l.lostMu.Lock()
	defer l.lostMu.Unlock()
	return l.lost
}

// Release frees the node ID at once. Safe twice.
func (l *Lease) Release(ctx context.Context) {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
			l.cfg.Log.Debug("node ID release", zap.Error(err))
		}
	})
}
