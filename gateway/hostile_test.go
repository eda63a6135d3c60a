//go:build unix

package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Hostile clients cost the memory they make the server hold, and nothing
// else: while they are held, everyone else's login, send and delivery go on.
// The server's timeouts are set to a minute here, so a worker that waited
// for a hostile client would show as a stall of a minute; the bound these
// tests allow others (hostileBound) is far below that and far above a
// loaded CI machine's worst ordinary latency.
const hostileBound = 10 * time.Second

func hostileEnv(t *testing.T) *env {
	return newEnv(t, func(c *Config) {
		c.HandshakeTimeout = time.Minute
		c.ReadTimeout = time.Minute
		c.WriteTimeout = time.Minute
		// Few workers, so that a handful of pinned ones would stall all.
		c.Workers = 8
		c.SendRate, c.SendBurst = 1000, 1000
	})
}

// directConversation opens the direct conversation of the token's user and
// another user and returns its ID.
func directConversation(t *testing.T, e *env, token, other string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/api/v1/conversations/direct",
		strings.NewReader(`{"username":"`+other+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cv struct {
		ID string `json:"id"`
	}
	if resp.StatusCode/100 != 2 || json.NewDecoder(resp.Body).Decode(&cv) != nil || cv.ID == "" {
		t.Fatalf("direct: %d", resp.StatusCode)
	}
	return cv.ID
}

// others checks that an ordinary user is unaffected: the health check,
// a login, a WebSocket upgrade with its hello, a send with its ack and its
// delivery to another member, each within hostileBound.
func others(t *testing.T, e *env, tag string) {
	t.Helper()
	within := func(what string, fn func()) {
		t.Helper()
		start := time.Now()
		fn()
		if d := time.Since(start); d > hostileBound {
			t.Errorf("%s took %v while hostile clients were held (bound %v)", what, d, hostileBound)
		}
	}
	within("GET /healthz", func() {
		client := &http.Client{Timeout: 2 * hostileBound}
		resp, err := client.Get("http://" + e.addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d", resp.StatusCode)
		}
	})
	var ta, tb string
	within("two signups", func() {
		ta, _ = e.signup(t, "calm-a-"+tag)
		tb, _ = e.signup(t, "calm-b-"+tag)
	})
	var a, b *rawClient
	within("two upgrades with hello", func() {
		a = dialRaw(t, e.addr, ta)
		if typ := typeOf(a.read(t)); typ != "hello" {
			t.Fatalf("first frame %q", typ)
		}
		b = dialRaw(t, e.addr, tb)
		if typ := typeOf(b.read(t)); typ != "hello" {
			t.Fatalf("first frame %q", typ)
		}
	})
	defer a.conn.Close()
	defer b.conn.Close()
	// A direct conversation: its ID is derived from the two user IDs.
	var conv string
	within("open the direct conversation", func() {
		conv = directConversation(t, e, ta, "calm-b-"+tag)
		for typeOf(b.read(t)) != "conversation" { // b learns of it
		}
	})
	within("send, ack and delivery", func() {
		a.write(t, fmt.Sprintf(`{"type":"send","id":"s1","conversation":%q,"client_id":"c1","body":"hello"}`, conv))
		for typ := ""; typ != "ack"; typ = typeOf(a.read(t)) {
		}
		for typ := ""; typ != "message"; typ = typeOf(b.read(t)) {
		}
	})
}

// 200 connections that send the start of an upgrade request and nothing
// more hold no worker.
func TestHalfSentHandshakesCostOthersNothing(t *testing.T) {
	e := hostileEnv(t)
	for i := 0; i < 200; i++ {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET /ws?")); err != nil {
			t.Fatal(err)
		}
	}
	others(t, e, "hs")
}

// 140 connections that each send a frame header and part of its payload
// hold no worker; they hold what they sent.
func TestStalledFramesCostOthersNothing(t *testing.T) {
	e := hostileEnv(t)
	token, _ := e.signup(t, "staller")
	payload := []byte(`{"type":"ping","id":"` + strings.Repeat("x", 2000) + `"}`)
	var frame bytes.Buffer
	if err := ws.WriteFrame(&frame, ws.MaskFrameInPlace(ws.NewTextFrame(payload))); err != nil {
		t.Fatal(err)
	}
	half := frame.Bytes()[:frame.Len()/2]
	for i := 0; i < 140; i++ {
		c := dialRaw(t, e.addr, token)
		defer c.conn.Close()
		if typ := typeOf(c.read(t)); typ != "hello" {
			t.Fatalf("first frame %q", typ)
		}
		if _, err := c.conn.Write(half); err != nil {
			t.Fatal(err)
		}
	}
	others(t, e, "mid")
}

// Connections with a small receive window that never read, each provoking
// more answers than the sockets between it and the server can hold, hold
// no writer. (The issue saw 140 pin the 128 writers of a 2-core gateway;
// here the pool has 8 and 20 such clients.) The write queue is made large
// so that they are not closed as slow consumers before they would stall a
// writer: what is measured is whether a flush waits for a client.
func TestClientsThatNeverReadCostOthersNothing(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.HandshakeTimeout, c.ReadTimeout, c.WriteTimeout = time.Minute, time.Minute, time.Minute
		c.Workers = 8
		c.SendRate, c.SendBurst = 1000, 1000
		c.WriteQueue, c.WriteQueueBytes = 10000, 64<<20
	})
	deaf, _ := e.signup(t, "deaf")
	loud, _ := e.signup(t, "loud")
	for i := 0; i < 20; i++ {
		c := dialSmallWindow(t, e.addr, deaf)
		defer c.conn.Close()
		if typ := typeOf(c.read(t)); typ != "hello" {
			t.Fatalf("first frame %q", typ)
		}
	}
	// Every message to the direct conversation goes to all 20: 400 of
	// 16 KB (4,096 emoji) are 6.4 MB each, more than the sockets between
	// the server and one of them hold (about 3 MB seen).
	conv := directConversation(t, e, loud, "deaf")
	sender := dialRaw(t, e.addr, loud)
	defer sender.conn.Close()
	for typeOf(sender.read(t)) != "hello" {
	}
	body := strings.Repeat("\U0001F600", 4096)
	const n = 400
	for i := 0; i < n; i++ {
		sender.write(t, fmt.Sprintf(`{"type":"send","id":"s%d","conversation":%q,"client_id":"c%d","body":%q}`, i, conv, i, body))
	}
	for acks := 0; acks < n; {
		if typeOf(sender.read(t)) == "ack" {
			acks++
		}
	}
	others(t, e, "deaf")
}

// dialSmallWindow is dialRaw with a 4 KiB receive buffer, so the server's
// writes to it stall after a few KiB.
func dialSmallWindow(t *testing.T, addr, token string) *rawClient {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	return dialRawWith(t, d, addr, token)
}
