//go:build unix

package gateway

import (
	"errors"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// readNonblock reads what the socket holds now into b, never waiting: the
// gateway's workers must not sit in a read that a client controls. It
// returns errWouldBlock when there is nothing to read yet and io.EOF when
// the peer closed. first is ignored here (see rawio_other.go).
func readNonblock(c net.Conn, b []byte, _ bool) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c.Read(b) // a test double: reads what it has
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), b)
			if !errors.Is(rerr, unix.EINTR) {
				return true // done either way: never park in the runtime poller
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EWOULDBLOCK):
		return 0, errWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// writevNonblock writes as much of bufs as the socket takes now, never
// waiting; errWouldBlock when it takes nothing.
func writevNonblock(c net.Conn, bufs [][]byte) (int, error) { return writev(c, bufs, false) }

// writevWait writes what it can of bufs, parking the calling goroutine,
// not a worker, in the Go runtime's poller (epoll, EPOLLOUT) while the
// socket takes nothing, until it takes some bytes or the write deadline
// passes. The attempt is made inside RawConn.Write, after the runtime has
// reset the descriptor's readiness: a socket that drained between an
// earlier EAGAIN and this call is seen, not waited for until the deadline.
func writevWait(c net.Conn, bufs [][]byte) (int, error) { return writev(c, bufs, true) }

func writev(c net.Conn, bufs [][]byte, wait bool) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		b := net.Buffers(bufs)
		n, err := b.WriteTo(c)
		return int(n), err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	if len(bufs) > maxIovecs {
		bufs = bufs[:maxIovecs]
	}
	var n int
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			switch {
			case errors.Is(werr, unix.EINTR):
				continue
			case wait && (errors.Is(werr, unix.EAGAIN) || errors.Is(werr, unix.EWOULDBLOCK)):
				return false // wait for the poller to say writable, then again
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(werr, unix.EAGAIN) || errors.Is(werr, unix.EWOULDBLOCK):
		return 0, errWouldBlock
	case werr != nil:
		return 0, werr // writev reports -1 with its error
	}
	return n, nil
}

// maxIovecs stays under IOV_MAX (1024 on Linux and macOS).
const maxIovecs = 1024
