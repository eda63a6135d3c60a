package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The RFC 6455 frame layer: reading a client's frames, checking them
// against the RFC and the protocol's limits, and answering control frames.
// The conformance suite (autobahn_test.go) holds it to the Autobahn
// testsuite's cases.

// errClose carries the close code and reason a read error ends the
// connection with.
type errClose struct {
	code   ws.StatusCode
	reason string
	text   string
}

func (e *errClose) Error() string { return e.text }

// errCloseReceived ends the read loop once the client's close frame has
// been answered: RFC 6455 5.5.1, nothing after a close frame is data.
var errCloseReceived = errors.New("gateway: close frame received")

// readFrame reads one complete frame: control frames are answered,
// fragments collected, and a complete text message returned with when its
// last frame began to arrive. Text is checked for UTF-8 fragment by
// fragment, so an invalid message fails on its first bad fragment, not at
// its end; checkPartial does the same for a frame still arriving.
func (c *Conn) readFrame(br *bufio.Reader) ([]byte, time.Time, error) {
	h, err := ws.ReadHeader(br)
	if err != nil {
		if errors.Is(err, ws.ErrHeaderLengthUnexpected) || errors.Is(err, ws.ErrHeaderLengthMSB) {
			return nil, time.Time{}, &errClose{ws.StatusProtocolError, reasonProtocolError, "bad frame header"}
		}
		return nil, time.Time{}, err
	}
	now := time.Now()
	if err := c.checkHeader(h); err != nil {
		return nil, time.Time{}, err
	}
	text := h.OpCode == ws.OpText || h.OpCode == ws.OpContinuation
	if h.OpCode == ws.OpText {
		c.utf8 = utf8State{}
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(br, payload); err != nil {
		return nil, time.Time{}, err
	}
	ws.Cipher(payload, h.Mask, 0)
	if text && !c.utf8.feed(payload) {
		return nil, time.Time{}, errBadUTF8
	}
	c.s.m.bytesIn.Add(float64(len(payload)))

	switch h.OpCode {
	case ws.OpPing:
		c.sendControl(ws.OpPong, payload)
		return nil, now, nil
	case ws.OpPong:
		return nil, now, nil
	case ws.OpClose:
		code, text, reason := closeReply(payload)
		c.closeWith(code, reason, text)
		return nil, now, errCloseReceived
	}
	if !h.Fin {
		if err := c.keepFragment(payload); err != nil {
			return nil, time.Time{}, err
		}
		c.fragging = true
		return nil, now, nil
	}
	if h.OpCode == ws.OpContinuation {
		payload, c.frag, c.fragging = append(c.frag, payload...), nil, false
		c.chargeHeld()
	}
	if c.utf8.need != 0 {
		return nil, time.Time{}, &errClose{ws.StatusInvalidFramePayloadData, reasonProtocolError, "text ends inside a UTF-8 sequence"}
	}
	return payload, now, nil
}

// keepFragment adds a fragment's payload to the message being reassembled.
// Growth is charged to the reassembly budget first (reassembly.go); the
// buffer doubles, up to MaxMessage, so that many small fragments cost
// neither many copies nor much more than they hold.
func (c *Conn) keepFragment(payload []byte) error {
	need := len(c.frag) + len(payload)
	if need > cap(c.frag) {
		newCap := min(max(2*cap(c.frag), need, 512), c.s.cfg.MaxMessage)
		newCap = max(newCap, need)
		inCap := 0
		if c.in != nil {
			inCap = cap(*c.in)
		}
		if !c.charge(reassemblyCost(inCap, newCap)) {
			return errReassemblyFull
		}
		nf := make([]byte, len(c.frag), newCap)
		copy(nf, c.frag)
		c.frag = nf
	}
	if c.frag == nil {
		c.frag = []byte{} // not nil: a message of empty fragments is a message (Autobahn 6.1.2)
	}
	c.frag = append(c.frag, payload...)
	return nil
}

var errBadUTF8 = &errClose{ws.StatusInvalidFramePayloadData, reasonProtocolError, "text is not valid UTF-8"}

// checkPartial checks what has arrived of a text frame still arriving (at
// the start of in) for UTF-8, carrying on from the bytes checked before,
// so that an invalid message fails on its first bad bytes even inside one
// frame (Autobahn 6.4.3, 6.4.4). readFrame checks the frame again, whole,
// once it is complete; a frame readFrame will refuse anyway is left to it.
func (c *Conn) checkPartial(in []byte) error {
	hdr, n, ok := frameHeader(in)
	if !ok || n > uint64(c.s.cfg.MaxMessage) || in[1]&0x80 == 0 || in[0]&0x70 != 0 {
		return nil
	}
	op := ws.OpCode(in[0] & 0x0f)
	if !(op == ws.OpText && !c.fragging || op == ws.OpContinuation && c.fragging) {
		return nil
	}
	got := in[hdr:]
	if len(got) <= c.partialOff {
		return nil
	}
	if c.partialOff == 0 {
		c.partialUTF8 = c.utf8 // the message's state before this frame
		if op == ws.OpText {
			c.partialUTF8 = utf8State{}
		}
	}
	var mask [4]byte
	copy(mask[:], in[hdr-4:hdr])
	var buf [512]byte
	for p := c.partialOff; p < len(got); {
		k := copy(buf[:], got[p:])
		ws.Cipher(buf[:k], mask, p)
		if !c.partialUTF8.feed(buf[:k]) {
			return errBadUTF8
		}
		p += k
	}
	c.partialOff = len(got)
	return nil
}

// checkHeader applies RFC 6455's rules and ours to a frame header before
// its payload is read.
func (c *Conn) checkHeader(h ws.Header) error {
	protocol := func(text string) error {
		return &errClose{ws.StatusProtocolError, reasonProtocolError, text}
	}
	if !h.Masked || h.Rsv != 0 {
		return protocol("client frames must be masked, with no extensions")
	}
	switch h.OpCode {
	case ws.OpPing, ws.OpPong, ws.OpClose:
		if h.Length > 125 || !h.Fin {
			return protocol("bad control frame")
		}
		// Control frames may come between fragments and do not count
		// toward the message's size.
		return nil
	case ws.OpText:
		if c.fragging {
			return protocol("new message inside a fragmented one")
		}
	case ws.OpContinuation:
		if !c.fragging {
			return protocol("continuation without a message")
		}
	case ws.OpBinary:
		if c.fragging {
			return protocol("new message inside a fragmented one")
		}
		return &errClose{ws.StatusUnsupportedData, reasonProtocolError, "binary frames are not accepted"}
	default:
		return protocol("unknown opcode")
	}
	if int64(len(c.frag))+h.Length > int64(c.s.cfg.MaxMessage) {
		return &errClose{ws.StatusMessageTooBig, reasonTooLarge, "message over 65536 bytes"}
	}
	return nil
}

// closeReply is the answer to a client's close frame (RFC 6455 5.5.1,
// 7.4): its own code echoed when valid, 1000 for an empty one, 1002 for a
// one-byte payload or a code that may not be sent, 1007 for a reason that
// is not UTF-8.
func closeReply(payload []byte) (ws.StatusCode, string, string) {
	if len(payload) == 0 {
		return ws.StatusNormalClosure, "", reasonClientClose
	}
	if len(payload) == 1 {
		return ws.StatusProtocolError, "close payload of one byte", reasonProtocolError
	}
	code, reason := ws.ParseCloseFrameData(payload)
	if !validCloseCode(code) {
		return ws.StatusProtocolError, "invalid close code", reasonProtocolError
	}
	if !utf8.ValidString(reason) {
		return ws.StatusInvalidFramePayloadData, "close reason is not UTF-8", reasonProtocolError
	}
	return code, "", reasonClientClose
}

// validCloseCode: the codes an endpoint may send (RFC 6455 7.4.1 and the
// IANA registry): 1000-1003, 1007-1014, and 3000-4999 for libraries and
// applications. 1004-1006 and 1015 must never be on the wire.
func validCloseCode(code ws.StatusCode) bool {
	return code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
}

// utf8State validates UTF-8 incrementally, across fragments and across
// the chunks a frame arrives in (the ranges of Unicode's table 3-7: no
// overlong forms, no surrogates, nothing above U+10FFFF).
type utf8State struct {
	need   int  // continuation bytes still due
	lo, hi byte // the range the next continuation byte must be in
}

// feed checks the next bytes; false at the first that cannot be part of
// valid UTF-8.
func (v *utf8State) feed(p []byte) bool {
	for i := 0; i < len(p); i++ {
		if v.need == 0 {
			// ASCII eight bytes at a time: most chat text is.
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == len(p) {
				break
			}
		}
		b := p[i]
		if v.need == 0 {
			if b < 0x80 {
				continue
			}
			v.lo, v.hi = 0x80, 0xBF
			switch {
			case b >= 0xC2 && b <= 0xDF:
				v.need = 1
			case b == 0xE0:
				v.need, v.lo = 2, 0xA0
			case b >= 0xE1 && b <= 0xEC, b == 0xEE, b == 0xEF:
				v.need = 2
			case b == 0xED:
				v.need, v.hi = 2, 0x9F
			case b == 0xF0:
				v.need, v.lo = 3, 0x90
			case b >= 0xF1 && b <= 0xF3:
				v.need = 3
			case b == 0xF4:
				v.need, v.hi = 3, 0x8F
			default:
				return false
			}
			continue
		}
		if b < v.lo || b > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
	}
	return true
}
