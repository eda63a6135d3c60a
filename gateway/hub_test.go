package gateway

import (
	"testing"

	"github.com/chatcluster/chat"
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
