package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
)

// errWouldBlock: the socket has no more bytes (or room) right now.
var errWouldBlock = errors.New("gateway: would block")

// The read side keeps, per connection, only the bytes of a frame that has
// not fully arrived. A worker reads what the socket holds without waiting,
// handles every complete frame and goes back to the pool; the rest waits in
// Conn.in for the next wake-up. So a client that sends half a frame holds
// at most one frame's bytes (MaxMessage plus a header) and no worker.

// inChunk is the size of a read; idle connections hold no input buffer.
const inChunk = 4096

var inPool = sync.Pool{New: func() any { b := make([]byte, 0, inChunk); return &b }}

// frameHeader reads the size of the frame at the start of b: the length of
// its header and of its payload; ok is false while the header is incomplete.
func frameHeader(b []byte) (hdr int, payload uint64, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	hdr = 2
	payload = uint64(b[1] & 0x7f)
	switch payload {
	case 126:
		hdr += 2
		if len(b) < hdr {
			return 0, 0, false
		}
		payload = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		hdr += 8
		if len(b) < hdr {
			return 0, 0, false
		}
		payload = binary.BigEndian.Uint64(b[2:10])
	}
	if b[1]&0x80 != 0 {
		hdr += 4
	}
	return hdr, payload, len(b) >= hdr
}

// frameSpan reports how many bytes of b the frame at its start takes
// (0 while its header is incomplete), and whether they are all there. A
// frame longer than max is complete once its header is: the frame reader
// refuses it from the header alone.
func frameSpan(b []byte, max int) (int, bool) {
	hdr, n, ok := frameHeader(b)
	if !ok {
		return 0, false
	}
	if n > uint64(max) {
		return hdr, true
	}
	return hdr + int(n), len(b) >= hdr+int(n)
}

// frameReaders hand readFrame a reader over bytes that are all there.
var frameReaders = sync.Pool{New: func() any {
	return &frameReader{br: bufio.NewReaderSize(nil, 16)}
}}

type frameReader struct {
	r  bytes.Reader
	br *bufio.Reader
}

func (fr *frameReader) reset(b []byte) *bufio.Reader {
	fr.r.Reset(b)
	fr.br.Reset(&fr.r)
	return fr.br
}
