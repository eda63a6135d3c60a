package loadtest

import (
	"errors"
	"time"
)

// The generator targets Linux and macOS; on Windows it builds (so the whole
// module cross-compiles) but cannot raise limits or read its own usage.

// RaiseNoFile is not supported on Windows.
func RaiseNoFile() (uint64, error) { return 0, errors.New("loadtest: no open-file limit on windows") }

// CPUTime is not measured on Windows.
func CPUTime() (user, sys time.Duration) { return 0, 0 }

// MaxRSS is not measured on Windows.
func MaxRSS() uint64 { return 0 }
