package gateway

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// An idle connection holds no goroutine: the goroutine count does not grow
// with the number of open connections.
func TestIdleConnectionsHoldNoGoroutines(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the goroutine-free poller is epoll; other systems use the goroutine-per-connection fallback")
	}
	e := newEnv(t, func(c *Config) { c.Workers = 16 })
	token, _ := e.signup(t, "idler")
	// Warm up: pools, caches, NATS subscriptions.
	warm := dialRaw(t, e.addr, token)
	if typ := typeOf(warm.read(t)); typ != "hello" {
		t.Fatalf("first frame %q", typ)
	}
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()

	const n = 1000
	clients := make([]*rawClient, 0, n)
	for i := 0; i < n; i++ {
		c := dialRaw(t, e.addr, token)
		if typ := typeOf(c.read(t)); typ != "hello" {
			t.Fatalf("conn %d: first frame %q", i, typ)
		}
		clients = append(clients, c)
	}
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
		warm.conn.Close()
	}()
	if got := e.gw.hub.count(); got != n+1 {
		t.Fatalf("gateway holds %d connections, want %d", got, n+1)
	}
	// Workers that served the handshakes retire after their idle timeout;
	// what must hold is that nothing stays per connection.
	limit := before + 16 + 10 // at most the worker pool's size plus slack
	eventually(t, 30*time.Second, func() error {
		if g := settle(); g > limit {
			return fmt.Errorf("%d goroutines with %d idle connections (%d before): they grow with connections", g, n, before)
		}
		return nil
	})
	t.Logf("goroutines: %d before, %d with %d more idle connections", before, settle(), n)

	// They are alive, not stuck: one of them still answers.
	clients[n/2].write(t, `{"type":"ping","id":"p"}`)
	if typ := typeOf(clients[n/2].read(t)); typ != "pong" {
		t.Fatalf("ping answered with %q", typ)
	}
}
