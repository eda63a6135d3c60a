package chat

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ID is a 64-bit identifier (users, messages, group conversations). On the
// wire it is a decimal string: 64-bit numbers do not survive JavaScript.
type ID uint64

func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// MarshalText makes JSON encode an ID as a quoted decimal.
func (id ID) MarshalText() ([]byte, error) { return strconv.AppendUint(nil, uint64(id), 10), nil }

// UnmarshalText accepts only a decimal number.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses a decimal ID; anything else is ErrInvalid.
func ParseID(s string) (ID, error) {
	if s == "" || len(s) > 20 || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%w: id %q", ErrInvalid, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: id %q", ErrInvalid, s)
	}
	return ID(v), nil
}

// The layout of a time-ordered ID, Snowflake style: 41 bits of milliseconds
// since Epoch, 10 bits of node, 12 bits of sequence. The top bit stays 0.
const (
	nodeBits = 10
	seqBits  = 12
	// MaxNode is the largest node number a Generator accepts.
	MaxNode = 1<<nodeBits - 1
	seqMask = 1<<seqBits - 1
)

// Epoch is time zero of IDs: 2025-01-01T00:00:00Z. 41 bits of milliseconds
// last until 2094.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var epochMS = Epoch.UnixMilli()

// Time returns when an ID was made (millisecond precision).
func (id ID) Time() time.Time {
	return time.UnixMilli(int64(id>>(nodeBits+seqBits)) + epochMS).UTC()
}

// Node returns the node number an ID was made under.
func (id ID) Node() int { return int(uint64(id)>>seqBits) & MaxNode }

// FirstID returns the smallest ID made at or after t, for range bounds.
func FirstID(t time.Time) ID {
	ms := t.UnixMilli() - epochMS
	if ms < 0 {
		ms = 0
	}
	return ID(uint64(ms) << (nodeBits + seqBits))
}

// Generator makes time-ordered IDs unique to its node. Safe for concurrent use.
type Generator struct {
	node uint64
	now  func() time.Time

	mu   sync.Mutex
	last uint64 // the last ID made
}

// NewGenerator returns a generator for node (0..MaxNode).
func NewGenerator(node int) (*Generator, error) {
	if node < 0 || node > MaxNode {
		return nil, fmt.Errorf("%w: node %d not in 0..%d", ErrInvalid, node, MaxNode)
	}
	return &Generator{node: uint64(node), now: time.Now}, nil
}

// Next returns a new ID, larger than every ID this generator made before.
func (g *Generator) Next() ID { return g.NextAfter(0) }

// NextAfter returns a new ID larger than both floor and every ID this
// generator made before. It lets a conversation's IDs grow strictly although
// they come from different nodes whose clocks differ a little: the time part
// then runs ahead of the clock by the skew.
func (g *Generator) NextAfter(floor ID) ID {
	ms := uint64(g.now().UnixMilli() - epochMS)
	g.mu.Lock()
	defer g.mu.Unlock()
	id := ms<<(nodeBits+seqBits) | g.node<<seqBits
	min := g.last
	if uint64(floor) > min {
		min = uint64(floor)
	}
	if id <= min {
		id = nextWithNode(min, g.node)
	}
	g.last = id
	return ID(id)
}

// nextWithNode returns the smallest ID above min that carries node's bits,
// so IDs stay unique across nodes even when one runs ahead of its clock.
func nextWithNode(min, node uint64) uint64 {
	ms := min >> (nodeBits + seqBits)
	n := min >> seqBits & MaxNode
	seq := min & seqMask
	switch {
	case n < node:
		return ms<<(nodeBits+seqBits) | node<<seqBits
	case n == node && seq < seqMask:
		return ms<<(nodeBits+seqBits) | node<<seqBits | (seq + 1)
	default:
		return (ms+1)<<(nodeBits+seqBits) | node<<seqBits
	}
}

// DirectID is the ID of the direct conversation between two users: derived
// from both IDs so either side finds it without a lookup and it cannot be
// created twice.
func DirectID(a, b ID) string {
	if a > b {
		a, b = b, a
	}
	return a.String() + "-" + b.String()
}

// DirectMembers returns the two members named by a direct conversation ID.
func DirectMembers(conversation string) (ID, ID, bool) {
	as, bs, ok := strings.Cut(conversation, "-")
	if !ok {
		return 0, 0, false
	}
	a, err1 := ParseID(as)
	b, err2 := ParseID(bs)
	if err1 != nil || err2 != nil || a >= b {
		return 0, 0, false
	}
	return a, b, true
}

// ValidConversationID reports whether s has the form of a conversation ID:
// a decimal group ID or a direct ID. It keeps NATS subjects well formed.
func ValidConversationID(s string) bool {
	if _, _, ok := DirectMembers(s); ok {
		return true
	}
	_, err := ParseID(s)
	return err == nil
}
