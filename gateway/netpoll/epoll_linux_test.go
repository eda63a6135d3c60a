//go:build linux && !netpollfallback

package netpoll_test

import (
	"net"
	"runtime"
	"testing"
)

// The point of epoll: watched idle conns cost no goroutines.
func TestIdleConnsAddNoGoroutines(t *testing.T) {
	const conns = 1000
	l, p := newListener(t), newPoller(t)
	srvs := make([]*net.TCPConn, conns)
	clis := make([]*net.TCPConn, conns)
	for i := range conns {
		srvs[i], clis[i] = l.pair(t)
	}
	recs := make([]*recorder, conns)
	for i := range recs {
		recs[i] = newRecorder()
	}

	before := runtime.NumGoroutine()
	for i := range conns {
		add(t, p, srvs[i], recs[i].cb)
	}
	after := runtime.NumGoroutine()
	if after > before {
		t.Fatalf("watching %d idle conns added %d goroutines", conns, after-before)
	}
	// And they are really watched.
	for _, i := range []int{0, conns / 2, conns - 1} {
		write(t, clis[i], "x")
		recs[i].next(t)
	}
}
