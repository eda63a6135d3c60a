//go:build unix

package loadtest

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// RaiseNoFile raises this process's open-file soft limit to its hard limit
// and returns the new soft limit.
func RaiseNoFile() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return rl.Cur, nil
}

// CPUTime returns the user and system CPU time this process has used.
func CPUTime() (user, sys time.Duration) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// MaxRSS returns this process's peak resident memory in bytes.
func MaxRSS() uint64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil || ru.Maxrss < 0 {
		return 0
	}
	return maxrssBytes(ru.Maxrss)
}
