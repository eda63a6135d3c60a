package gateway

import "github.com/gobwas/ws"

// textFrame returns payload as one complete, unmasked WebSocket text frame.
// Server frames are never masked, so the same bytes serve every connection:
// a fan-out builds its frame once.
func textFrame(payload []byte) []byte {
	b := make([]byte, 0, len(payload)+ws.MaxHeaderSize-4)
	return append(appendFrameHeader(b, len(payload)), payload...)
}

// messageFrame wraps a stored message's JSON (the stream payload, which is
// the protocol's Message object) into the client's "message" frame without
// decoding it.
func messageFrame(msgJSON []byte) []byte {
	const pre, post = `{"type":"message","message":`, `}`
	n := len(pre) + len(msgJSON) + len(post)
	b := make([]byte, 0, n+10)
	b = appendFrameHeader(b, n)
	b = append(b, pre...)
	b = append(b, msgJSON...)
	return append(b, post...)
}

func appendFrameHeader(b []byte, n int) []byte {
	b = append(b, 0x80|byte(ws.OpText))
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
