package gateway

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Tests of issue 13's deviations that are not Autobahn cases: each failed
// before its fix.

// upgradeRequest is a WebSocket upgrade request for target.
func upgradeRequest(target, host string, extra ...string) string {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
		target, host, key, strings.Join(extra, ""))
}

// maskedText is a client text frame.
func maskedText(p string) []byte {
	var buf bytes.Buffer
	_ = ws.WriteFrame(&buf, ws.MaskFrameInPlace(ws.NewTextFrame([]byte(p))))
	return buf.Bytes()
}

// expectHelloAndPong reads hello, then the pong to a ping the client sent
// (possibly in the same write as its upgrade request).
func expectHelloAndPong(t *testing.T, c *rawClient) {
	t.Helper()
	if typ := typeOf(c.read(t)); typ != "hello" {
		t.Fatalf("first frame %q, want hello", typ)
	}
	if got := c.read(t); typeOf(got) != "pong" || !bytes.Contains(got, []byte(`"id":7`)) {
		t.Fatalf("got %s, want the pong to id 7", got)
	}
}

// Deviation 3: an upgrade on a kept-alive connection (after a plain request
// on it, as a proxy with upstream keep-alive sends it) gets hello and
// works; so do frames the client sent right behind its request.
func TestUpgradeOnKeptAliveConnection(t *testing.T) {
	e := newEnv(t, nil)
	token, _ := e.signup(t, "keptalive")
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", e.addr)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	req := upgradeRequest("/ws?token="+token, e.addr)
	if _, err := conn.Write(append([]byte(req), maskedText(`{"type":"ping","id":7}`)...)); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	expectHelloAndPong(t, &rawClient{conn: conn, br: br})
}

// Deviation 3: an absolute-form target (GET http://host/ws?...) works.
func TestUpgradeAbsoluteForm(t *testing.T) {
	e := newEnv(t, nil)
	token, _ := e.signup(t, "absolute")
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req := upgradeRequest("http://"+e.addr+"/ws?token="+token, e.addr)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c := &rawClient{conn: conn, br: br}
	c.write(t, `{"type":"ping","id":7}`)
	expectHelloAndPong(t, c)
}

// Deviation 4: a client pipelining more requests than the write queue
// holds gets an answer to every one (pong, or rate_limited past the
// burst), in order, and keeps its connection.
func TestPipelinedRequestsAllAnswered(t *testing.T) {
	e := newEnv(t, nil)
	token, _ := e.signup(t, "pipeliner")
	c := dialRaw(t, e.addr, token)
	defer c.conn.Close()
	c.read(t) // hello
	const n = 1000
	var buf []byte
	for i := 1; i <= n; i++ {
		buf = append(buf, maskedText(fmt.Sprintf(`{"type":"ping","id":%d}`, i))...)
	}
	if _, err := c.conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	pongs := 0
	for i := 1; i <= n; i++ {
		var f struct {
			Type string `json:"type"`
			ID   int    `json:"id"`
			Code string `json:"code"`
		}
		if err := json.Unmarshal(c.read(t), &f); err != nil {
			t.Fatal(err)
		}
		if f.ID != i || f.Type != "pong" && (f.Type != "error" || f.Code != codeRateLimited) {
			t.Fatalf("answer %d: %+v", i, f)
		}
		if f.Type == "pong" {
			pongs++
		}
	}
	if pongs < 50 {
		t.Fatalf("%d pongs, want at least the burst of 50", pongs)
	}
}

// wsClient is a rawClient read by a goroutine of its own.
type wsClient struct {
	*rawClient
	frames chan []byte
	done   chan struct{}
}

func startReader(t *testing.T, c *rawClient) *wsClient {
	w := &wsClient{rawClient: c, frames: make(chan []byte, 4096), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(w.frames)
		_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			h, err := ws.ReadHeader(c.br)
			if err != nil {
				return
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return
			}
			if h.OpCode == ws.OpText {
				w.frames <- p
			}
		}
	}()
	t.Cleanup(func() { c.conn.Close(); <-w.done })
	return w
}

func (w *wsClient) next(t *testing.T) []byte {
	t.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			t.Fatal("connection closed")
		}
		return f
	case <-time.After(15 * time.Second):
		t.Fatal("no frame in 15 s")
	}
	return nil
}

// newGroup makes a group of the owner and members and returns its ID.
func newGroup(t *testing.T, e *env, ownerToken string, members ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"title": "g", "members": members})
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+"/api/v1/conversations", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ownerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cv struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&cv) != nil {
		t.Fatalf("group: %d", resp.StatusCode)
	}
	return cv.ID
}

// Deviation 6: when members send at once, each sending connection gets
// its ack before its own message.
func TestOwnMessageComesAfterAck(t *testing.T) {
	e := newEnv(t, nil)
	tokA, _ := e.signup(t, "acker_a")
	tokB, _ := e.signup(t, "acker_b")
	conv := newGroup(t, e, tokA, "acker_b")
	const sends = 25
	for trial := 0; trial < 3; trial++ {
		clients := []*wsClient{startReader(t, dialRaw(t, e.addr, tokA)), startReader(t, dialRaw(t, e.addr, tokB))}
		for _, c := range clients {
			if typ := typeOf(c.next(t)); typ != "hello" {
				t.Fatalf("first frame %q", typ)
			}
		}
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for j := 0; j < sends; j++ {
					buf = append(buf, maskedText(fmt.Sprintf(`{"type":"send","id":%d,"conversation":%q,"client_id":"t%d-c%d-%d","body":"hi"}`, j, conv, trial, i, j))...)
				}
				_, _ = c.conn.Write(buf)
			}()
		}
		wg.Wait()
		for i, c := range clients {
			acked := map[string]bool{}
			messages := 0
			for len(acked) < sends || messages < 2*sends {
				var f struct {
					Type    string `json:"type"`
					Message struct {
						ID       string `json:"id"`
						ClientID string `json:"client_id"`
					} `json:"message"`
				}
				if err := json.Unmarshal(c.next(t), &f); err != nil {
					t.Fatal(err)
				}
				switch f.Type {
				case "ack":
					acked[f.Message.ID] = true
				case "message":
					messages++
					if strings.HasPrefix(f.Message.ClientID, fmt.Sprintf("t%d-c%d-", trial, i)) && !acked[f.Message.ID] {
						t.Fatalf("trial %d, client %d: own message %s before its ack", trial, i, f.Message.ClientID)
					}
				case "error":
					t.Fatalf("error frame during sends")
				}
			}
		}
		for _, c := range clients {
			c.conn.Close()
		}
	}
}

// Deviation 7: history without an id is still a history frame.
func TestHistoryWithoutIDHasType(t *testing.T) {
	e := newEnv(t, nil)
	tokA, _ := e.signup(t, "hist_a")
	e.signup(t, "hist_b")
	conv := newGroup(t, e, tokA, "hist_b")
	c := dialRaw(t, e.addr, tokA)
	defer c.conn.Close()
	c.read(t) // hello
	c.write(t, fmt.Sprintf(`{"type":"history","conversation":%q}`, conv))
	if got := c.read(t); typeOf(got) != "history" {
		t.Fatalf("answer %s, want a history frame", got)
	}
}

// Deviation 8: a read mark past the newest message is refused and changes
// nothing; one at the newest message is taken.
func TestReadPastNewestRefused(t *testing.T) {
	e := newEnv(t, nil)
	tokA, _ := e.signup(t, "reader_a")
	e.signup(t, "reader_b")
	conv := newGroup(t, e, tokA, "reader_b")
	c := startReader(t, dialRaw(t, e.addr, tokA))
	c.next(t) // hello
	c.write(t, fmt.Sprintf(`{"type":"send","id":1,"conversation":%q,"client_id":"r1","body":"hi"}`, conv))
	var id string
	for id == "" {
		var f struct {
			Type    string `json:"type"`
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
		}
		_ = json.Unmarshal(c.next(t), &f)
		if f.Type == "ack" {
			id = f.Message.ID
		}
	}
	var n uint64
	fmt.Sscan(id, &n)
	c.write(t, fmt.Sprintf(`{"type":"read","id":2,"conversation":%q,"message_id":"%d"}`, conv, n+1<<22))
	c.write(t, fmt.Sprintf(`{"type":"read","id":3,"conversation":%q,"message_id":%q}`, conv, id))
	sawRefusal := false
	for {
		var f struct {
			Type      string          `json:"type"`
			ID        json.RawMessage `json:"id"`
			Code      string          `json:"code"`
			MessageID string          `json:"message_id"`
		}
		_ = json.Unmarshal(c.next(t), &f)
		switch {
		case f.Type == "error" && string(f.ID) == "2" && f.Code == codeBadRequest:
			sawRefusal = true
		case f.Type == "error":
			t.Fatalf("unexpected error %+v", f)
		case f.Type == "read":
			if f.MessageID != id {
				t.Fatalf("read mark moved to %s, want %s", f.MessageID, id)
			}
			if !sawRefusal {
				t.Fatal("the read past the newest message was not refused")
			}
			return
		}
	}
}

// httpDo sends a request and returns status, headers and body.
func httpDo(t *testing.T, method, url, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// errorCodeOf returns the code of a JSON error envelope, "" when the body
// is not one.
func errorCodeOf(body string) string {
	var e apiError
	if json.Unmarshal([]byte(body), &e) != nil {
		return ""
	}
	return e.Error.Code
}

// Deviation 9: HTTP conformance.
func TestHTTPConformance(t *testing.T) {
	e := newEnv(t, nil)
	token, _ := e.signup(t, "kelvin")
	base := "http://" + e.addr
	for _, c := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
		allow                    string
	}{
		{"wrong method on an API path", "POST", "/api/v1/me", "", []string{"Authorization", "Bearer " + token}, 405, "method_not_allowed", "GET, HEAD"},
		{"wrong method on a POST path", "GET", "/api/v1/signup", "", nil, 405, "method_not_allowed", "POST"},
		{"wrong method on healthz", "DELETE", "/healthz", "", nil, 405, "method_not_allowed", "GET, HEAD"},
		{"unknown API path", "GET", "/api/v1/nothing", "", nil, 404, "not_found", ""},
		{"body over the limit", "POST", "/api/v1/login", `{"username":"` + strings.Repeat("a", 70_000) + `"}`, nil, 413, "invalid_request", ""},
		{"trailing bytes", "POST", "/api/v1/login", `{"username":"kelvin","password":"password-123"} x`, nil, 400, "invalid_request", ""},
		{"a second object", "POST", "/api/v1/login", `{"username":"kelvin","password":"password-123"}{}`, nil, 400, "invalid_request", ""},
		{"login without password", "POST", "/api/v1/login", `{"username":"kelvin"}`, nil, 400, "invalid_request", ""},
		{"login without fields", "POST", "/api/v1/login", `{}`, nil, 400, "invalid_request", ""},
		{"login with a Kelvin sign", "POST", "/api/v1/login", `{"username":"\u212Aelvin","password":"password-123"}`, nil, 401, "unauthorized", ""},
		{"signup with a Kelvin sign", "POST", "/api/v1/signup", `{"username":"\u212Aelvin2","password":"password-123"}`, nil, 400, "invalid_request", ""},
		{"signup with fullwidth letters", "POST", "/api/v1/signup", `{"username":"ｋｅｌｖｉｎ３","password":"password-123"}`, nil, 400, "invalid_request", ""},
		{"/ws without a token (HTTP client)", "GET", "/ws", "", []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg==", "Sec-WebSocket-Version", "13"}, 401, "unauthorized", ""},
		{"/ws, not an upgrade (HTTP client)", "GET", "/ws?token=" + token, "", nil, 400, "invalid_request", ""},
		{"/ws, version 8 (HTTP client)", "GET", "/ws?token=" + token, "", []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg==", "Sec-WebSocket-Version", "8"}, 426, "invalid_request", ""},
	} {
		status, h, body := httpDo(t, c.method, base+c.path, c.body, c.hdr...)
		if status != c.status || errorCodeOf(body) != c.code || c.allow != "" && h.Get("Allow") != c.allow {
			t.Errorf("%s: %d %q Allow %q; want %d %q Allow %q", c.name, status, body, h.Get("Allow"), c.status, c.code, c.allow)
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}
	// Both upgrade paths, raw (a fresh connection whose first bytes are
	// "GET /ws") and net/http (a kept-alive connection), answer errors in
	// the same envelope.
	for _, c := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"no token", upgradeRequest("/ws", e.addr), 401, "unauthorized"},
		{"bad token", upgradeRequest("/ws?token=x", e.addr), 401, "unauthorized"},
		{"no key", "GET /ws?token=" + token + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, "invalid_request"},
		{"not an upgrade", "GET /ws?token=" + token + " HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"},
	} {
		for _, keptAlive := range []bool{false, true} {
			status, body := upgradeStatus(t, e.addr, c.req, keptAlive)
			if status != c.status || errorCodeOf(body) != c.code {
				t.Errorf("kept alive %v, %s: %d %q; want %d %q", keptAlive, c.name, status, body, c.status, c.code)
			}
		}
	}
}

// The Origin policy: same origin by default, for the API and the upgrade
// alike; a configured origin gets CORS and may upgrade.
func TestOriginPolicy(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://App.Example.com:443"} })
	token, _ := e.signup(t, "origin")
	base := "http://" + e.addr
	auth := []string{"Authorization", "Bearer " + token}
	for _, c := range []struct {
		name, method, origin string
		extra                []string
		status               int
		acao                 string
	}{
		{"no Origin", "GET", "", nil, 200, ""},
		{"same origin", "GET", "http://" + e.addr, nil, 200, ""},
		{"same origin behind TLS", "GET", "https://" + e.addr, nil, 200, ""},
		{"other origin", "GET", "https://evil.example", nil, 403, ""},
		{"other port", "GET", "http://127.0.0.1:1", nil, 403, ""},
		{"listed origin", "GET", "https://app.example.com", nil, 200, "https://app.example.com"},
		{"listed origin's preflight", "OPTIONS", "https://app.example.com", []string{"Access-Control-Request-Method", "GET"}, 204, "https://app.example.com"},
		{"other origin's preflight", "OPTIONS", "https://evil.example", []string{"Access-Control-Request-Method", "GET"}, 403, ""},
	} {
		hdr := append(append([]string(nil), auth...), c.extra...)
		if c.origin != "" {
			hdr = append(hdr, "Origin", c.origin)
		}
		status, h, body := httpDo(t, c.method, base+"/api/v1/me", "", hdr...)
		if status != c.status || h.Get("Access-Control-Allow-Origin") != c.acao {
			t.Errorf("API, %s: %d %q ACAO %q; want %d ACAO %q", c.name, status, body, h.Get("Access-Control-Allow-Origin"), c.status, c.acao)
		}
		if status == 403 && errorCodeOf(body) != "forbidden" {
			t.Errorf("API, %s: body %q", c.name, body)
		}
		if c.method == "OPTIONS" && status == 204 && !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight allows headers %q", h.Get("Access-Control-Allow-Headers"))
		}
	}
	// The upgrade, on both paths: raw (a fresh connection) and net/http
	// (after a request on a kept-alive connection).
	for _, c := range []struct {
		name, origin string
		status       int
	}{
		{"no Origin", "", 101},
		{"same origin", "http://" + e.addr, 101},
		{"listed origin", "https://app.example.com", 101},
		{"other origin", "https://evil.example", 403},
	} {
		extra := ""
		if c.origin != "" {
			extra = "Origin: " + c.origin + "\r\n"
		}
		req := upgradeRequest("/ws?token="+token, e.addr, extra)
		for _, keptAlive := range []bool{false, true} {
			status, body := upgradeStatus(t, e.addr, req, keptAlive)
			if status != c.status || status == 403 && errorCodeOf(body) != "forbidden" {
				t.Errorf("upgrade (kept alive %v), %s: %d %q; want %d", keptAlive, c.name, status, body, c.status)
			}
		}
	}
}

// upgradeStatus sends an upgrade request, after a plain request on the
// same connection when keptAlive, and returns the answer's status and
// body (for a refusal).
func upgradeStatus(t *testing.T, addr, req string, keptAlive bool) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	if keptAlive {
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
