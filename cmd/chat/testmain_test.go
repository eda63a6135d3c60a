package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: every
// dev server a test starts must be fully stopped by its Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
