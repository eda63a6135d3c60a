package loadtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

type wsStatusError = ws.StatusError

var (
	errHelloTimeout = errors.New("no hello frame in time")
	errNoHello      = errors.New("first frame is not hello")
	errFrameTooBig  = errors.New("server frame larger than the generator accepts")
	errClosed       = errors.New("connection closed by server")
)

// maxServerMessage bounds one reassembled server message (hello frames of
// very large groups can be big, but not this big).
const maxServerMessage = 64 << 20

// wsConn is one client connection. One goroutine reads it (answering pings
// itself); any goroutine may write to it, serialised by wmu. Buffers are
// small and per connection, so that tens of thousands of idle connections
// cost little memory.
type wsConn struct {
	idx  int // global connection index, also carried in message bodies
	conn net.Conn
	r    *bufio.Reader

	rbuf []byte // reassembly buffer, reused
	hbuf [ws.MaxHeaderSize - 2]byte

	wmu  sync.Mutex
	wbuf []byte

	inflight  atomic.Int64 // sends without ack or error yet
	closing   atomic.Bool  // we started the close: a read error is no drop
	closeCode atomic.Int32 // close code sent by the server, if any
	done      chan struct{}
	catchup   chan string // storm: the catch-up answer ("" or an error code)
}

// dialWS opens a WebSocket to wsURL with the bearer token, and reads frames
// until hello (the protocol's first frame) or the deadline.
func dialWS(ctx context.Context, idx int, wsURL, token string, netDial func(context.Context, string, string) (net.Conn, error), timeout time.Duration) (*wsConn, error) {
	d := ws.Dialer{
		Timeout: timeout,
		NetDial: netDial,
		Header:  ws.HandshakeHeaderHTTP(http.Header{"Authorization": []string{"Bearer " + token}}),
	}
	conn, br, _, err := d.Dial(ctx, wsURL)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	c := &wsConn{idx: idx, conn: conn, done: make(chan struct{})}
	// A small read buffer: enough for several message frames per system
	// call under load, cheap for idle connections.
	c.r = bufio.NewReaderSize(conn, 2048)
	if br != nil {
		// The server may have sent hello together with the handshake answer.
		if n := br.Buffered(); n > 0 {
			pre, _ := br.Peek(n)
			c.r = bufio.NewReaderSize(io.MultiReader(bytesReader(pre), conn), 2048)
		}
		ws.PutReader(br)
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		op, p, err := c.readMessage()
		if err != nil {
			conn.Close()
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				return nil, errHelloTimeout
			}
			return nil, fmt.Errorf("waiting for hello: %w", err)
		}
		if op != ws.OpText {
			continue
		}
		typ, _, _ := topLevel(p)
		if string(typ) != "hello" {
			conn.Close()
			return nil, fmt.Errorf("%w (got %q)", errNoHello, typ)
		}
		break
	}
	_ = conn.SetReadDeadline(time.Time{})
	c.shrink()
	return c, nil
}

// bytesReader copies p, which belongs to a pooled reader about to be reused.
func bytesReader(p []byte) io.Reader {
	b := make([]byte, len(p))
	copy(b, p)
	return &sliceReader{b: b}
}

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// shrink drops a reassembly buffer grown by one large frame (hello).
func (c *wsConn) shrink() {
	if cap(c.rbuf) > 16<<10 {
		c.rbuf = nil
	}
}

// readMessage returns the next data message (fragments reassembled),
// answering pings and close frames on the way. The payload is valid until
// the next call.
func (c *wsConn) readMessage() (ws.OpCode, []byte, error) {
	c.rbuf = c.rbuf[:0]
	var op ws.OpCode
	for {
		h, err := ws.ReadHeaderBuffer(c.r, c.hbuf[:])
		if err != nil {
			return 0, nil, err
		}
		if h.Length > maxServerMessage || int64(len(c.rbuf))+h.Length > maxServerMessage {
			return 0, nil, errFrameTooBig
		}
		if h.OpCode.IsControl() {
			var ctl [125]byte
			p := ctl[:h.Length]
			if _, err := io.ReadFull(c.r, p); err != nil {
				return 0, nil, err
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				if err := c.write(ws.OpPong, p); err != nil {
					return 0, nil, err
				}
			case ws.OpClose:
				code, _ := ws.ParseCloseFrameData(p)
				c.closeCode.Store(int32(code))
				if !c.closing.Load() {
					// Echo the close as RFC 6455 asks; the server closes TCP.
					_ = c.write(ws.OpClose, p[:min(len(p), 2)])
				}
				return 0, nil, errClosed
			}
			continue
		}
		start := len(c.rbuf)
		need := start + int(h.Length)
		if cap(c.rbuf) < need {
			nb := make([]byte, start, max(need, 2*cap(c.rbuf), 512))
			copy(nb, c.rbuf)
			c.rbuf = nb
		}
		c.rbuf = c.rbuf[:need]
		if _, err := io.ReadFull(c.r, c.rbuf[start:]); err != nil {
			return 0, nil, err
		}
		if h.Masked {
			ws.Cipher(c.rbuf[start:], h.Mask, 0)
		}
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
		}
		if h.Fin {
			return op, c.rbuf, nil
		}
	}
}

// write sends one masked frame (clients must mask) in a single system call.
func (c *wsConn) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	b = append(b, 0x80|byte(op))
	switch n := len(p); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b = append(b, mask[:]...)
	hl := len(b)
	b = append(b, p...)
	ws.Cipher(b[hl:], mask, 0)
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(b)
	if cap(b) <= 4096 {
		c.wbuf = b
	}
	return err
}

// close starts a clean close (1000) and waits up to wait for the server's
// close before dropping the TCP connection. Safe to call more than once.
func (c *wsConn) close(wait time.Duration) {
	if c.closing.Swap(true) {
		<-c.done
		return
	}
	_ = c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	t := time.NewTimer(wait)
	select {
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.conn.Close()
	<-c.done
}
