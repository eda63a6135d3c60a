//go:build unix && (!linux || netpollfallback)

package netpoll

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitReadable parks until the conn has data, an EOF or an error, without
// consuming anything. It peeks before parking because the runtime poller is
// edge-triggered: RawConn.Read forgets readiness seen before it was called,
// so data that arrived while the worker was busy would otherwise never wake
// it. Go's sockets are non-blocking, so the peek never blocks.
func waitReadable(rc syscall.RawConn, scratch []byte) (Event, error) {
	var ev Event
	err := rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), scratch[:1], unix.MSG_PEEK)
		switch {
		case n > 0:
			ev = EventRead
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EWOULDBLOCK), errors.Is(err, unix.EINTR):
			return false
		case err == nil:
			ev = EventRead | EventHup // EOF
		default:
			ev = EventHup
		}
		return true
	})
	return ev, err
}
