package gateway

import (
	"slices"
	"strconv"
	"sync"
	"testing"
)

// queued returns what c has queued: its flushFn is a no-op, so nothing is
// written and the queue keeps everything in order.
func queued(c *Conn) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, f := range c.queue {
		out = append(out, string(f))
	}
	return out
}

func heldConn() *Conn {
	s := benchServer()
	c := &Conn{s: s, raw: &discardConn{}}
	c.flushFn = func() {}
	return c
}

// hold/release: a conversation's deliveries wait for its conversation
// frame, the other conversations' do not, and with several holds only the
// last release lets everything out, in order.
func TestHoldAndRelease(t *testing.T) {
	c := heldConn()
	defer c.s.writers.Close()
	c.hold("5")
	c.deliver("5", []byte("m1"), "message")
	c.deliver("6", []byte("x"), "message")
	c.hold("5")
	c.release("5", []byte("conv"))
	c.deliver("5", []byte("m2"), "message")
	if got, want := queued(c), []string{"x", "conv"}; !slices.Equal(got, want) {
		t.Fatalf("while one hold remains: queued %q, want %q", got, want)
	}
	c.release("5", nil)
	if got, want := queued(c), []string{"x", "conv", "m1", "m2"}; !slices.Equal(got, want) {
		t.Fatalf("after the last release: queued %q, want %q", got, want)
	}
	c.release("5", nil) // a release without a hold changes nothing
	c.deliver("5", []byte("m3"), "message")
	if got := queued(c); got[len(got)-1] != "m3" {
		t.Fatalf("delivery after the holds ended: queued %q", got)
	}
}

// hello comes first: everything sent or delivered before it waits and
// follows it, in order.
func TestHelloFirst(t *testing.T) {
	c := heldConn()
	defer c.s.writers.Close()
	c.holdAll = true
	c.send([]byte("a"), "presence")
	c.deliver("5", []byte("b"), "message")
	if got := queued(c); len(got) != 0 {
		t.Fatalf("queued %q before hello", got)
	}
	c.sendHello([]byte("hello"))
	c.send([]byte("c"), "message")
	if got, want := queued(c), []string{"hello", "a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("queued %q, want %q", got, want)
	}
}

// A release racing with the Feed's next deliveries: the held frames still
// go out before anything delivered after them (the CI run that found this
// saw a send's echo overtake its own earlier messages).
func TestReleaseRacingDelivery(t *testing.T) {
	c := heldConn()
	defer c.s.writers.Close()
	const held, after = 40, 40
	for round := 0; round < 200; round++ {
		c.mu.Lock()
		c.queue, c.queuedBytes = nil, 0
		c.mu.Unlock()
		c.hold("5")
		for i := 0; i < held; i++ {
			c.deliver("5", []byte(strconv.Itoa(i)), "message")
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.releaseWith("5", []byte("ack"), "ack")
		}()
		for i := held; i < held+after; i++ {
			c.deliver("5", []byte(strconv.Itoa(i)), "message")
		}
		wg.Wait()
		next := 0
		for _, f := range queued(c) {
			if f == "ack" {
				continue
			}
			if f != strconv.Itoa(next) {
				t.Fatalf("round %d: frame %s queued where %d belongs: %q", round, f, next, queued(c))
			}
			next++
		}
		if next != held+after {
			t.Fatalf("round %d: %d frames queued, want %d", round, next, held+after)
		}
	}
}
