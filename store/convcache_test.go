package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storeclient"
)

// convReadCounter counts Conversation reads, the hot read of a storm.
type convReadCounter struct {
	store.Backend
	reads atomic.Int64
}

func (c *convReadCounter) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	c.reads.Add(1)
	return c.Backend.Conversation(ctx, id)
}

// TestConversationCacheStorm: a storm of membership checks of one group
// (every member reconnecting) costs a few backend reads, not one each; a
// change made through one replica is seen at once through the other (two
// replicas, requests spread over both by the queue group): a member who
// left is refused, one just added is let in.
func TestConversationCacheStorm(t *testing.T) {
	e := newEnv(t)
	b := &convReadCounter{Backend: openBolt(t)}
	s1 := startService(t, e, b, store.ServiceConfig{})
	s2 := startService(t, e, b, store.ServiceConfig{})
	waitReady(t, s1.svc)
	waitReady(t, s2.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	ctx := t.Context()
	const n = 200
	users := make([]chat.User, n)
	ids := make([]chat.ID, n)
	for i := range users {
		users[i] = signup(t, c, fmt.Sprintf("storm%d", i))
		ids[i] = users[i].ID
	}
	g, err := c.Group(ctx, "storm", ids[0], ids[1:n-1])
	if err != nil {
		t.Fatal(err)
	}
	before := b.reads.Load()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range n - 1 {
		wg.Go(func() {
			if _, ok, err := c.Membership(ctx, g.ID, ids[i]); err != nil || !ok {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	reads := b.reads.Load() - before
	t.Logf("%d membership checks of one group: %d backend reads", n-1, reads)
	if refused.Load() != 0 {
		t.Fatalf("%d members refused", refused.Load())
	}
	if reads > 10 {
		t.Errorf("%d membership checks cost %d backend reads: not coalesced or cached", n-1, reads)
	}
	// Changes through either replica are seen through both at once.
	for round := range 5 {
		u := ids[n-1]
		if _, _, err := c.AddMembers(ctx, g.ID, ids[0], []chat.ID{u}); err != nil {
			t.Fatal(err)
		}
		for k := range 6 {
			if _, ok, err := c.Membership(ctx, g.ID, u); err != nil || !ok {
				t.Fatalf("round %d, check %d: just added, refused (%v)", round, k, err)
			}
		}
		if err := c.Leave(ctx, g.ID, u); err != nil {
			t.Fatal(err)
		}
		for k := range 6 {
			// The invalidation crosses NATS: the replica that did not
			// make the change may answer from its cache until it arrives.
			waitFor(t, 2e9, func() error {
				if _, ok, err := c.Membership(ctx, g.ID, u); err != nil || ok {
					return fmt.Errorf("round %d, check %d: left, still a member (%v)", round, k, err)
				}
				return nil
			})
		}
	}
}
