package loadtest

import (
	"bytes"
	"strconv"
)

// Frames are parsed with a small scanner of the top-level object instead of
// encoding/json: at tens of thousands of deliveries a second the generator
// must spend little CPU per frame, or it becomes the bottleneck it measures.

// topLevel returns the raw string values of the keys "type" and "id" of a
// JSON object, skipping every other value (nested objects and arrays
// included) without decoding it. ok is false for anything that is not an
// object. The values are returned undecoded; the protocol's type names and
// our own request IDs need no unescaping.
func topLevel(b []byte) (typ, id []byte, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, nil, false
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return nil, nil, false
		}
		if b[i] == '}' {
			return typ, id, true
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '"' {
			return nil, nil, false
		}
		kend := skipString(b, i)
		if kend < 0 {
			return nil, nil, false
		}
		key := b[i+1 : kend-1]
		i = skipWS(b, kend)
		if i >= len(b) || b[i] != ':' {
			return nil, nil, false
		}
		i = skipWS(b, i+1)
		vend := skipValue(b, i)
		if vend < 0 {
			return nil, nil, false
		}
		if b[i] == '"' {
			switch string(key) {
			case "type":
				typ = b[i+1 : vend-1]
			case "id":
				id = b[i+1 : vend-1]
			}
		}
		i = vend
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := skipString(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// The body of every message the generator sends starts with a marker that
// carries the send time (Unix nanoseconds of this machine's wall clock, the
// one clock all worker processes share) and the global index of the sending
// connection:  "lt1 <unixnano> <sender> <padding>". Only characters that JSON
// never escapes are used, so the marker appears verbatim in the raw frame.
var bodyMarker = []byte("lt1 ")

// appendBody appends a message body of at least size bytes.
func appendBody(dst []byte, sentUnixNano int64, sender int, size int) []byte {
	start := len(dst)
	dst = append(dst, bodyMarker...)
	dst = strconv.AppendInt(dst, sentUnixNano, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, ' ', 'x')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// parseMarker finds the generator's marker in a raw frame and returns the
// send time and sender index it carries.
func parseMarker(frame []byte) (sentUnixNano int64, sender int, ok bool) {
	i := bytes.Index(frame, bodyMarker)
	if i < 0 {
		return 0, 0, false
	}
	rest := frame[i+len(bodyMarker):]
	ts, n := parseUint(rest)
	if n == 0 || n >= len(rest) || rest[n] != ' ' {
		return 0, 0, false
	}
	rest = rest[n+1:]
	s, m := parseUint(rest)
	if m == 0 {
		return 0, 0, false
	}
	return int64(ts), int(s), true
}

func parseUint(b []byte) (v uint64, n int) {
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n
}

// appendSend appends a send frame. convJSON is the conversation ID already
// encoded as a JSON string (quotes included).
func appendSend(dst []byte, reqID int64, convJSON []byte, sender int, seq int64, sentUnixNano int64, bodySize int) []byte {
	dst = append(dst, `{"type":"send","id":"`...)
	dst = strconv.AppendInt(dst, reqID, 10)
	dst = append(dst, `","conversation":`...)
	dst = append(dst, convJSON...)
	dst = append(dst, `,"client_id":"lt-`...)
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `","body":"`...)
	dst = appendBody(dst, sentUnixNano, sender, bodySize)
	dst = append(dst, `"}`...)
	return dst
}
