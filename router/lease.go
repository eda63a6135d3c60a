package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ErrNoNodeID is returned when every node ID is leased.
var ErrNoNodeID = errors.New("router: no free node ID")

// ErrLeaseLost means a node-ID lease is gone for good: another process
// wrote its key, or the key expired before a renewal reached it. Its holder
// must lease another node ID.
var ErrLeaseLost = errors.New("router: node ID lease lost")

// ErrLeaseLapsed means a lease's renewals have not succeeded for so long
// that its key may have expired and another process may hold the number
// now. A renewal that succeeds (the key was still ours) restores it.
var ErrLeaseLapsed = errors.New("router: node ID lease not renewed in time")

// Defaults of LeaseConfig.
const (
	DefaultLeaseTTL   = 30 * time.Second
	DefaultLeaseCheck = time.Second
)

// LeaseConfig tunes node-ID leases.
type LeaseConfig struct {
	// TTL is how long a lease outlives its last renewal; a crashed
	// process's node ID is free again after it. Renewed every TTL/3.
	// Default DefaultLeaseTTL (30s).
	TTL time.Duration
	// Margin is how long before its key could expire a holder stops
	// trusting a lease that it could not renew. It covers a NATS server
	// whose clock steps forward or a stream leader whose clock is ahead of
	// the previous one's (message ages are measured on the leader's wall
	// clock). Default TTL/10.
	Margin time.Duration
	// Check is how often NodeIDs looks for a lost lease to replace.
	// Default DefaultLeaseCheck (1s).
	Check time.Duration
	// Replicas of the lease bucket: 3 in a cluster. Default 1.
	Replicas int
	Log      *zap.Logger
}

func (c *LeaseConfig) setDefaults() {
	if c.TTL <= 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.Margin <= 0 || c.Margin >= c.TTL/2 {
		c.Margin = c.TTL / 10
	}
	if c.Check <= 0 {
		c.Check = DefaultLeaseCheck
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Lease is a node ID held in a NATS key-value bucket, so that every gateway
// and store process makes unique message IDs without configuration by
// hand: a process takes a free ID with a create-if-absent write and renews
// it while it lives.
//
// Two processes never hold the same ID at once: the bucket's TTL frees a
// key no sooner than TTL after its last write, and that write happened
// after its holder sent it. So the holder knows the key is its own until
// (send time of its last successful write) + TTL, on its own monotonic
// clock, whatever happened to the network since; it trusts the lease only
// until that time minus a margin (HeldUntil, Err). A renewal that fails
// does not extend it: a process cut off from NATS stops making IDs before
// anyone else could lease its number.
type Lease struct {
	Node int

	kv    jetstream.KeyValue
	key   string
	token string // in the key's value: tells our own writes from others'
	rev   uint64 // owned by renew, then by Release
	cfg   LeaseConfig

	base      time.Time    // monotonic origin of heldUntil
	heldUntil atomic.Int64 // nanoseconds after base; 0: not held
	lost      atomic.Pointer[error]

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// AcquireNodeID leases a free node ID in 0..chat.MaxNode.
func AcquireNodeID(ctx context.Context, js jetstream.JetStream, cfg LeaseConfig) (*Lease, error) {
	cfg.setDefaults()
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
	var tok [8]byte
	_, _ = rand.Read(tok[:]) // never fails (crypto/rand)
	l := &Lease{kv: kv, token: hex.EncodeToString(tok[:]), cfg: cfg, base: time.Now(), stop: make(chan struct{})}
	start := mrand.IntN(chat.MaxNode + 1)
	for i := 0; i <= chat.MaxNode; i++ {
		n := (start + i) % (chat.MaxNode + 1)
		key := "node." + strconv.Itoa(n)
		sent := time.Now()
		rev, err := kv.Create(ctx, key, l.value())
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("router: lease node %d: %w", n, err)
		}
		l.Node, l.key, l.rev = n, key, rev
		l.extend(sent)
		l.wg.Add(1)
		go l.renew()
		return l, nil
	}
	return nil, ErrNoNodeID
}

// value is what the lease writes into its key: its token, then the time
// (for people reading the bucket).
func (l *Lease) value() []byte {
	return []byte(l.token + " " + time.Now().UTC().Format(time.RFC3339))
}

// extend records a write of the key sent at sent: the key lives at least
// until sent + TTL.
func (l *Lease) extend(sent time.Time) {
	l.heldUntil.Store(int64(sent.Add(l.cfg.TTL - l.cfg.Margin).Sub(l.base)))
}

func (l *Lease) renew() {
	defer l.wg.Done()
	every, retry := l.cfg.TTL/3, l.cfg.TTL/15
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), retry)
		rev, err := l.kv.Update(ctx, l.key, l.value(), l.rev)
		switch {
		case err == nil:
			l.rev = rev
			l.extend(sent)
			t.Reset(every)
		case errors.Is(err, jetstream.ErrKeyExists):
			// The key is not at our revision: either someone else wrote
			// it, or one of our renewals that timed out here was stored
			// after all. Only our token tells them apart.
			e, gerr := l.kv.Get(ctx, l.key)
			if gerr == nil && strings.HasPrefix(string(e.Value()), l.token+" ") {
				l.rev = e.Revision()
				t.Reset(0) // renew from the adopted revision at once
				break
			}
			if gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound) {
				// Cannot tell yet; HeldUntil keeps running out meanwhile.
				l.cfg.Log.Warn("node ID lease check failed", zap.Int("node", l.Node), zap.Error(gerr))
				t.Reset(retry)
				break
			}
			lost := fmt.Errorf("%w: node ID %d: %w", ErrLeaseLost, l.Node, err)
			l.lost.Store(&lost)
			l.heldUntil.Store(0)
			l.cfg.Log.Error("node ID lease lost", zap.Int("node", l.Node), zap.Error(err))
			cancel()
			return // the key is someone else's, or gone: never write it again
		default:
			// Not answered (NATS down, a leader election, a partition):
			// try again soon; HeldUntil runs out if this goes on.
			l.cfg.Log.Warn("node ID lease renewal failed", zap.Int("node", l.Node), zap.Error(err))
			t.Reset(retry)
		}
		cancel()
	}
}

// HeldUntil is the time until which the lease is certainly this process's
// (a monotonic time of this process: compare it with time.Now()).
func (l *Lease) HeldUntil() time.Time {
	return l.base.Add(time.Duration(l.heldUntil.Load()))
}

// Err is nil while the lease is certainly held. It wraps ErrLeaseLost once
// the lease is gone for good, and ErrLeaseLapsed while renewals have not
// succeeded for so long that the key may have expired.
func (l *Lease) Err() error {
	if lost := l.lost.Load(); lost != nil {
		return *lost
	}
	if time.Since(l.base) >= time.Duration(l.heldUntil.Load()) {
		return fmt.Errorf("%w: node ID %d", ErrLeaseLapsed, l.Node)
	}
	return nil
}

// Release stops renewing and frees the node ID at once unless another
// process holds it now. Safe twice.
func (l *Lease) Release(ctx context.Context) {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		l.heldUntil.Store(0)
		if l.lost.Load() != nil {
			return // the key is not ours to delete
		}
		if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
			l.cfg.Log.Debug("node ID release", zap.Error(err))
		}
	})
}

// NodeIDs makes IDs under a node-ID lease and keeps one: when its lease is
// lost it leases another node ID (every Check) and makes IDs with that. It
// refuses to make IDs (chat.ErrUnavailable) whenever its lease is not
// certainly held, so two processes never make the same ID, even while one
// of them is cut off from NATS.
type NodeIDs struct {
	js   jetstream.JetStream
	cfg  LeaseConfig
	cur  atomic.Pointer[leased] // nil while none is held
	ctx  context.Context        // cancelled by Close
	halt context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once
}

type leased struct {
	lease *Lease
	gen   *chat.Generator
}

// LeaseNodeIDs leases a node ID (an error when none can be had now) and
// keeps one until Close.
func LeaseNodeIDs(ctx context.Context, js jetstream.JetStream, cfg LeaseConfig) (*NodeIDs, error) {
	cfg.setDefaults()
	n := &NodeIDs{js: js, cfg: cfg}
	first, err := n.acquire(ctx)
	if err != nil {
		return nil, err
	}
	n.cur.Store(first)
	n.ctx, n.halt = context.WithCancel(context.Background())
	n.wg.Go(n.keep)
	return n, nil
}

func (n *NodeIDs) acquire(ctx context.Context) (*leased, error) {
	l, err := AcquireNodeID(ctx, n.js, n.cfg)
	if err != nil {
		return nil, err
	}
	gen, err := chat.NewGenerator(l.Node)
	if err != nil { // cannot happen: leases are in range
		l.Release(ctx)
		return nil, err
	}
	return &leased{lease: l, gen: gen}, nil
}

// keep replaces a lost lease.
func (n *NodeIDs) keep() {
	t := time.NewTicker(n.cfg.Check)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		c := n.cur.Load()
		if c != nil {
			// A lapsed lease may come back (its key was still ours when a
			// renewal got through); a lost one never does.
			if !errors.Is(c.lease.Err(), ErrLeaseLost) {
				continue
			}
			n.cur.Store(nil)
			n.cfg.Log.Error("node ID lease lost: no new IDs until another is held", zap.Int("node", c.lease.Node))
			c.lease.Release(n.ctx)
		}
		next, err := n.acquire(n.ctx)
		if err != nil {
			n.cfg.Log.Warn("node ID lease", zap.Error(err))
			continue
		}
		n.cur.Store(next)
		n.cfg.Log.Info("node ID leased", zap.Int("node", next.lease.Node))
	}
}

// NextAfter returns a new ID above floor (chat.Generator.NextAfter), or an
// error wrapping chat.ErrUnavailable while no lease is certainly held.
func (n *NodeIDs) NextAfter(floor chat.ID) (chat.ID, error) {
	c := n.cur.Load()
	if c == nil {
		return 0, fmt.Errorf("%w: no node ID held", chat.ErrUnavailable)
	}
	if err := c.lease.Err(); err != nil {
		return 0, fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
	}
	return c.gen.NextAfter(floor), nil
}

// Next returns a new ID, or an error wrapping chat.ErrUnavailable while no
// lease is certainly held.
func (n *NodeIDs) Next() (chat.ID, error) { return n.NextAfter(0) }

// heldUntil is HeldUntil of the lease in use (zero when none).
func (n *NodeIDs) heldUntil() time.Time {
	if c := n.cur.Load(); c != nil {
		return c.lease.HeldUntil()
	}
	return time.Time{}
}

// Held reports whether IDs can be made now.
func (n *NodeIDs) Held() bool {
	c := n.cur.Load()
	return c != nil && c.lease.Err() == nil
}

// Node is the node ID leased now, -1 while none is (a lost lease is not
// held even before it is replaced).
func (n *NodeIDs) Node() int {
	if c := n.cur.Load(); c != nil && !errors.Is(c.lease.Err(), ErrLeaseLost) {
		return c.lease.Node
	}
	return -1
}

// Close stops keeping a lease and releases the one held. Safe twice.
func (n *NodeIDs) Close(ctx context.Context) {
	n.once.Do(func() {
		n.halt()
		n.wg.Wait()
		if c := n.cur.Swap(nil); c != nil {
			c.lease.Release(ctx)
		}
	})
}
