package gateway_test

// Helpers of the protocol tests: a gateway harness per top-level test, an HTTP
// client, a WebSocket client (github.com/coder/websocket, not the gateway's
// own code) that queues every frame it receives, and a raw TCP WebSocket
// client for what a well-behaved library will not send (fragments).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatcluster/chat/gateway"
	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testSecret   = "a-test-secret-of-32-bytes-or-more!!"
	testPassword = "correct horse battery"
	// frameWait bounds waiting for one expected frame or response.
	frameWait = 10 * time.Second
)

// sentAtRE is PROTOCOL.md's time format: RFC 3339, milliseconds, UTC.
var sentAtRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// Protocol objects, decoded strictly: IDs are strings, so a number where a
// string belongs fails the decoding.
type apiUser struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Online      *bool  `json:"online"`
}

type apiMessage struct {
	ID           string `json:"id"`
	Conversation string `json:"conversation"`
	Sender       string `json:"sender"`
	Body         string `json:"body"`
	SentAt       string `json:"sent_at"`
	ClientID     string `json:"client_id"`
}

type apiConversation struct {
	ID          string      `json:"id"`
	Kind        string      `json:"kind"`
	Title       string      `json:"title"`
	Members     []apiUser   `json:"members"`
	LastMessage *apiMessage `json:"last_message"`
	Unread      int         `json:"unread"`
}

type account struct {
	User     apiUser `json:"user"`
	Token    string  `json:"token"`
	Password string  `json:"-"`
}

// page is a history page (HTTP body or history frame). The cursors are
// raw so that a missing field and null can be told apart.
type page struct {
	Messages   []apiMessage    `json:"messages"`
	NextBefore json.RawMessage `json:"next_before"`
	NextAfter  json.RawMessage `json:"next_after"`
}

// cursor returns a page cursor: "" for null, failing when it is absent or
// not a string.
func cursor(t testing.TB, name string, raw json.RawMessage) string {
	t.Helper()
	if raw == nil {
		t.Fatalf("%s is missing from the page (want an ID or null)", name)
	}
	if string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s = %s, want a string ID or null", name, raw)
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		t.Fatalf("%s = %q is not a decimal ID", name, s)
	}
	return s
}

// id64 parses a message ID as an unsigned 64-bit decimal.
func id64(t testing.TB, id string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatalf("ID %q is not an unsigned 64-bit decimal: %v", id, err)
	}
	return v
}

// checkMessage asserts the shape every Message must have.
func checkMessage(t testing.TB, m apiMessage) {
	t.Helper()
	if m.ID == "" || m.ID == "0" {
		t.Errorf("message ID %q", m.ID)
	}
	id64(t, m.ID)
	if m.Conversation == "" || m.Sender == "" || m.ClientID == "" {
		t.Errorf("message lacks conversation, sender or client_id: %+v", m)
	}
	if !sentAtRE.MatchString(m.SentAt) {
		t.Errorf("sent_at %q is not RFC 3339 with milliseconds in UTC", m.SentAt)
	} else if at, err := time.Parse(time.RFC3339Nano, m.SentAt); err != nil || time.Since(at) > time.Hour || time.Until(at) > time.Minute {
		t.Errorf("sent_at %q is not a plausible time (%v)", m.SentAt, err)
	}
}

// env is one gateway on its harness (embedded NATS, store) and clients.
type env struct {
	gw     *gateway.Process
	base   string // http://host:port, no trailing slash
	wsBase string // ws://host:port/ws
	client *http.Client
	seq    atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	addr, gw := gateway.NewHarness(t, func(c *gateway.Config) {
		c.JWTSecret = []byte(testSecret)
		c.Drain = time.Second
	})
	base := "http://" + addr
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	e := &env{gw: gw, base: base, wsBase: "ws://" + addr + "/ws", client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	// Registered after the harness's cleanup, so it runs before it.
	t.Cleanup(tr.CloseIdleConnections)
	return e
}

// name returns a fresh valid username starting with prefix.
func (e *env) name(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, e.seq.Add(1))
}

// do makes an HTTP request. body: nil (none), string or []byte (sent as
// is), anything else (JSON).
func (e *env) do(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	// All bodies are UTF-8 JSON.
	if strings.HasPrefix(path, "/api/") && len(b) > 0 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, b
}

// call makes a request that must answer want, decoding the body into out.
func (e *env) call(t testing.TB, method, path, token string, body any, want int, out any) {
	t.Helper()
	status, b := e.do(t, method, path, token, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, path, b, err)
		}
	}
}

// fail makes a request that must fail with status and error code, in the
// protocol's error shape.
func (e *env) fail(t testing.TB, method, path, token string, body any, status int, code string) {
	t.Helper()
	got, b := e.do(t, method, path, token, body)
	if got != status {
		t.Errorf("%s %s (body %.80v): status %d, want %d %s; body %s", method, path, body, got, status, code, b)
		return
	}
	checkErrorBody(t, b, code)
}

// checkErrorBody asserts {"error": {"code": code, "message": "..."}}.
func checkErrorBody(t testing.TB, b []byte, code string) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Errorf("error body %q is not a JSON object: %v", b, err)
		return
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(top["error"], &inner); err != nil {
		t.Errorf("error body %s has no error object", b)
		return
	}
	var gotCode, msg string
	if json.Unmarshal(inner["code"], &gotCode) != nil || json.Unmarshal(inner["message"], &msg) != nil {
		t.Errorf("error body %s: code and message must be strings", b)
		return
	}
	if gotCode != code {
		t.Errorf("error code %q, want %q (body %s)", gotCode, code, b)
	}
	if msg == "" {
		t.Errorf("error body %s has an empty message", b)
	}
}

// signup creates a user (username folded by the server) and returns it.
func (e *env) signup(t testing.TB, username, display string) account {
	t.Helper()
	var a account
	e.call(t, "POST", "/api/v1/signup", "", map[string]string{"username": username, "password": testPassword, "display_name": display}, http.StatusCreated, &a)
	if a.Token == "" || a.User.ID == "" {
		t.Fatalf("signup %s: no token or user ID: %+v", username, a)
	}
	a.Password = testPassword
	return a
}

// users signs up n users named prefixN with display names Prefix N.
func (e *env) users(t testing.TB, prefix string, n int) []account {
	t.Helper()
	out := make([]account, n)
	for i := range out {
		name := e.name(prefix)
		out[i] = e.signup(t, name, "Display "+name)
	}
	return out
}

func (e *env) direct(t testing.TB, a account, other string) apiConversation {
	t.Helper()
	var c apiConversation
	e.call(t, "POST", "/api/v1/conversations/direct", a.Token, map[string]string{"username": other}, http.StatusOK, &c)
	return c
}

func (e *env) group(t testing.TB, a account, title string, members ...string) apiConversation {
	t.Helper()
	if members == nil {
		members = []string{}
	}
	var c apiConversation
	e.call(t, "POST", "/api/v1/conversations", a.Token, map[string]any{"title": title, "members": members}, http.StatusCreated, &c)
	return c
}

func (e *env) conversations(t testing.TB, a account) []apiConversation {
	t.Helper()
	var body struct {
		Conversations []apiConversation `json:"conversations"`
	}
	e.call(t, "GET", "/api/v1/conversations", a.Token, nil, http.StatusOK, &body)
	return body.Conversations
}

func findConv(t testing.TB, list []apiConversation, id string) apiConversation {
	t.Helper()
	for _, c := range list {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("conversation %s not in the list %+v", id, list)
	return apiConversation{}
}

// history asks GET .../messages with query (e.g. "before=1&limit=2").
func (e *env) history(t testing.TB, a account, conv, query string) page {
	t.Helper()
	var p page
	e.call(t, "GET", "/api/v1/conversations/"+url.PathEscape(conv)+"/messages?"+query, a.Token, nil, http.StatusOK, &p)
	for _, m := range p.Messages {
		checkMessage(t, m)
	}
	return p
}

// token signs claims with secret (HS256) or, with secret nil, alg none.
func signToken(t testing.TB, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	if secret == nil {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsFor are the claims of a valid token for a, as the server issues.
func claimsFor(a account) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": a.User.ID, "name": a.User.Username, "iss": "chat", "aud": []string{"chat-clients"},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		// Tokens name their session since issue 14; one that was never
		// revoked passes.
		"sid": "1",
	}
}

// badTokens are tokens for a that must all be refused; each differs from
// a valid self-signed token (also returned) in one way.
func badTokens(t testing.TB, a account) (valid string, bad map[string]string) {
	t.Helper()
	with := func(k string, v any) jwt.MapClaims {
		c := claimsFor(a)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	secret := []byte(testSecret)
	past := time.Now().Add(-time.Hour).Unix()
	return signToken(t, secret, claimsFor(a)), map[string]string{
		"garbage":        "not.a.token",
		"expired":        signToken(t, secret, with("exp", past)),
		"no expiry":      signToken(t, secret, with("exp", nil)),
		"wrong audience": signToken(t, secret, with("aud", []string{"someone-else"})),
		"wrong issuer":   signToken(t, secret, with("iss", "not-chat")),
		"alg none":       signToken(t, nil, claimsFor(a)),
		"wrong secret":   signToken(t, []byte("another-secret-of-32-bytes-or-more!!"), claimsFor(a)),
		"no session":     signToken(t, secret, with("sid", nil)),
	}
}

// frame is one server frame; Raw is the whole JSON.
type frame struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
	Code string          `json:"code"`
	Raw  []byte          `json:"-"`
}

func (f frame) String() string { return string(f.Raw) }

// decode decodes the frame's JSON into v.
func (f frame) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(f.Raw, v); err != nil {
		t.Fatalf("frame %s: %v", f.Raw, err)
	}
}

// hasID reports whether the frame echoes the request id (a JSON string).
func (f frame) hasID(id string) bool {
	var s string
	return json.Unmarshal(f.ID, &s) == nil && s == id
}

// wsClient is a WebSocket connection whose frames a goroutine reads into
// a queue, so that a test can take the frames it expects in any order
// (nothing is dropped: a frame not taken stays queued) and can check that
// a frame did not come without closing the connection.
type wsClient struct {
	name string
	c    *websocket.Conn
	done chan struct{} // closed when the reader stops

	mu     sync.Mutex
	queue  []frame
	notify chan struct{}
	err    error // why the reader stopped
}

// dial opens a WebSocket with ?token= and returns the client once its
// first frame, which must be hello, arrived.
func (e *env) dial(t testing.TB, name, token string) (*wsClient, helloFrame) {
	t.Helper()
	c := e.dialNoHello(t, name, e.wsBase+"?token="+url.QueryEscape(token), nil)
	return c, c.hello(t)
}

// dialNoHello opens a WebSocket, failing unless the upgrade succeeds.
func (e *env) dialNoHello(t testing.TB, name, u string, h http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: e.client, HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", name, err, status)
	}
	conn.SetReadLimit(8 << 20)
	c := &wsClient{name: name, c: conn, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	go c.read()
	t.Cleanup(func() { c.close() })
	return c
}

// refused asserts that a WebSocket upgrade is answered HTTP 401.
func (e *env) refused(t testing.TB, what, u string, h http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: e.client, HTTPHeader: h})
	if err == nil {
		conn.CloseNow()
		t.Errorf("%s: upgrade succeeded, want HTTP 401", what)
		return
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("%s: HTTP %d (%v), want 401 before any frame", what, status, err)
	}
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		typ, b, err := c.c.Read(context.Background())
		if err == nil && typ != websocket.MessageText {
			err = fmt.Errorf("server sent a %v frame", typ)
		}
		c.mu.Lock()
		if err != nil {
			c.err = err
		} else {
			f := frame{Raw: b}
			if jerr := json.Unmarshal(b, &f); jerr != nil {
				f.Type = "!not-json"
			}
			c.queue = append(c.queue, f)
		}
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// close closes the connection and waits for its reader. Safe twice.
func (c *wsClient) close() {
	_ = c.c.Close(websocket.StatusNormalClosure, "")
	c.c.CloseNow()
	<-c.done
}

// take removes and returns the first queued frame for which match is
// true, waiting up to frameWait for it; other frames stay queued.
func (c *wsClient) take(t testing.TB, what string, match func(frame) bool) frame {
	t.Helper()
	f, ok := c.tryTake(frameWait, match)
	if !ok {
		c.mu.Lock()
		q, err := c.queue, c.err
		c.mu.Unlock()
		t.Fatalf("%s: no %s within %v (connection error: %v); queued: %v", c.name, what, frameWait, err, q)
	}
	return f
}

func (c *wsClient) tryTake(wait time.Duration, match func(frame) bool) (frame, bool) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		for i, f := range c.queue {
			if match(f) {
				c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
				c.mu.Unlock()
				return f, true
			}
		}
		stopped := c.err != nil
		c.mu.Unlock()
		if stopped {
			return frame{}, false
		}
		select {
		case <-c.notify:
		case <-timer.C:
			return frame{}, false
		}
	}
}

// none asserts that no queued frame matches (call after a barrier).
func (c *wsClient) none(t testing.TB, what string, match func(frame) bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.queue {
		if match(f) {
			t.Errorf("%s: got %s, want none: %s", c.name, what, f.Raw)
		}
	}
}

func ofType(ty string) func(frame) bool { return func(f frame) bool { return f.Type == ty } }

// reply matches the answer (any type) to the request with this id.
func reply(id string) func(frame) bool { return func(f frame) bool { return f.hasID(id) } }

// eventually polls check until it returns nil, failing with its last
// error after 10 s. For state the protocol does not promise to be
// read-your-writes (the conversation list), not for anything it does.
func eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(frameWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: still after %v: %v", what, frameWait, err)
			return
		}
		<-tick.C
	}
}

// write sends v as one JSON text frame.
func (c *wsClient) write(t testing.TB, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	c.writeRaw(t, websocket.MessageText, b)
}

func (c *wsClient) writeRaw(t testing.TB, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	if err := c.c.Write(ctx, typ, b); err != nil {
		t.Fatalf("%s: write: %v", c.name, err)
	}
}

// request writes v (which carries id) and returns the frame answering it.
func (c *wsClient) request(t testing.TB, id string, v any) frame {
	t.Helper()
	c.write(t, v)
	return c.take(t, "answer to "+id, reply(id))
}

// errorFor expects an error frame with code answering request id. An
// error frame without any id is taken too (and fails the test), so that a
// server that does not echo the id fails fast and says why.
func (c *wsClient) errorFor(t testing.TB, id string, v any, code string) {
	t.Helper()
	c.write(t, v)
	f := c.take(t, "answer to "+id, func(f frame) bool { return f.hasID(id) || f.Type == "error" && f.ID == nil })
	if !f.hasID(id) {
		t.Errorf("%s: request %s answered %s, want error %s with id %q", c.name, v, f.Raw, code, id)
		return
	}
	if f.Type != "error" || f.Code != code {
		t.Errorf("%s: request %s answered %s, want error %s", c.name, v, f.Raw, code)
		return
	}
	var e struct {
		Message string `json:"message"`
	}
	f.decode(t, &e)
	if e.Message == "" {
		t.Errorf("error frame %s has no message", f.Raw)
	}
}

type sendReq struct {
	Type         string `json:"type"`
	ID           string `json:"id"`
	Conversation string `json:"conversation"`
	ClientID     string `json:"client_id"`
	Body         string `json:"body"`
}

var reqSeq atomic.Int64

func nextID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, reqSeq.Add(1)) }

// send sends a message and returns the acked message.
func (c *wsClient) send(t testing.TB, conv, clientID, body string) apiMessage {
	t.Helper()
	id := nextID("send")
	f := c.request(t, id, sendReq{"send", id, conv, clientID, body})
	return ackMessage(t, f)
}

func ackMessage(t testing.TB, f frame) apiMessage {
	t.Helper()
	if f.Type != "ack" {
		t.Fatalf("want ack, got %s", f.Raw)
	}
	var a struct {
		Message apiMessage `json:"message"`
	}
	f.decode(t, &a)
	checkMessage(t, a.Message)
	return a.Message
}

// sendMany sends n messages (bodies "<prefix> i") pipelined and returns
// the acked messages in send order. Sends beyond the per-connection burst
// go through fresh connections, so the rate limit never interferes.
func (e *env) sendMany(t testing.TB, a account, conv, prefix string, n int) []apiMessage {
	t.Helper()
	out := make([]apiMessage, 0, n)
	for len(out) < n {
		c, _ := e.dial(t, "sender "+a.User.Username, a.Token)
		batch := min(n-len(out), 40)
		ids := make([]string, batch)
		for i := range ids {
			ids[i] = nextID("many")
			k := len(out) + i
			c.write(t, sendReq{"send", ids[i], conv, fmt.Sprintf("%s-%d", prefix, k), fmt.Sprintf("%s %d", prefix, k)})
		}
		for _, id := range ids {
			out = append(out, ackMessage(t, c.take(t, "ack "+id, reply(id))))
		}
		c.close()
	}
	return out
}

// hello takes the first frame, which must be hello.
func (c *wsClient) hello(t testing.TB) helloFrame {
	t.Helper()
	f := c.take(t, "first frame", func(frame) bool { return true })
	if f.Type != "hello" {
		t.Fatalf("%s: first frame %s, want hello", c.name, f.Raw)
	}
	var h helloFrame
	f.decode(t, &h)
	return h
}

type helloFrame struct {
	User          apiUser           `json:"user"`
	Conversations []apiConversation `json:"conversations"`
}

// historyFrame asks history over the WebSocket; extra holds before, after
// and limit.
func (c *wsClient) history(t testing.TB, conv string, extra map[string]any) page {
	t.Helper()
	id := nextID("hist")
	req := map[string]any{"type": "history", "id": id, "conversation": conv}
	for k, v := range extra {
		req[k] = v
	}
	f := c.request(t, id, req)
	if f.Type != "history" {
		t.Fatalf("%s: history answered %s", c.name, f.Raw)
	}
	var p page
	f.decode(t, &p)
	for _, m := range p.Messages {
		checkMessage(t, m)
	}
	return p
}

// closeStatus waits for the server to close the connection and returns
// the close code it sent (-1 when it sent none).
func (c *wsClient) closeStatus(t testing.TB) websocket.StatusCode {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(frameWait):
		t.Fatalf("%s: still open after %v", c.name, frameWait)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return websocket.CloseStatus(c.err)
}

// rawWS is a WebSocket client over a bare TCP connection that writes
// frames by hand (masked, as RFC 6455 requires of clients).
type rawWS struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw performs the opening handshake and returns the raw client with
// the server's first frame (hello) read.
func (e *env) dialRaw(t testing.TB, token string) *rawWS {
	t.Helper()
	return e.dialRawBuf(t, token, 0)
}

// dialRawBuf is dialRaw with the socket's receive buffer set to rcvbuf
// bytes before connecting (0: the system's default, autotuned).
func (e *env) dialRawBuf(t testing.TB, token string, rcvbuf int) *rawWS {
	t.Helper()
	u, _ := url.Parse(e.base)
	d := net.Dialer{Timeout: frameWait}
	if rcvbuf > 0 {
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(frameWait))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(conn, "GET /ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		url.QueryEscape(token), u.Host, base64.StdEncoding.EncodeToString(key))
	r := &rawWS{conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		t.Fatalf("raw handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake: HTTP %d", resp.StatusCode)
	}
	op, p, err := r.readFrame()
	if err != nil || op != 1 || !bytes.Contains(p, []byte(`"hello"`)) {
		t.Fatalf("raw: first frame op %d %.100s (%v), want hello", op, p, err)
	}
	return r
}

// writeFrame writes one masked frame.
func (r *rawWS) writeFrame(t testing.TB, fin bool, op byte, payload []byte) {
	t.Helper()
	var hdr []byte
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = []byte{b0, 0x80 | byte(n)}
	case n < 1<<16:
		hdr = []byte{b0, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
	default:
		hdr = make([]byte, 10)
		hdr[0], hdr[1] = b0, 0x80|127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	masked := make([]byte, len(payload))
	for i := range payload {
		masked[i] = payload[i] ^ mask[i%4]
	}
	_ = r.conn.SetWriteDeadline(time.Now().Add(frameWait))
	buf := append(append(hdr, mask...), masked...)
	if _, err := r.conn.Write(buf); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// readFrame reads one (unmasked, unfragmented) server frame.
func (r *rawWS) readFrame() (op byte, payload []byte, err error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(frameWait))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, errors.New("server frame fragmented or masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(r.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := io.ReadFull(r.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r.br, payload)
	return h[0] & 0x0f, payload, err
}

// awaitText reads frames until a text frame containing want.
func (r *rawWS) awaitText(t testing.TB, want string) {
	t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			t.Fatalf("raw: waiting for %s: %v", want, err)
		}
		if op == 8 {
			t.Fatalf("raw: closed (%x) while waiting for %s", p, want)
		}
		if op == 1 && bytes.Contains(p, []byte(want)) {
			return
		}
	}
}

// drainToEnd reads frames until the server ends the connection. It
// returns the close frame's code (-1: the connection ended without one)
// and how many text frames came first; it fails if the connection is
// still open after wait.
func (r *rawWS) drainToEnd(t testing.TB, wait time.Duration) (code, texts int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("raw: connection still open after %v (%d text frames read)", wait, texts)
		}
		op, p, err := r.readFrame()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("raw: connection still open, silent for %v (%d text frames read)", frameWait, texts)
		case err != nil:
			return -1, texts
		case op == 8 && len(p) >= 2:
			return int(binary.BigEndian.Uint16(p)), texts
		case op == 8:
			return -1, texts
		case op == 1:
			texts++
		}
	}
}

// awaitClose reads frames until a close frame and returns its code, then
// checks that the server closes the TCP connection.
func (r *rawWS) awaitClose(t testing.TB) int {
	t.Helper()
	for {
		op, p, err := r.readFrame()
		if err != nil {
			t.Fatalf("raw: waiting for a close frame: %v", err)
		}
		if op != 8 {
			continue
		}
		if len(p) < 2 {
			return -1
		}
		code := int(binary.BigEndian.Uint16(p))
		if _, err := io.Copy(io.Discard, r.br); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("raw: server did not close the TCP connection after its close frame")
			}
		}
		return code
	}
}
