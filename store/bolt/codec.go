package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatcluster/chat"
)

// Values are a version byte followed by fields: IDs as 8 bytes big-endian
// (at fixed offsets where a hot path reads them without decoding the rest),
// times as varint milliseconds (the protocol's precision, as in Cassandra),
// strings as uvarint length and bytes.

const valueVersion = 1

var errCorrupt = errors.New("bolt: corrupt value")

// idKey returns id as a key.
func idKey(id chat.ID) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// convPrefix returns "conversation 0x00", the prefix of its members and
// messages keys.
func convPrefix(conv string) []byte {
	p := make([]byte, 0, len(conv)+1+8)
	p = append(p, conv...)
	return append(p, 0)
}

// convEnd returns "conversation 0x01", the first key after all of its keys.
func convEnd(conv string) []byte {
	p := make([]byte, 0, len(conv)+1)
	p = append(p, conv...)
	return append(p, 1)
}

// convKey returns "conversation 0x00 id".
func convKey(conv string, id chat.ID) []byte {
	return binary.BigEndian.AppendUint64(convPrefix(conv), uint64(id))
}

// appendConvKey appends "conversation 0x00 id" to dst.
func appendConvKey(dst []byte, conv string, id chat.ID) []byte {
	dst = append(dst, conv...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, uint64(id))
}

// keyID returns the ID in the last 8 bytes of a key.
func keyID(k []byte) chat.ID { return chat.ID(binary.BigEndian.Uint64(k[len(k)-8:])) }

// validConv reports whether conv can be used in keys: non-empty, no 0x00.
func validConv(conv string) error {
	if conv == "" || strings.IndexByte(conv, 0) >= 0 {
		return fmt.Errorf("%w: conversation id %q", chat.ErrInvalid, conv)
	}
	return nil
}

func appendTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, t.UnixMilli()) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields in order; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func newDecoder(v []byte) *decoder {
	d := &decoder{b: v}
	if len(v) == 0 || v[0] != valueVersion {
		d.err = errCorrupt
		return d
	}
	d.b = v[1:]
	return d
}

func (d *decoder) id() chat.ID {
	if d.err != nil || len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return chat.ID(v)
}

func (d *decoder) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return time.Time{}
	}
	d.b = d.b[n:]
	return time.UnixMilli(v).UTC()
}

// string copies: values live in the memory map only during the transaction.
func (d *decoder) string() string {
	if d.err != nil {
		return ""
	}
	l, n := binary.Uvarint(d.b)
	if n <= 0 || uint64(len(d.b)-n) < l {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[n : n+int(l)])
	d.b = d.b[n+int(l):]
	return s
}

// appendString reads a string field into sb and returns where it is.
func (d *decoder) appendString(sb *strings.Builder) [2]int {
	if d.err != nil {
		return [2]int{}
	}
	l, n := binary.Uvarint(d.b)
	if n <= 0 || uint64(len(d.b)-n) < l {
		d.err = errCorrupt
		return [2]int{}
	}
	start := sb.Len()
	sb.Write(d.b[n : n+int(l)])
	d.b = d.b[n+int(l):]
	return [2]int{start, sb.Len()}
}

// account: version, ID, username, display name, password hash, created at.
func encodeAccount(a chat.Account) []byte {
	b := make([]byte, 0, 1+8+len(a.Username)+len(a.DisplayName)+len(a.PasswordHash)+16)
	b = append(b, valueVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(a.ID))
	b = appendString(b, a.Username)
	b = appendString(b, a.DisplayName)
	b = appendString(b, a.PasswordHash)
	return appendTime(b, a.CreatedAt)
}

func decodeAccount(v []byte) (chat.Account, error) {
	d := newDecoder(v)
	var a chat.Account
	a.ID = d.id()
	a.Username = d.string()
	a.DisplayName = d.string()
	a.PasswordHash = d.string()
	a.CreatedAt = d.time()
	return a, d.err
}

// decodeUser decodes the public part of an account.
func decodeUser(v []byte) (chat.User, error) {
	d := newDecoder(v)
	var u chat.User
	u.ID = d.id()
	u.Username = d.string()
	u.DisplayName = d.string()
	return u, d.err
}

// conversation header: version, creator, created at, kind, title.
func encodeConv(c chat.Conversation) []byte {
	b := make([]byte, 0, 1+8+10+len(c.Kind)+len(c.Title)+4)
	b = append(b, valueVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(c.CreatedBy))
	b = appendTime(b, c.CreatedAt)
	b = appendString(b, string(c.Kind))
	return appendString(b, c.Title)
}

func decodeConv(id string, v []byte) (chat.Conversation, error) {
	d := newDecoder(v)
	c := chat.Conversation{ID: id}
	c.CreatedBy = d.id()
	c.CreatedAt = d.time()
	c.Kind = chat.Kind(d.string())
	c.Title = d.string()
	return c, d.err
}

// membership: version, read mark, join time, then (since issue 11) the
// counters that make an unread count O(1): readPos, the conversation's
// message count at the mark (messages with IDs up to it), and ownAfter, the
// member's own messages after it. unread = count - readPos - ownAfter. A
// membership written before the counters existed has none (counted false)
// and is counted by a scan until its next read mark. The read mark is at a
// fixed offset (1..9) so MarkRead can compare it without decoding.
type membership struct {
	lastRead chat.ID
	joinedAt time.Time
	counted  bool
	readPos  uint64
	ownAfter uint64
}

func encodeMembership(m membership) []byte {
	b := make([]byte, 0, 1+8+10+16)
	b = append(b, valueVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(m.lastRead))
	b = appendTime(b, m.joinedAt)
	if m.counted {
		b = binary.BigEndian.AppendUint64(b, m.readPos)
		b = binary.BigEndian.AppendUint64(b, m.ownAfter)
	}
	return b
}

func decodeMembership(v []byte) (membership, error) {
	d := newDecoder(v)
	var m membership
	m.lastRead = d.id()
	m.joinedAt = d.time()
	if d.err == nil && len(d.b) >= 16 {
		m.counted = true
		m.readPos = uint64(d.id())
		m.ownAfter = uint64(d.id())
	}
	return m, d.err
}

// message: version, sender, sent at, client ID, body, and the ID it replies
// to when it is a reply (absent otherwise, so rows written before replies
// existed read the same). The sender is at a fixed offset (1..9) so
// counting unread messages reads only it.
func appendMessage(b []byte, m *chat.Message) []byte {
	b = append(b, valueVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Sender))
	b = appendTime(b, m.SentAt)
	b = appendString(b, m.ClientID)
	b = appendString(b, m.Body)
	if m.ReplyTo != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.ReplyTo))
	}
	return b
}

func messageSize(m *chat.Message) int {
	return 1 + 8 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(m.ClientID) + len(m.Body) + 8
}

// replyTo reads the optional reply-to ID that ends a message value.
func (d *decoder) replyTo() chat.ID {
	if d.err != nil || len(d.b) == 0 {
		return 0
	}
	return d.id()
}

// decodeMessage decodes the message stored under key k in conversation conv.
func decodeMessage(conv string, k, v []byte) (chat.Message, error) {
	d := newDecoder(v)
	m := chat.Message{ID: keyID(k), Conversation: conv}
	m.Sender = d.id()
	m.SentAt = d.time()
	m.ClientID = d.string()
	m.Body = d.string()
	m.ReplyTo = d.replyTo()
	return m, d.err
}

// decodeMessages decodes stored (key, value) pairs of conversation conv,
// with every client ID and body carved out of one string.
func decodeMessages(conv string, raws [][2][]byte) ([]chat.Message, error) {
	size := 0
	for _, r := range raws {
		size += len(r[1])
	}
	var sb strings.Builder
	sb.Grow(size)
	type span struct{ client, body [2]int }
	spans := make([]span, len(raws))
	out := make([]chat.Message, len(raws))
	for i, r := range raws {
		d := newDecoder(r[1])
		m := &out[i]
		m.ID = keyID(r[0])
		m.Conversation = conv
		m.Sender = d.id()
		m.SentAt = d.time()
		spans[i].client = d.appendString(&sb)
		spans[i].body = d.appendString(&sb)
		m.ReplyTo = d.replyTo()
		if d.err != nil {
			return nil, fmt.Errorf("message %x: %w", r[0], d.err)
		}
	}
	all := sb.String()
	for i := range out {
		out[i].ClientID = all[spans[i].client[0]:spans[i].client[1]]
		out[i].Body = all[spans[i].body[0]:spans[i].body[1]]
	}
	return out, nil
}

// messageSender reads only the sender of a stored message.
func messageSender(v []byte) (chat.ID, bool) {
	if len(v) < 9 || v[0] != valueVersion {
		return 0, false
	}
	return chat.ID(binary.BigEndian.Uint64(v[1:9])), true
}

// messageTime reads the sender and the time of a stored message.
func messageTime(v []byte) (time.Time, error) {
	d := newDecoder(v)
	d.id()
	t := d.time()
	return t, d.err
}
