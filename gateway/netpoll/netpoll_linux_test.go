//go:build linux

package netpoll_test

import (
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/chatcluster/chat/gateway/netpoll"
)

func fdOf(t testing.TB, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// A conn is removed and closed while its data may be mid-dispatch; the next
// conn to get the same fd number must see only its own events.
func TestFdReuseGetsNoStaleEvents(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	const rounds = 200
	reused := 0
	for range rounds {
		srvA, cliA := l.pair(t)
		fdA := fdOf(t, srvA)
		var firedA atomic.Int32
		dA := add(t, p, srvA, func(netpoll.Event) { firedA.Add(1) })
		write(t, cliA, "stale")
		if err := p.Remove(dA); err != nil {
			t.Fatal(err)
		}
		_ = srvA.Close()

		// The freed number goes to whichever end of the next pair is
		// created first.
		srvB, cliB := l.pair(t)
		var watched, peer net.Conn
		switch fdA {
		case fdOf(t, srvB):
			watched, peer = srvB, cliB
		case fdOf(t, cliB):
			watched, peer = cliB, srvB
		default:
			continue
		}
		reused++
		var written atomic.Bool
		stale := make(chan struct{}, 1)
		r := newRecorder()
		add(t, p, watched, func(ev netpoll.Event) {
			if !written.Load() {
				stale <- struct{}{}
			}
			r.cb(ev)
		})
		written.Store(true)
		write(t, peer, "fresh")
		r.next(t)
		select {
		case <-stale:
			t.Fatal("new conn got an event before any data was sent to it")
		default:
		}
		if n := firedA.Load(); n > 1 {
			t.Fatalf("removed conn fired %d times", n)
		}
	}
	if reused < rounds/2 {
		t.Fatalf("fd reused in only %d of %d rounds; test proves nothing", reused, rounds)
	}
	t.Logf("fd number reused in %d of %d rounds", reused, rounds)
}
