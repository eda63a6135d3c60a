package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Helpers of the upgrade paths: the raw one (Server.handshake) and the
// one through net/http (Server.serveHTTPUpgrade).

// checkUpgrade checks what gobwas/ws would, so that a bad upgrade request
// gets the JSON error envelope rather than the library's plain text.
func checkUpgrade(r *http.Request) (int, string) {
	switch {
	case !r.ProtoAtLeast(1, 1):
		return http.StatusHTTPVersionNotSupported, "WebSocket needs HTTP/1.1"
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return http.StatusBadRequest, "not a WebSocket upgrade: Upgrade: websocket is missing"
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return http.StatusBadRequest, "not a WebSocket upgrade: Connection: Upgrade is missing"
	case len(r.Header.Get("Sec-WebSocket-Key")) != 24:
		return http.StatusBadRequest, "bad Sec-WebSocket-Key"
	case r.Header.Get("Sec-WebSocket-Version") == "":
		return http.StatusBadRequest, "Sec-WebSocket-Version is missing"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return http.StatusUpgradeRequired, "only WebSocket version 13 is spoken"
	}
	return 0, ""
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// upgradeErrorMessage says why the raw path refused an upgrade.
func upgradeErrorMessage(status int, err error) string {
	switch status {
	case http.StatusUnauthorized:
		return "missing or invalid token"
	case http.StatusForbidden:
		return "origin not allowed"
	}
	return err.Error()
}

// errorCode is the API error code of a status.
func errorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "invalid_request"
}

// writeRawError writes an HTTP error in the API's JSON envelope straight
// to a socket (the raw upgrade path has no ResponseWriter), and closes the
// exchange.
func writeRawError(w io.Writer, status int, msg string) error {
	var e apiError
	e.Error.Code, e.Error.Message = errorCode(status), msg
	body, _ := json.Marshal(e)
	extra := ""
	if status == http.StatusUpgradeRequired {
		extra = "Sec-WebSocket-Version: 13\r\n"
	}
	_, err := fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s\n",
		status, http.StatusText(status), len(body)+1, extra, body)
	return err
}

// prefixConn replays bytes already read from a connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// chanListener hands connections the gateway accepted to net/http.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
