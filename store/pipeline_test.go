package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// parallelBackend holds every write until the gate opens and records how
// many writes ran at once, overall and per conversation.
type parallelBackend struct {
	store.Backend
	gate chan struct{}

	mu      sync.Mutex
	now     int
	peak    int
	perConv map[string]int
	clash   string // a conversation seen in two writes at once
}

func (p *parallelBackend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	convs := map[string]bool{}
	for _, m := range msgs {
		convs[m.Conversation] = true
	}
	p.mu.Lock()
	p.now++
	p.peak = max(p.peak, p.now)
	for c := range convs {
		if p.perConv[c]++; p.perConv[c] > 1 {
			p.clash = c
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.now--
		for c := range convs {
			p.perConv[c]--
		}
		p.mu.Unlock()
	}()
	select {
	case <-p.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.Backend.SaveMessages(ctx, msgs)
}

// Several batch writes run at once, never two of one conversation.
func TestWritesInFlight(t *testing.T) {
	e := newEnv(t)
	inner := openBolt(t)
	b := &parallelBackend{Backend: inner, gate: make(chan struct{}), perConv: map[string]int{}}
	cfg := store.ServiceConfig{SaveTimeout: 30 * time.Second, BatchSize: 5, WritesInFlight: 4}
	s := startService(t, e, b, cfg)
	waitReady(t, s.svc)
	p := newPublisher(t, e.js)
	want := map[string][]chat.Message{}
	var last uint64
	for i := range 40 {
		conv := strconv.Itoa(100 + i%8)
		m, seq := p.publish(conv, 1)
		want[conv] = append(want[conv], m)
		last = seq
	}
	opened := false
	defer func() {
		if !opened {
			close(b.gate) // let the service stop
		}
	}()
	waitFor(t, 10*time.Second, func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.now < 2 {
			return fmt.Errorf("%d writes in flight, want several", b.now)
		}
		return nil
	})
	close(b.gate)
	opened = true
	waitAcked(t, e, last)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peak > 4 {
		t.Errorf("%d writes at once, WritesInFlight 4", b.peak)
	}
	if b.clash != "" {
		t.Errorf("conversation %s in two writes at once", b.clash)
	}
	for conv, msgs := range want {
		got, _, err := inner.Messages(t.Context(), conv, chat.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := sameIDs(got, msgs); err != nil {
			t.Errorf("conversation %s: %v", conv, err)
		}
	}
}

// slowBackend takes `slow` for its first write: slower than AckWait.
type slowBackend struct {
	store.Backend // counts the writes
	slow          time.Duration
	once          sync.Once
}

func (b *slowBackend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	var d time.Duration
	b.once.Do(func() { d = b.slow })
	if d > 0 {
		t := time.NewTimer(d) // the slowness is the backend's, not the test's
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Backend.SaveMessages(ctx, msgs)
}

// A write slower than AckWait is not redelivered meanwhile, nor are the
// messages delivered behind it: none is written twice.
func TestSlowWriteIsNotRedelivered(t *testing.T) {
	e := newEnv(t)
	counting := &countingBackend{Backend: openBolt(t), counts: map[chat.ID]int{}, by: map[string]int{}}
	b := &slowBackend{Backend: counting.saver("slow"), slow: 1500 * time.Millisecond}
	cfg := store.ServiceConfig{AckWait: 300 * time.Millisecond, SaveTimeout: 10 * time.Second, WritesInFlight: 1}
	s := startService(t, e, b, cfg)
	waitReady(t, s.svc)
	p := newPublisher(t, e.js)
	first, _ := p.publish("9", 1)
	waitFor(t, 5*time.Second, func() error {
		if consumerInfo(t, e).NumAckPending == 0 {
			return errors.New("first message not delivered yet")
		}
		return nil
	})
	msgs, last := p.publishN("9", 1, 20) // delivered while the first write is slow
	waitAcked(t, e, last)
	counting.mu.Lock()
	defer counting.mu.Unlock()
	for _, m := range append(msgs, first) {
		if n := counting.counts[m.ID]; n != 1 {
			t.Errorf("message %s written %d times", m.ID, n)
		}
	}
	if info := consumerInfo(t, e); info.NumRedelivered != 0 {
		t.Errorf("%d redelivered", info.NumRedelivered)
	}
}
