package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/gateway/workers"
	"github.com/gobwas/ws"
)

func newTestPool() *workers.Pool { return workers.New(workers.Config{Size: 4, Queue: 1024}) }

// FuzzReadFrame feeds arbitrary bytes to the frame reader: it must never
// panic, never return a message larger than the limit, and only return
// valid UTF-8.
func FuzzReadFrame(f *testing.F) {
	for _, p := range []string{`{"type":"ping"}`, "", "héllo"} {
		var buf bytes.Buffer
		_ = ws.WriteFrame(&buf, ws.MaskFrameInPlace(ws.NewTextFrame([]byte(p))))
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 2, 3, 4})
	f.Add([]byte{0x01, 0x82, 1, 2, 3, 4, 'a', 'b', 0x80, 0x81, 1, 2, 3, 4, 'c'})
	s := benchServer()
	f.Cleanup(s.writers.Close)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Conn{s: s, raw: &discardConn{}}
		c.flushFn = c.flush
		br := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 64; i++ {
			msg, _, err := c.readFrame(br)
			if err != nil {
				var ec *errClose
				if errors.As(err, &ec) && ec.code == 0 {
					t.Fatal("close without a code")
				}
				return
			}
			if len(msg) > s.cfg.MaxMessage {
				t.Fatalf("message of %d bytes passed the %d limit", len(msg), s.cfg.MaxMessage)
			}
			if msg != nil && !utf8.Valid(msg) {
				t.Fatal("invalid UTF-8 passed")
			}
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing {
				return
			}
		}
	})
}

// FuzzDecodeRequest feeds arbitrary JSON to the request decoder and the
// validators: no panics, and what they accept obeys PROTOCOL.md.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"type":"send","id":1,"conversation":"1-2","client_id":"a","body":"hi"}`))
	f.Add([]byte(`{"type":"history","conversation":"5","before":"123","limit":500}`))
	f.Add([]byte(`{"type":"read","conversation":"5","message_id":18446744073709551615}`))
	f.Add([]byte(`{"type":"history","after":"-1","limit":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		if json.Unmarshal(data, &req) != nil {
			return
		}
		if body, ok := req.Body.str(); ok && chat.ValidBody(body) {
			if n := utf8.RuneCountInString(body); n < 1 || n > 4096 {
				t.Fatalf("body of %d code points accepted", n)
			}
		}
		if id, ok := req.ClientID.str(); ok && chat.ValidClientID(id) && (len(id) > 64 || !utf8.ValidString(id)) {
			t.Fatalf("client_id %q accepted", id)
		}
		p, msg := parsePage(req.Before, req.After, req.Limit)
		if msg == "" {
			if p.Limit < 1 || p.Limit > 200 {
				t.Fatalf("limit %d accepted", p.Limit)
			}
			if p.Before != 0 && p.After != 0 {
				t.Fatal("both cursors accepted")
			}
		}
	})
}
