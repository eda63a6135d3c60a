package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
)

// The hub is the one registry: two local connections in a conversation
// cost one NATS subscription, the room knows both, and the last one out
// drops the room and its subscription.
func TestHubOneSubscriptionPerConversation(t *testing.T) {
	e := newEnv(t, nil)
	s := e.gw.Server
	subs0, rooms0 := s.feed.Subscribed(), s.hub.roomCount()
	newConn := func(id uint64, user chat.ID) *Conn {
		c := &Conn{s: s, id: id, raw: &discardConn{}, user: user}
		c.flushFn = func() {}
		s.hub.add(c)
		return c
	}
	a, b := newConn(1<<40, 7), newConn(1<<40+1, 8)
	s.hub.join(a, "42", []chat.ID{7, 8})
	s.hub.join(b, "42", []chat.ID{7, 8})
	s.hub.join(b, "42", []chat.ID{7, 8}) // twice is harmless
	if got := s.feed.Subscribed() - subs0; got != 1 {
		t.Fatalf("%d NATS subscriptions for one conversation with two local connections, want 1", got)
	}
	if got := s.hub.roomCount() - rooms0; got != 1 {
		t.Fatalf("%d rooms, want 1", got)
	}
	var in []*Conn
	s.hub.eachInRoom("42", func(c *Conn) { in = append(in, c) })
	if len(in) != 2 || !s.hub.in(a, "42") || !s.hub.in(b, "42") {
		t.Fatalf("room holds %d connections, want both", len(in))
	}
	if co := s.hub.coMembers(7); len(co) != 2 {
		t.Fatalf("user 7 shares a room with %d local connections, want 2", len(co))
	}
	a.teardown(reasonClientClose)
	if s.feed.Subscribed()-subs0 != 1 || s.hub.in(a, "42") {
		t.Fatal("the first connection out took the subscription or stayed in the room")
	}
	b.teardown(reasonClientClose)
	if s.feed.Subscribed() != subs0 || s.hub.roomCount() != rooms0 {
		t.Fatal("subscription or room kept after the last local connection left")
	}
	if co := s.hub.coMembers(7); len(co) != 0 {
		t.Fatalf("member index kept %d connections after the room closed", len(co))
	}
}

// Events from the Feed queue frames at once but start each connection's
// writer once, when the Feed is idle: two events for one connection cost
// one wake-up (and one write) under load.
func TestHubWakesWritersOncePerIdle(t *testing.T) {
	e := newEnv(t, nil)
	s := e.gw.Server
	// A hub of its own: the server's hub belongs to its Feed's dispatcher.
	h := newHub(s)
	var wakes atomic.Int32
	c := &Conn{s: s, id: 1 << 41, raw: &discardConn{}, user: 7}
	c.flushFn = func() {
		wakes.Add(1)
		c.mu.Lock()
		c.queue, c.queuedBytes, c.flushing = nil, 0, false
		c.mu.Unlock()
	}
	h.add(c)
	h.join(c, "43", []chat.ID{7, 8})
	defer h.part(c, "43")
	ev := func(body string) *router.Event {
		return &router.Event{Kind: router.KindEvent, Conversation: "43", User: 8, Data: []byte(body)}
	}
	h.onEvent(ev(`{"type":"a"}`))
	h.onEvent(ev(`{"type":"b"}`))
	if got := queued(c); len(got) != 2 {
		t.Fatalf("queued %d frames, want 2", len(got))
	}
	if len(h.wake) != 1 || wakes.Load() != 0 {
		t.Fatalf("%d connections left to wake (want 1), writer woken %d times before the Feed went idle (want 0)", len(h.wake), wakes.Load())
	}
	h.wakeWriters()
	for deadline := time.Now().Add(10 * time.Second); wakes.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("writer never woken after wakeWriters")
		}
		time.Sleep(time.Millisecond)
	}
	h.wakeWriters() // nothing left to wake
	h.onEvent(ev(`{"type":"c"}`))
	h.wakeWriters()
	for deadline := time.Now().Add(10 * time.Second); wakes.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("second writer wake-up missing")
		}
		time.Sleep(time.Millisecond)
	}
	if n := wakes.Load(); n != 2 {
		t.Fatalf("writer woken %d times for two idle points, want 2", n)
	}
}
