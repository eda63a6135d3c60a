//go:build !unix

package netpoll

import "syscall"

// waitReadable parks until the conn is readable, without consuming data.
// On Windows, RawConn.Read waits with a zero-byte overlapped read, which
// completes at once when data (or an EOF) is already waiting, so declining
// the first call is enough. An EOF shows up as EventRead; the worker's Read
// then returns io.EOF.
func waitReadable(rc syscall.RawConn, _ []byte) (Event, error) {
	first := true
	err := rc.Read(func(uintptr) bool {
		if first {
			first = false
			return false
		}
		return true
	})
	return EventRead, err
}
