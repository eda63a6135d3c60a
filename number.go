package chat

import (
	"fmt"
	"strconv"
)

// Number is a message's place in its conversation's numbering (issue 12):
// the gateway that publishes a message stamps it with the conversation's
// running count of messages, N (1, 2, 3, ...), so that the store can count
// unread messages by subtraction without counters or reads. Base is the ID
// of the message numbered 1 in this run: a conversation whose records all
// left the stream (quiet for longer than its MaxAge) starts a new run, and
// numbers of different runs cannot be subtracted. The zero Number is "not
// numbered": a record published before numbering existed.
type Number struct {
	N    uint64
	Base ID
}

// Numbered reports whether n is a number at all.
func (n Number) Numbered() bool { return n.N > 0 && n.Base > 0 }

// Next is the number of the message that follows a record carrying n; id
// is that message's ID, which starts a new run when n is not numbered.
func (n Number) Next(id ID) Number {
	if !n.Numbered() {
		return Number{N: 1, Base: id}
	}
	return Number{N: n.N + 1, Base: n.Base}
}

// ParseNumber reads the HdrNum and HdrNumBase header values; both absent
// is the zero Number. A malformed pair is ErrInvalid.
func ParseNumber(n, base string) (Number, error) {
	if n == "" && base == "" {
		return Number{}, nil
	}
	v, err := strconv.ParseUint(n, 10, 63)
	if err != nil || v == 0 {
		return Number{}, fmt.Errorf("%w: message number %q", ErrInvalid, n)
	}
	b, err := ParseID(base)
	if err != nil || b == 0 {
		return Number{}, fmt.Errorf("%w: message number base %q", ErrInvalid, base)
	}
	return Number{N: v, Base: b}, nil
}
