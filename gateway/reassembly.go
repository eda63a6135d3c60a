package gateway

import "sync/atomic"

// The reassembly budget bounds, across all of a gateway's connections, the
// bytes held for client messages that have not fully arrived: the
// fragments of an unfinished fragmented message (Conn.frag) and the part
// of an input buffer beyond its pooled inChunk (a frame still arriving).
// Each connection is bounded by MaxMessage alone; without a global bound
// 2,000 connections that each start a fragmented message and never finish
// it hold 134 MB (issue 14). A connection whose growth the budget cannot
// take is closed with 1013 (try again later), and what it held is given
// back.

// DefaultMaxReassembly is Config.MaxReassembly's default: 64 MiB, a
// thousand messages of the largest size arriving at once.
const DefaultMaxReassembly = 64 << 20

// reassembly counts the bytes charged to the budget.
type reassembly struct {
	used atomic.Int64
}

// reserve takes n bytes of a budget of max; false, and nothing taken, when
// they do not fit.
func (r *reassembly) reserve(n, max int64) bool {
	for {
		u := r.used.Load()
		if u+n > max {
			return false
		}
		if r.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (r *reassembly) release(n int64) { r.used.Add(-n) }

// heldClosed marks Conn.charged once teardown has given back what the
// connection held: nothing is charged to it after that.
const heldClosed = -1

// reassemblyCost is what a connection holding an input buffer of inCap
// bytes and fragments of fragCap bytes is charged.
func reassemblyCost(inCap, fragCap int) int64 {
	n := int64(fragCap)
	if inCap > inChunk {
		n += int64(inCap - inChunk)
	}
	return n
}

// charge makes what c is charged n bytes, as it is about to hold them:
// growth must fit in the budget (false, and nothing changes, when it does
// not, or when c is torn down); shrinking always succeeds. Only the worker
// reading c calls it; teardown may run at the same time (releaseHeld).
func (c *Conn) charge(n int64) bool {
	old := c.charged.Load()
	if old == heldClosed {
		return false
	}
	if n > old && !c.s.reasm.reserve(n-old, int64(c.s.cfg.MaxReassembly)) {
		return false
	}
	if !c.charged.CompareAndSwap(old, n) {
		// Torn down meanwhile: teardown gave back old.
		if n > old {
			c.s.reasm.release(n - old)
		}
		return false
	}
	if n < old {
		c.s.reasm.release(old - n)
	}
	return true
}

// chargeHeld charges c for the buffers it holds now (after they shrank).
func (c *Conn) chargeHeld() {
	inCap := 0
	if c.in != nil {
		inCap = cap(*c.in)
	}
	c.charge(reassemblyCost(inCap, cap(c.frag)))
}

// releaseHeld gives back everything c is charged; teardown calls it once.
func (c *Conn) releaseHeld() {
	if old := c.charged.Swap(heldClosed); old > 0 {
		c.s.reasm.release(old)
	}
}

// errReassemblyFull closes a connection whose message the budget cannot
// take.
var errReassemblyFull = &errClose{statusTryAgainLater, reasonReassemblyFull, "server busy: too many unfinished messages, try again later"}
