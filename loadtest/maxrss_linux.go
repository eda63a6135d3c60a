package loadtest

// Linux reports ru_maxrss in kilobytes.
func maxrssBytes(v int64) uint64 { return uint64(v) * 1024 }
