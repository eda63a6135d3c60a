//go:build linux && !netpollfallback

package netpoll

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Removed and failed Adds leave nothing in the fd table.
func TestTableEmptiesOnRemove(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pi, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer pi.Close()
	p := pi.(*epoll)

	var descs []*Desc
	for range 20 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		d, err := p.Add(c, func(Event) {})
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
		// Adding the same conn twice fails and must not leak an entry.
		if _, err := p.Add(c, func(Event) {}); err == nil {
			t.Fatal("second Add of one conn succeeded")
		}
	}
	if n := tableLen(p); n != len(descs) {
		t.Fatalf("table has %d entries, want %d", n, len(descs))
	}
	for _, d := range descs {
		if err := p.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	if n := tableLen(p); n != 0 {
		t.Fatalf("table has %d entries after Remove", n)
	}
}

func TestIDRoundTrip(t *testing.T) {
	for _, id := range []uint64{0, 1, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		var ev unix.EpollEvent
		setID(&ev, id)
		if got := getID(&ev); got != id {
			t.Errorf("id %d came back as %d", id, got)
		}
	}
}

func tableLen(p *epoll) int {
	p.tabMu.Lock()
	defer p.tabMu.Unlock()
	return len(p.descs)
}
