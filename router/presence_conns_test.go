package router

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatcluster/chat"
)

// Each gateway's connection count of a user reaches the others: at every
// change, in the sync a starting gateway asks for, and to zero when the
// user leaves or the gateway stops.
func TestPresenceRemoteConnections(t *testing.T) {
	s := runServer(t)
	ctx := context.Background()
	nc1, _ := connect(t, s)
	nc2, _ := connect(t, s)
	p1, err := NewPresence(ctx, nc1, PresenceConfig{SyncWait: 50 * time.Millisecond, OfflineGrace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	const u chat.ID = 7
	p1.Connect(u)
	p1.Connect(u)
	if err := nc1.Flush(); err != nil {
		t.Fatal(err)
	}
	p2, err := NewPresence(ctx, nc2, PresenceConfig{SyncWait: 200 * time.Millisecond, OfflineGrace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if n := p2.RemoteConnections(u); n != 2 {
		t.Fatalf("after sync: %d remote connections, want 2", n)
	}
	if n := p1.RemoteConnections(u); n != 0 {
		t.Fatalf("a gateway counts its own connections as remote: %d", n)
	}
	waitFor := func(p *Presence, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := p.RemoteConnections(u)
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal(fmt.Errorf("%d remote connections, want %d", n, want))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	p1.Connect(u)
	waitFor(p2, 3)
	p2.Connect(u)
	waitFor(p1, 1)
	p1.Disconnect(u)
	waitFor(p2, 2)
	p1.Disconnect(u)
	p1.Disconnect(u) // the last: offline after the grace
	waitFor(p2, 0)
	p1.Connect(u)
	waitFor(p2, 1)
	p1.Close() // announces its users offline
	waitFor(p2, 0)
}
