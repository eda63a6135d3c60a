package netpoll_test

import (
	"testing"
	"time"

	"github.com/chatcluster/chat/gateway/netpoll"
)

// BenchmarkPollerWake is one round of the read path's poller overhead:
// the peer writes a byte, the callback fires, the "worker" reads the byte
// and re-arms. The time includes the loopback write and read syscalls.
func BenchmarkPollerWake(b *testing.B) {
	l, p := newListener(b), newPoller(b)
	srv, cli := l.pair(b)
	fired := make(chan struct{}, 1)
	d := add(b, p, srv, func(netpoll.Event) { fired <- struct{}{} })
	one, buf := []byte{1}, make([]byte, 1)
	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Write(one); err != nil {
			b.Fatal(err)
		}
		timeout.Reset(wait)
		select {
		case <-fired:
		case <-timeout.C:
			b.Fatal("no callback")
		}
		if _, err := srv.Read(buf); err != nil {
			b.Fatal(err)
		}
		if err := p.Resume(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoroutineWake is the baseline PollerWake is measured against:
// the same round with a goroutine parked in Read, as a
// goroutine-per-connection server would have.
func BenchmarkGoroutineWake(b *testing.B) {
	l := newListener(b)
	srv, cli := l.pair(b)
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := srv.Read(buf); err != nil {
				close(got)
				return
			}
			got <- struct{}{}
		}
	}()
	one := []byte{1}
	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Write(one); err != nil {
			b.Fatal(err)
		}
		timeout.Reset(wait)
		select {
		case <-got:
		case <-timeout.C:
			b.Fatal("no read")
		}
	}
	b.StopTimer()
	_ = srv.Close()
	<-got // reader has exited
}
