package gateway

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stuckConn is a client that never reads: every write blocks until the
// connection is closed.
type stuckConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
	writes atomic.Int64
}

func newStuckConn() *stuckConn { return &stuckConn{closed: make(chan struct{})} }

func (s *stuckConn) Write(p []byte) (int, error) {
	s.writes.Add(1)
	<-s.closed
	return 0, net.ErrClosed
}
func (s *stuckConn) Close() error                     { s.once.Do(func() { close(s.closed) }); return nil }
func (s *stuckConn) SetWriteDeadline(time.Time) error { return nil }
func (s *stuckConn) SetReadDeadline(time.Time) error  { return nil }

// One client that stops reading never delays the others: the fan-out only
// queues, the stuck client's queue fills, and it is closed as a slow
// consumer while everyone else has received everything.
func TestSlowClientDoesNotSlowOthers(t *testing.T) {
	s := benchServer()
	s.cfg.WriteQueue = 64
	defer s.writers.Close()

	stuck := newStuckConn()
	slow := &Conn{s: s, raw: stuck, user: 1}
	slow.flushFn = slow.flush
	const fast = 50
	sinks := make([]*discardConn, fast)
	conns := make([]*Conn, fast)
	for i := range conns {
		sinks[i] = &discardConn{}
		conns[i] = &Conn{s: s, raw: sinks[i], user: 2}
		conns[i].flushFn = conns[i].flush
	}

	// Rounds of 20 deliveries: the fast clients keep up (each round is
	// flushed before the next), while the stuck one's queue only grows
	// until it passes WriteQueue.
	const rounds, per = 10, 20
	frame := textFrame([]byte(`{"type":"message","message":{}}`))
	for r := 1; r <= rounds; r++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < per; i++ {
				slow.deliver("1", frame, "message")
				for _, c := range conns {
					c.deliver("1", frame, "message")
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the fan-out blocked on a client that does not read")
		}
		want := int64(r * per * len(frame))
		eventually(t, 10*time.Second, func() error {
			for i, sk := range sinks {
				if got := sk.written.Load(); got != want {
					return fmt.Errorf("round %d: fast client %d got %d of %d bytes", r, i, got, want)
				}
			}
			return nil
		})
	}
	for i, c := range conns {
		if c.closed.Load() {
			t.Errorf("fast client %d was closed", i)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if !slow.closed.Load() {
			return fmt.Errorf("the stuck client is still open")
		}
		return nil
	})
	if w := stuck.writes.Load(); w != 1 {
		t.Errorf("the stuck client saw %d writes, want 1 (the one that never returned)", w)
	}
}
