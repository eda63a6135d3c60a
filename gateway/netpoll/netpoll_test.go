package netpoll_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chatcluster/chat/gateway/netpoll"
	"github.com/chatcluster/chat/gateway/workers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	// wait bounds every positive wait; tests pass in microseconds.
	wait = 5 * time.Second
	// quiet is how long a negative check watches for an event that must
	// not come. It makes a wrong poller fail; it orders nothing.
	quiet = 50 * time.Millisecond
)

// listener hands out connected loopback TCP pairs.
type listener struct {
	ln *net.TCPListener
}

func newListener(t testing.TB) *listener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &listener{ln: ln}
}

// pair returns the accepted (server) and dialled (client) ends; both are
// closed when the test ends.
func (l *listener) pair(t testing.TB) (srv, cli *net.TCPConn) {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, l.ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.ln.AcceptTCP()
	if err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = c.Close()
	})
	return s, c
}

func newPoller(t testing.TB) netpoll.Poller {
	t.Helper()
	p, err := netpoll.New(netpoll.Config{OnError: func(err error) { t.Errorf("poller: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// recorder is a callback that only forwards events, as a real one would
// only schedule work.
type recorder struct {
	ch chan netpoll.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan netpoll.Event, 64)} }

func (r *recorder) cb(ev netpoll.Event) { r.ch <- ev }

func (r *recorder) next(t testing.TB) netpoll.Event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(wait):
		t.Fatal("no callback")
		return 0
	}
}

func (r *recorder) none(t testing.TB) {
	t.Helper()
	select {
	case ev := <-r.ch:
		t.Fatalf("unexpected callback: %v", ev)
	case <-time.After(quiet):
	}
}

func write(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func readN(t testing.TB, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf)
}

func add(t testing.TB, p netpoll.Poller, c net.Conn, cb func(netpoll.Event)) *netpoll.Desc {
	t.Helper()
	d, err := p.Add(c, cb)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEventString(t *testing.T) {
	for _, tc := range []struct {
		ev   netpoll.Event
		want string
	}{
		{0, "none"},
		{netpoll.EventRead, "read"},
		{netpoll.EventHup, "hup"},
		{netpoll.EventRead | netpoll.EventHup, "read|hup"},
		{1 << 7, "unknown"},
	} {
		if got := tc.ev.String(); got != tc.want {
			t.Errorf("%d: got %q want %q", tc.ev, got, tc.want)
		}
	}
}

func TestFiresOnData(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	add(t, p, srv, r.cb)
	r.none(t) // nothing to read yet
	write(t, cli, "x")
	if ev := r.next(t); ev != netpoll.EventRead {
		t.Fatalf("event %v, want read", ev)
	}
	if got := readN(t, srv, 1); got != "x" {
		t.Fatalf("read %q", got)
	}
}

func TestFiresAtOnceWhenAddedWithDataWaiting(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	write(t, cli, "early")
	r := newRecorder()
	add(t, p, srv, r.cb)
	if ev := r.next(t); ev&netpoll.EventRead == 0 {
		t.Fatalf("event %v, want read", ev)
	}
}

func TestOneShotUntilResume(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	d := add(t, p, srv, r.cb)

	write(t, cli, "a")
	r.next(t)
	write(t, cli, "b")

	// Barrier: another conn's later data has been delivered, so an event
	// for the first conn would have been too.
	srv2, cli2 := l.pair(t)
	r2 := newRecorder()
	add(t, p, srv2, r2.cb)
	write(t, cli2, "z")
	r2.next(t)
	r.none(t)

	if got := readN(t, srv, 2); got != "ab" {
		t.Fatalf("read %q", got)
	}
	if err := p.Resume(d); err != nil {
		t.Fatal(err)
	}
	r.none(t)                           // everything was read
	if err := p.Resume(d); err != nil { // already armed: no-op
		t.Fatal(err)
	}
	write(t, cli, "c")
	r.next(t)
	r.none(t)
}

func TestResumeFiresAtOnceWhenDataPending(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	d := add(t, p, srv, r.cb)

	write(t, cli, "0123456789")
	r.next(t)
	if got := readN(t, srv, 4); got != "0123" {
		t.Fatalf("read %q", got)
	}
	// Six bytes still wait: no new data will arrive to wake anyone, so
	// only a level-triggered re-check can fire this.
	if err := p.Resume(d); err != nil {
		t.Fatal(err)
	}
	if ev := r.next(t); ev != netpoll.EventRead {
		t.Fatalf("event %v, want read", ev)
	}
	if got := readN(t, srv, 6); got != "456789" {
		t.Fatalf("read %q", got)
	}
	if err := p.Resume(d); err != nil {
		t.Fatal(err)
	}
	r.none(t)
}

func TestHupOnPeerClose(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	add(t, p, srv, r.cb)
	_ = cli.Close()
	if ev := r.next(t); ev&netpoll.EventHup == 0 {
		t.Fatalf("event %v, want hup", ev)
	}
	_ = srv.SetReadDeadline(time.Now().Add(wait))
	if _, err := srv.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after hup: %v, want EOF", err)
	}
}

// A worker that reads what it can and resumes sees all data sent before
// the peer closed, then a hang-up.
func TestHupAfterData(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	d := add(t, p, srv, r.cb)
	write(t, cli, "bye")
	_ = cli.Close()

	var got []byte
	buf := make([]byte, 64)
	_ = srv.SetReadDeadline(time.Now().Add(wait))
	for {
		if ev := r.next(t); ev&netpoll.EventHup != 0 {
			// The peer is gone: read what it sent before closing.
			rest, err := io.ReadAll(srv)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rest...)
			break
		}
		n, err := srv.Read(buf)
		if err != nil {
			t.Fatalf("read before hup: %v", err)
		}
		got = append(got, buf[:n]...)
		if err := p.Resume(d); err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "bye" {
		t.Fatalf("read %q", got)
	}
	if err := p.Remove(d); err != nil {
		t.Fatal(err)
	}
}

// A hang-up is a lasting condition: resuming after one fires again at
// once, so a worker must Remove and close on EventHup, not Resume.
func TestHupFiresAgainOnResume(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	d := add(t, p, srv, r.cb)
	_ = cli.Close()
	if ev := r.next(t); ev&netpoll.EventHup == 0 {
		t.Fatalf("event %v, want hup", ev)
	}
	if err := p.Resume(d); err != nil {
		t.Fatal(err)
	}
	if ev := r.next(t); ev&netpoll.EventHup == 0 {
		t.Fatalf("event %v after Resume, want hup", ev)
	}
}

func TestRemove(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	r := newRecorder()
	d := add(t, p, srv, r.cb)
	if err := p.Remove(d); err != nil {
		t.Fatal(err)
	}
	write(t, cli, "x")
	r.none(t)
	if err := p.Remove(d); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := p.Resume(d); !errors.Is(err, netpoll.ErrRemoved) {
		t.Fatalf("Resume after Remove: %v, want ErrRemoved", err)
	}
	if err := p.Remove(nil); err != nil {
		t.Fatal(err)
	}
	// The conn can be watched again afterwards.
	r2 := newRecorder()
	add(t, p, srv, r2.cb)
	r2.next(t)
}

func TestRemoveAfterConnClosed(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, _ := l.pair(t)
	d := add(t, p, srv, newRecorder().cb)
	_ = srv.Close()
	if err := p.Remove(d); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveInsideCallback(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, cli := l.pair(t)
	removed := make(chan error, 1)
	d, err := p.Watch(srv, func(d *netpoll.Desc, _ netpoll.Event) { removed <- p.Remove(d) })
	if err != nil {
		t.Fatal(err)
	}
	write(t, cli, "x")
	select {
	case err := <-removed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("no callback")
	}
	if err := p.Resume(d); !errors.Is(err, netpoll.ErrRemoved) {
		t.Fatalf("Resume: %v", err)
	}
}

// With data already waiting, the callback may run before Watch returns; it
// gets the Desc it needs anyway, and it is the one Watch returns.
func TestWatchPassesDesc(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	pool := workers.New(workers.Config{})
	defer pool.Close()
	srv, cli := l.pair(t)
	write(t, cli, "first")
	descs := make(chan *netpoll.Desc, 4)
	resumed := make(chan error, 4)
	got, err := p.Watch(srv, func(d *netpoll.Desc, _ netpoll.Event) {
		descs <- d
		if err := pool.Schedule(func() {
			_ = srv.SetReadDeadline(time.Now().Add(wait))
			_, err := srv.Read(make([]byte, 64))
			if err == nil {
				err = p.Resume(d)
			}
			resumed <- err
		}); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"", "second"} {
		if msg != "" {
			write(t, cli, msg)
		}
		select {
		case d := <-descs:
			if d != got {
				t.Fatal("callback got a different Desc from the one Watch returned")
			}
		case <-time.After(wait):
			t.Fatal("no callback")
		}
		select {
		case err := <-resumed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(wait):
			t.Fatal("worker did not finish")
		}
	}
}

func TestAddUnsupportedConn(t *testing.T) {
	p := newPoller(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := p.Add(a, func(netpoll.Event) {}); !errors.Is(err, netpoll.ErrUnsupported) {
		t.Fatalf("Add(net.Pipe): %v, want ErrUnsupported", err)
	}
	l := newListener(t)
	srv, _ := l.pair(t)
	if _, err := p.Add(srv, nil); err == nil {
		t.Fatal("Add with nil callback succeeded")
	}
}

func TestAddClosedConn(t *testing.T) {
	l, p := newListener(t), newPoller(t)
	srv, _ := l.pair(t)
	_ = srv.Close()
	if _, err := p.Add(srv, func(netpoll.Event) {}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Add(closed conn): %v, want net.ErrClosed", err)
	}
}

func TestClose(t *testing.T) {
	l := newListener(t)
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := l.pair(t)
	r := newRecorder()
	d := add(t, p, srv, r.cb)
	idle, _ := l.pair(t)
	dIdle := add(t, p, idle, newRecorder().cb)
	write(t, cli, "x")
	r.next(t)

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Add(srv, r.cb); !errors.Is(err, netpoll.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := p.Resume(d); !errors.Is(err, netpoll.ErrClosed) {
		t.Fatalf("Resume after Close: %v", err)
	}
	if err := p.Remove(d); err != nil {
		t.Fatalf("Remove after Close: %v", err)
	}
	if err := p.Remove(dIdle); err != nil {
		t.Fatalf("Remove after Close: %v", err)
	}
	write(t, cli, "y")
	r.none(t)
	// The conns stay usable: Close does not touch them.
	if got := readN(t, srv, 2); got != "xy" {
		t.Fatalf("read %q", got)
	}
}

func TestCloseConcurrent(t *testing.T) {
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestEchoThroughPool is the gateway's pattern end to end: the callback
// only schedules, a pool worker reads what is there and resumes. It
// catches lost wake-ups: every byte must arrive.
func TestEchoThroughPool(t *testing.T) {
	const (
		conns = 64
		msgs  = 200
		size  = 16
	)
	l, p := newListener(t), newPoller(t)
	pool := workers.New(workers.Config{Size: 4, Queue: conns})
	defer pool.Close()

	var total atomic.Int64
	done := make(chan struct{})
	clis := make([]*net.TCPConn, conns)
	for i := range clis {
		srv, cli := l.pair(t)
		clis[i] = cli
		buf := make([]byte, 4096)
		handle := func(d *netpoll.Desc) {
			_ = srv.SetReadDeadline(time.Now().Add(wait))
			n, err := srv.Read(buf)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if total.Add(int64(n)) == conns*msgs*size {
				close(done)
			}
			if err := p.Resume(d); err != nil {
				t.Errorf("resume: %v", err)
			}
		}
		if _, err := p.Watch(srv, func(d *netpoll.Desc, _ netpoll.Event) {
			if err := pool.Schedule(func() { handle(d) }); err != nil {
				t.Errorf("schedule: %v", err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	msg := make([]byte, size)
	for _, cli := range clis {
		wg.Go(func() {
			for range msgs {
				if _, err := cli.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("received %d of %d bytes", total.Load(), conns*msgs*size)
	}
}
