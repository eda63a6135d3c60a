package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/chatcluster/chat/gateway/netpoll"
	"github.com/gobwas/ws"
)

// A new connection's first bytes are read the way frames are: a worker
// reads what the socket holds and goes back to the pool, the poller says
// when more arrives, and a timer (not a waiting worker) ends a handshake
// that takes longer than HandshakeTimeout. So a client that sends half a
// request costs the bytes it sent and nothing else: health checks, logins
// and other upgrades go on.

// maxHandshake bounds the bytes of an upgrade request (its headers).
const maxHandshake = 16 << 10

// wsPrefixes are how a WebSocket request to /ws starts.
var wsPrefixes = [][]byte{[]byte("GET /ws?"), []byte("GET /ws ")}

var headerEnd = []byte("\r\n\r\n")

// handshake is one accepted connection before it is either upgraded or
// handed to net/http.
type handshake struct {
	s     *Server
	raw   net.Conn
	buf   []byte
	timer *time.Timer

	mu   sync.Mutex
	desc *netpoll.Desc
	done bool // upgraded, handed over, timed out or failed: the first wins
}

// startHandshake watches a new connection until its request is in.
func (s *Server) startHandshake(raw net.Conn) {
	h := &handshake{s: s, raw: raw}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timer = time.AfterFunc(s.cfg.HandshakeTimeout, h.timeout)
	desc, err := s.poller.Watch(raw, func(d *netpoll.Desc, _ netpoll.Event) {
		if err := s.accepts.Schedule(func() { h.onReadable(d) }); err != nil {
			go h.onReadable(d)
		}
	})
	if err != nil {
		// No raw descriptor (a wrapped conn): only net/http can serve it.
		h.done = true
		h.timer.Stop()
		h.release()
		if !s.httpLn.push(raw) {
			_ = raw.Close()
		}
		return
	}
	h.desc = desc
}

// finish claims the handshake for one outcome; false if another came first.
func (h *handshake) finish() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return false
	}
	h.done = true
	h.timer.Stop()
	if h.desc != nil {
		_ = h.s.poller.Remove(h.desc)
	}
	return true
}

func (h *handshake) release() { <-h.s.handshakes }

func (h *handshake) timeout() {
	if !h.finish() {
		return
	}
	h.s.m.upgradeFailures.WithLabelValues(failHandshakeTimeout).Inc()
	_ = h.raw.Close()
	h.release()
}

func (h *handshake) fail(reason string) {
	if !h.finish() {
		return
	}
	if reason != "" {
		h.s.m.upgradeFailures.WithLabelValues(reason).Inc()
	}
	_ = h.raw.Close()
	h.release()
}

// onReadable runs on a worker: read what is there, then decide, or wait.
func (h *handshake) onReadable(d *netpoll.Desc) {
	for first := true; ; first = false {
		if h.buf == nil {
			h.buf = make([]byte, 0, 1024)
		}
		if len(h.buf) == cap(h.buf) {
			if cap(h.buf) >= maxHandshake {
				break // full: decided below
			}
			h.buf = growInput(h.buf, min(2*cap(h.buf), maxHandshake))
		}
		n, err := readNonblock(h.raw, h.buf[len(h.buf):cap(h.buf)], first)
		h.buf = h.buf[:len(h.buf)+n]
		if errors.Is(err, errWouldBlock) {
			break
		}
		if err != nil {
			h.fail("")
			return
		}
	}
	switch h.route() {
	case routeWait:
		if err := h.s.poller.Resume(d); err != nil {
			h.fail("")
		}
	case routeHTTP:
		if !h.finish() {
			return
		}
		h.release()
		if !h.s.httpLn.push(&prefixConn{Conn: h.raw, prefix: h.buf}) {
			_ = h.raw.Close()
		}
	case routeUpgrade:
		h.upgrade()
	case routeTooLarge:
		h.fail(failBadRequest)
	}
}

type route int

const (
	routeWait route = iota
	routeHTTP
	routeUpgrade
	routeTooLarge
)

// route says what the bytes so far call for: a WebSocket request to /ws is
// upgraded here once its headers are complete; anything else goes to
// net/http as soon as it cannot be one.
func (h *handshake) route() route {
	b := h.buf
	ws := false
	for _, p := range wsPrefixes {
		n := min(len(b), len(p))
		if bytes.Equal(b[:n], p[:n]) {
			if n < len(p) {
				return routeWait // could still be either
			}
			ws = true
		}
	}
	switch {
	case len(b) == 0:
		return routeWait
	case !ws:
		return routeHTTP
	case bytes.Contains(b, headerEnd):
		return routeUpgrade
	case len(b) >= maxHandshake:
		return routeTooLarge
	}
	return routeWait
}

// upgrade answers a complete WebSocket request and opens the connection.
func (h *handshake) upgrade() {
	if !h.finish() {
		return
	}
	defer h.release()
	s := h.s
	end := bytes.Index(h.buf, headerEnd) + len(headerEnd)
	var (
		query    string
		authz    string
		origin   string
		host     string
		id       identity
		rejected int // the status OnBeforeUpgrade refused with
	)
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			if i := bytes.IndexByte(uri, '?'); i >= 0 {
				query = string(uri[i+1:])
			}
			return nil
		},
		OnHost: func(v []byte) error {
			host = string(v)
			return nil
		},
		OnHeader: func(key, value []byte) error {
			switch {
			case bytes.EqualFold(key, []byte("Authorization")):
				authz = string(value)
			case bytes.EqualFold(key, []byte("Origin")):
				origin = string(value)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !s.originAllowed(origin, host) {
				rejected = http.StatusForbidden
				return nil, errRejected
			}
			var err error
			id, err = s.authenticate(s.ctx, query, authz)
			if err != nil {
				rejected = http.StatusUnauthorized
				return nil, errRejected
			}
			return nil, nil
		},
	}
	// The request is all in the buffer, so the upgrader never waits on the
	// client. Its answer goes into out: a 101 to the client as it is, a
	// refusal replaced by the API's JSON error envelope, so that /ws errors
	// look the same on every path. Either is a few hundred bytes to an
	// empty socket.
	var out bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(h.buf[:end]), &out}
	_ = h.raw.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := u.Upgrade(rw); err != nil {
		reason := failBadRequest
		switch rejected {
		case http.StatusUnauthorized:
			reason = failUnauthorized
		case http.StatusForbidden:
			reason = failOrigin
		}
		s.m.upgradeFailures.WithLabelValues(reason).Inc()
		status := rejected
		var rej *ws.ConnectionRejectedError
		if status == 0 && errors.As(err, &rej) && rej.StatusCode() != 0 {
			status = rej.StatusCode()
		}
		if status == 0 {
			status = http.StatusBadRequest
		}
		_ = writeRawError(h.raw, status, upgradeErrorMessage(status, err))
		_ = h.raw.Close()
		return
	}
	if _, err := h.raw.Write(out.Bytes()); err != nil {
		_ = h.raw.Close()
		return
	}
	_ = h.raw.SetWriteDeadline(time.Time{})
	// Bytes after the request (a client that did not wait for our 101)
	// are its first frames.
	s.open(h.raw, id, h.buf[end:])
}

// errRejected is how OnBeforeUpgrade refuses; upgrade writes the answer
// itself.
var errRejected = ws.RejectConnectionError(ws.RejectionStatus(http.StatusBadRequest))
