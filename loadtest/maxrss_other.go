//go:build !linux

package loadtest

// BSDs and macOS report ru_maxrss in bytes.
func maxrssBytes(v int64) uint64 { return uint64(v) }
