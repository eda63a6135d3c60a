package cassandra

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
)

// Speculative execution of reads: when a read has not been answered after
// SpeculativeDelay, the driver sends it to the next host of the query plan
// as well and takes whichever answer comes first (gocql's
// SpeculativeExecutionPolicy). A replica in a GC pause or a compaction
// storm then costs a read SpeculativeDelay, not its whole stall. Only
// SELECTs speculate: they are idempotent and cheap to repeat, while a
// repeated write would double the write load exactly when a node is slow.
//
// gocql shares one host iterator between the executions of a query, and an
// execution that finds the iterator empty answers ErrNoConnections at once,
// which wins the race (apache/cassandra-gocql-driver#1707): with one node
// up, a read slower than the delay would fail. So the policy never asks for
// more extra executions than there are other hosts up, as counted by
// upCounter from the driver's host events.
type specPolicy struct {
	attempts int
	delay    time.Duration
	up       *upCounter
}

var _ gocql.SpeculativeExecutionPolicy = (*specPolicy)(nil)

// Attempts returns the extra executions a read may start now: the
// configured number, at most the hosts up besides the first one tried.
func (p *specPolicy) Attempts() int {
	return max(0, min(p.attempts, int(p.up.n.Load())-1))
}

// Delay is how long an execution runs before the next one starts.
func (p *specPolicy) Delay() time.Duration { return p.delay }

// upCounter is the session's host selection policy with a count of the
// hosts it knows to be up.
type upCounter struct {
	gocql.HostSelectionPolicy
	mu sync.Mutex
	up map[string]bool // by host ID: up or down
	n  atomic.Int64    // hosts up
}

func newUpCounter(p gocql.HostSelectionPolicy) *upCounter {
	return &upCounter{HostSelectionPolicy: p, up: map[string]bool{}}
}

func (c *upCounter) set(h *gocql.HostInfo, up, remove bool) {
	c.mu.Lock()
	if remove {
		delete(c.up, h.HostID())
	} else {
		c.up[h.HostID()] = up
	}
	n := 0
	for _, u := range c.up {
		if u {
			n++
		}
	}
	c.n.Store(int64(n))
	c.mu.Unlock()
}

func (c *upCounter) AddHost(h *gocql.HostInfo) {
	c.set(h, true, false)
	c.HostSelectionPolicy.AddHost(h)
}

func (c *upCounter) RemoveHost(h *gocql.HostInfo) {
	c.set(h, false, true)
	c.HostSelectionPolicy.RemoveHost(h)
}

func (c *upCounter) HostUp(h *gocql.HostInfo) {
	c.set(h, true, false)
	c.HostSelectionPolicy.HostUp(h)
}

func (c *upCounter) HostDown(h *gocql.HostInfo) {
	c.set(h, false, false)
	c.HostSelectionPolicy.HostDown(h)
}

// isRead reports a statement that may speculate.
func isRead(stmt string) bool {
	s := strings.TrimSpace(stmt)
	return len(s) >= 6 && strings.EqualFold(s[:6], "SELECT")
}
