package store

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/singleflight"
)

// A reconnect storm (a gateway dies, its 20,000 users reconnect within
// seconds) asks the same conversations again and again: every member of a
// big group checks membership for its catch-up, every add reads the group.
// In Cassandra each such read is the conversation's row with its member set
// (10,000 IDs). convCache keeps recently read conversations for a while and
// coalesces identical reads in flight, so a storm costs one read per
// conversation, not one per member.
//
// Invalidation: every membership change this service makes drops its
// entry here and is published on chat.ConvChangedSubject, which every
// store replica subscribes to and drops its own entry on. Core NATS may
// lose that message (a slow consumer), so entries also expire after
// convCacheTTL: a member who left might pass a check on another replica
// for that long at worst. A "not a member" answer is never trusted from
// the cache (the caller reads again), so someone just added is never
// refused.

const (
	// convCacheTTL bounds how long an entry is used.
	convCacheTTL = 10 * time.Second
	// convCacheMax bounds the entries; a full cache is cleared (the hot
	// set refills at once), as the gateway's user cache does.
	convCacheMax = 10000
)

type convCache struct {
	b   Backend
	now func() time.Time

	// gen counts invalidations: a read that started before one must not
	// fill the cache, and must not be joined by reads after it.
	gen    atomic.Uint64
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]cachedConv
}

type cachedConv struct {
	c  chat.Conversation
	at time.Time
}

func newConvCache(b Backend) *convCache {
	return &convCache{b: b, now: time.Now, entries: make(map[string]cachedConv)}
}

// get returns conversation id (members included), from the cache when
// fresh. fresh forces a read (still coalesced with identical ones).
func (cc *convCache) get(ctx context.Context, id string, fresh bool) (chat.Conversation, error) {
	if !fresh {
		cc.mu.Lock()
		e, ok := cc.entries[id]
		cc.mu.Unlock()
		if ok && cc.now().Sub(e.at) < convCacheTTL {
			return e.c, nil
		}
	}
	gen := cc.gen.Load()
	v, err, _ := cc.flight.Do(id+"#"+strconv.FormatUint(gen, 10), func() (any, error) {
		// Not the caller's ctx: a read shared by several callers must not
		// fail because the first one gave up.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		c, err := cc.b.Conversation(rctx, id)
		if err != nil {
			return chat.Conversation{}, err
		}
		cc.mu.Lock()
		if cc.gen.Load() == gen {
			if len(cc.entries) >= convCacheMax {
				clear(cc.entries)
			}
			cc.entries[id] = cachedConv{c: c, at: cc.now()}
		}
		cc.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return chat.Conversation{}, err
	}
	return v.(chat.Conversation), nil
}

// invalidate drops conversation id.
func (cc *convCache) invalidate(id string) {
	cc.mu.Lock()
	cc.gen.Add(1)
	delete(cc.entries, id)
	cc.mu.Unlock()
}

// changed invalidates id here and on every other store replica.
func (s *Service) changed(id string) {
	s.convs.invalidate(id)
	if err := s.nc.Publish(chat.ConvChangedSubject, []byte(id)); err != nil {
		s.log.Warn("publish conversation change: other replicas expire it instead")
	}
}

// subscribeChanges follows the other replicas' membership changes.
func (s *Service) subscribeChanges() (*nats.Subscription, error) {
	return s.nc.Subscribe(chat.ConvChangedSubject, func(m *nats.Msg) {
		s.convs.invalidate(string(m.Data))
	})
}
