package chat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeLayout is how times travel: RFC 3339 with milliseconds, UTC.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime renders t as the protocol wants it.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// AppendJSON appends m's JSON, exactly the protocol's Message object. It is
// the hot path of every send, so it does not go through reflection.
func (m *Message) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = strconv.AppendUint(b, uint64(m.ID), 10)
	b = append(b, `","conversation":`...)
	b = appendString(b, m.Conversation)
	b = append(b, `,"sender":"`...)
	b = strconv.AppendUint(b, uint64(m.Sender), 10)
	b = append(b, `","body":`...)
	b = appendString(b, m.Body)
	b = append(b, `,"sent_at":"`...)
	b = m.SentAt.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `","client_id":`...)
	b = appendString(b, m.ClientID)
	return append(m.appendChanged(b), '}')
}

// appendChanged appends the extension fields that are set, so an unchanged
// message encodes exactly as before they existed.
func (m *Message) appendChanged(b []byte) []byte {
	if m.ReplyTo != 0 {
		b = appendIDField(b, "reply_to", m.ReplyTo)
	}
	if q := m.Reply; q != nil {
		b = append(b, `,"reply":{"id":"`...)
		b = strconv.AppendUint(b, uint64(q.ID), 10)
		b = append(b, '"')
		b = appendIDField(b, "sender", q.Sender)
		b = append(b, `,"body":`...)
		b = appendString(b, q.Body)
		if q.Deleted {
			b = append(b, `,"deleted":true`...)
		}
		b = append(b, '}')
	}
	if !m.EditedAt.IsZero() {
		b = append(b, `,"edited_at":"`...)
		b = m.EditedAt.UTC().AppendFormat(b, TimeLayout)
		b = append(b, '"')
	}
	if m.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	if len(m.Reactions) > 0 {
		b = append(b, `,"reactions":[`...)
		for i, r := range m.Reactions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"emoji":`...)
			b = appendString(b, r.Emoji)
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, int64(r.Count), 10)
			if r.Me {
				b = append(b, `,"me":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if m.Version != 0 {
		b = appendIDField(b, "version", m.Version)
	}
	return b
}

// MarshalJSON keeps every encoding of a Message identical to AppendJSON.
func (m Message) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(make([]byte, 0, 128+len(m.Body))), nil
}

// appendString appends s as a JSON string, escaping only what JSON needs
// (quote, backslash, control characters) plus U+2028 and U+2029, which some
// JavaScript parsers reject inside strings. Unlike encoding/json it does not
// escape <, > and &: no client parses these bodies as HTML, and escaping
// them made a 4,096-character body of '<' six times its size on the wire.
// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendIDField appends ,"name":"<id>".
func appendIDField(b []byte, name string, id ID) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	return append(b, '"')
}

// AppendJSON appends c's JSON, the protocol's Change object: only the
// fields of its kind (an edit's body, a reaction's emoji and on).
func (c *Change) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = strconv.AppendUint(b, uint64(c.ID), 10)
	b = append(b, `","conversation":`...)
	b = appendString(b, c.Conversation)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(c.Kind))
	b = appendIDField(b, "message_id", c.MessageID)
	b = appendIDField(b, "user", c.User)
	b = append(b, `,"at":"`...)
	b = c.At.UTC().AppendFormat(b, TimeLayout)
	b = append(b, '"')
	if c.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendString(b, c.ClientID)
	}
	switch c.Kind {
	case EventEdit:
		b = append(b, `,"body":`...)
		b = appendString(b, c.Body)
	case EventReact:
		b = append(b, `,"emoji":`...)
		b = appendString(b, c.Emoji)
		b = append(b, `,"on":`...)
		b = strconv.AppendBool(b, c.On)
	}
	if c.Message != nil {
		b = append(b, `,"message":`...)
		b = c.Message.AppendJSON(b)
	}
	return append(b, '}')
}

// MarshalJSON keeps every encoding of a Change identical to AppendJSON.
func (c Change) MarshalJSON() ([]byte, error) {
	return c.AppendJSON(make([]byte, 0, 160+len(c.Body))), nil
}

const hexDigits = "0123456789abcdef"

// Marshal is json.Marshal without HTML escaping: every JSON body the
// cluster sends (store replies, HTTP answers, WebSocket frames) goes
// through it, so that a message's body costs the same bytes everywhere.
// Browsers never parse these bodies as HTML.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // Encode ends with a newline
}
