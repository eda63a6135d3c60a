package chat

import (
	"encoding/json"
	"strconv"
	"time"
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
	return append(b, '}')
}

// MarshalJSON keeps every encoding of a Message identical to AppendJSON.
func (m Message) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(make([]byte, 0, 128+len(m.Body))), nil
}

// appendString appends s as a JSON string. encoding/json's own escaping
// (HTML-safe, U+2028/2029 escaped) is used for anything unusual so that the
// fast path and the slow path cannot disagree.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			enc, _ := json.Marshal(s) // cannot fail for a string
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
