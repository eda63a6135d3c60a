package loadtest

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// dialControl asks the kernel to choose the source port at connect time
// rather than at bind time, so that a bound source address can reuse a port
// towards different destinations (IP_BIND_ADDRESS_NO_PORT).
func dialControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	// Not fatal: old kernels lack the option and the dial still works.
	_ = serr
	return nil
}
