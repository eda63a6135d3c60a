package netpoll_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/chatcluster/chat/gateway/netpoll"
	"github.com/chatcluster/chat/gateway/workers"
)

// The gateway's read path: the callback only schedules; a pool worker reads
// with a deadline, then resumes the watch, or removes it and closes the
// conn on a hang-up.
func Example() {
	poller, err := netpoll.New(netpoll.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer poller.Close()
	pool := workers.New(workers.Config{})
	defer pool.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := ln.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}

	finished := make(chan struct{})
	read := func(desc *netpoll.Desc, ev netpoll.Event) {
		buf := make([]byte, 512) // held only while reading
		// No idle conn has a deadline under epoll; a reading worker
		// must, or a half-sent message pins it.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if n > 0 {
			fmt.Printf("got %q\n", buf[:n])
		}
		if ev&netpoll.EventHup != 0 || err != nil {
			if errors.Is(err, io.EOF) || ev&netpoll.EventHup != 0 {
				fmt.Println("peer gone")
			}
			_ = poller.Remove(desc)
			_ = conn.Close()
			close(finished)
			return
		}
		if err := poller.Resume(desc); err != nil {
			fmt.Println(err)
		}
	}
	// Watch, not Add: the callback needs the Desc, and with data already
	// waiting it may run before Watch returns.
	_, err = poller.Watch(conn, func(desc *netpoll.Desc, ev netpoll.Event) {
		if err := pool.Schedule(func() { read(desc, ev) }); err != nil {
			// Saturated: this conn would never be read again. Drop it
			// (outside the callback: closing is I/O).
			go func() { _ = poller.Remove(desc); _ = conn.Close() }()
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Sent and closed at once: epoll may report both in one event, the
	// fallback in two; the worker's output is the same.
	_, _ = client.Write([]byte("hello"))
	_ = client.Close()
	<-finished
	// Output:
	// got "hello"
	// peer gone
}
