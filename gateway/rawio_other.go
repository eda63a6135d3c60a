//go:build !unix

package gateway

import "net"

// readNonblock, where the platform has no non-blocking read we can reach
// (Windows, dev only): netpoll's fallback wakes the worker only once data
// is there, so the first read of a wake-up returns at once; later ones
// would wait, so they report errWouldBlock.
func readNonblock(c net.Conn, b []byte, first bool) (int, error) {
	if !first {
		return 0, errWouldBlock
	}
	return c.Read(b)
}

// writevNonblock writes everything, waiting as long as the write deadline
// allows (dev only).
func writevNonblock(c net.Conn, bufs [][]byte) (int, error) {
	b := net.Buffers(bufs)
	n, err := b.WriteTo(c)
	return int(n), err
}

func writevWait(c net.Conn, bufs [][]byte) (int, error) { return writevNonblock(c, bufs) }
