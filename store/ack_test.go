package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// partitionedBackend writes each conversation of a batch on its own, over
// bolt, and reports each as stored (store.ReportingSaver), as the Cassandra
// backend does with its partitions. The conversation hold is written only
// once gate closes: one partition slower than the rest, on demand, which
// a real Cassandra node does not offer.
type partitionedBackend struct {
	store.Backend
	hold    string
	gate    chan struct{}
	entered atomic.Int64
}

var _ store.ReportingSaver = (*partitionedBackend)(nil)

func (p *partitionedBackend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	return p.SaveMessagesReporting(ctx, msgs, func(string) {})
}

func (p *partitionedBackend) SaveMessagesReporting(ctx context.Context, msgs []chat.Message, stored func(string)) error {
	byConv := map[string][]chat.Message{}
	for _, m := range msgs {
		byConv[m.Conversation] = append(byConv[m.Conversation], m)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for conv, ms := range byConv {
		wg.Go(func() {
			err := func() error {
				if conv == p.hold {
					p.entered.Add(1)
					select {
					case <-p.gate:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return p.Backend.SaveMessages(ctx, ms)
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			stored(conv)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TestAcksPerConversation: messages of one batch are acked as their own
// conversation is stored, while another conversation of the same batch is
// still being written, and not one of that conversation's before it is.
func TestAcksPerConversation(t *testing.T) {
	e := newEnv(t)
	inner := openBolt(t)
	b := &partitionedBackend{Backend: inner, hold: "101", gate: make(chan struct{})}
	p := newPublisher(t, e.js)
	const n = 20
	p.publishN("101", 1, n)
	p.publishN("102", 2, n)
	_, last := p.publishN("103", 3, n)
	// Everything in one batch: nothing is due before all have arrived.
	cfg := store.ServiceConfig{SaveTimeout: 30 * time.Second, BatchIdle: 300 * time.Millisecond, BatchLinger: time.Second}
	s := startService(t, e, b, cfg)
	// Runs before the service's shutdown, so that a failure does not
	// leave the write held.
	t.Cleanup(func() {
		select {
		case <-b.gate:
		default:
			close(b.gate)
		}
	})
	waitReady(t, s.svc)
	waitFor(t, 10*time.Second, func() error {
		if b.entered.Load() == 0 {
			return errors.New("the slow conversation's write has not started")
		}
		info := consumerInfo(t, e)
		if info.NumAckPending != n {
			return fmt.Errorf("%d messages not acked, want the slow conversation's %d", info.NumAckPending, n)
		}
		return nil
	})
	for conv, want := range map[string]int{"101": 0, "102": n, "103": n} {
		if got, err := storedCount(t.Context(), inner, conv); err != nil || got != want {
			t.Fatalf("%s: %d stored (%v), want %d", conv, got, err, want)
		}
	}
	if got := b.entered.Load(); got != 1 {
		t.Fatalf("the slow conversation's write started %d times, want once (a redelivery?)", got)
	}
	close(b.gate)
	waitAcked(t, e, last)
	if got, err := storedCount(t.Context(), inner, "101"); err != nil || got != n {
		t.Fatalf("slow: %d stored (%v), want %d", got, err, n)
	}
}
