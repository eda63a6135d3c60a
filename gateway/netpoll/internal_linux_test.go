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

// An event that was already queued for a conn when it was removed, closed
// and its fd number handed to a new conn, must reach neither callback. The
// kernel makes that window too narrow to hit from outside, so the stale
// event is injected.
func TestStaleEventAfterFdReuse(t *testing.T) {
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

	fdOf := func(c net.Conn) int {
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		fd := -1
		if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	event := func(d *Desc) []unix.EpollEvent {
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		setID(&ev, d.id)
		return []unix.EpollEvent{ev}
	}

	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fdA := fdOf(a)
	var firedA, firedB int
	dA, err := p.Add(a, func(Event) { firedA++ })
	if err != nil {
		t.Fatal(err)
	}
	stale := event(dA)
	if err := p.Remove(dA); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()

	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if fdOf(b) != fdA {
		t.Skipf("fd %d not reused (got %d)", fdA, fdOf(b))
	}
	dB, err := p.Add(b, func(Event) { firedB++ })
	if err != nil {
		t.Fatal(err)
	}

	batch := p.dispatch(stale, nil)
	if firedA != 0 || firedB != 0 {
		t.Fatalf("stale event fired callbacks: removed conn %d, new conn %d", firedA, firedB)
	}
	// The injection path works: B's own event fires B, once.
	batch = p.dispatch(event(dB), batch)
	p.dispatch(event(dB), batch)
	if firedB != 1 {
		t.Fatalf("new conn fired %d times for two events without Resume, want 1", firedB)
	}
}
