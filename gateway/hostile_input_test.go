//go:build unix

package gateway_test

// The hostile-input suite (issue 14, part 5): what an attacker sends, as an
// attacker sends it. Each case holds the server to three things:
//
//   - a clear error: the JSON error envelope, an error frame with its code,
//     or a documented close code, never a hang or a crash;
//   - nothing changes: the state an attack aimed at is read back after it;
//   - nobody else pays: a well-behaved client (the bystander) completes a
//     round trip (a new upgrade with its hello, a ping, a send with its ack
//     and delivery, an HTTP call) while the attack runs, within a generous
//     deadline (no timing threshold: a stalled server fails by not
//     answering), and the process's heap after GC grows by a bounded amount.
//
// Limits other helpers add (per-user connections and send rates, groups per
// hour, display-name and title rules) extend the tables and cases here: the
// places are marked "extend:".

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatcluster/chat/gateway"
	"github.com/chatcluster/chat/store/storeclient"
)

// hostileWait bounds how long anything in this suite may take to happen:
// far above a loaded CI machine's worst, far below "never".
const hostileWait = 30 * time.Second

// newHostileEnv is newBigEnv with the test's changes to the gateway's
// configuration.
func newHostileEnv(t *testing.T, mod func(*gateway.Config)) *bigEnv {
	t.Helper()
	addr, gw, nc := gateway.NewHarnessNATS(t, func(c *gateway.Config) {
		c.JWTSecret = []byte(testSecret)
		c.Drain = time.Second
		if mod != nil {
			mod(c)
		}
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	e := &env{gw: gw, base: "http://" + addr, wsBase: "ws://" + addr + "/ws", client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
	return &bigEnv{env: e, st: storeclient.NewClient(nc, storeclient.ClientConfig{Timeout: 30 * time.Second})}
}

// bystander is a well-behaved pair of users with a direct conversation and
// an open connection each.
type bystander struct {
	e      *bigEnv
	a, b   account
	ca, cb *wsClient
	conv   string
	sent   []string // IDs of the messages it sent, in order
}

func newBystander(t *testing.T, e *bigEnv) *bystander {
	t.Helper()
	us := e.fastUsers(t, "calm", 2)
	by := &bystander{e: e, a: us[0], b: us[1]}
	by.conv = e.direct(t, by.a, by.b.User.Username).ID
	by.ca, _ = e.dial(t, "bystander a", by.a.Token)
	by.cb, _ = e.dial(t, "bystander b", by.b.Token)
	return by
}

// roundTrip is what an ordinary user does; each step must be answered
// within frameWait (the clients' own bound), however busy the server is.
func (by *bystander) roundTrip(t *testing.T) {
	t.Helper()
	fresh, _ := by.e.dial(t, "bystander fresh", by.a.Token) // an upgrade and its hello
	fresh.close()
	id := nextID("calm-ping")
	if f := by.ca.request(t, id, map[string]any{"type": "ping", "id": id}); f.Type != "pong" {
		t.Fatalf("bystander ping answered %s", f.Raw)
	}
	m := by.ca.send(t, by.conv, nextID("calm"), "still here")
	by.sent = append(by.sent, m.ID)
	by.cb.take(t, "the bystander's message", func(f frame) bool {
		return f.Type == "message" && bytes.Contains(f.Raw, []byte(`"id":"`+m.ID+`"`))
	})
	var me apiUser
	by.e.call(t, "GET", "/api/v1/me", by.a.Token, nil, http.StatusOK, &me)
}

// checkUntouched reads the bystanders' conversation back: exactly its own
// messages, nothing an attacker slipped in.
func (by *bystander) checkUntouched(t *testing.T) {
	t.Helper()
	p := by.e.history(t, by.a, by.conv, "limit=200")
	if len(p.Messages) != len(by.sent) {
		t.Fatalf("the bystanders' conversation holds %d messages, want their %d", len(p.Messages), len(by.sent))
	}
	for i, m := range p.Messages { // newest first
		if want := by.sent[len(by.sent)-1-i]; m.ID != want || m.Sender != by.a.User.ID {
			t.Errorf("message %d: %s from %s, want %s from the bystander", i, m.ID, m.Sender, want)
		}
	}
}

// during runs the attacks, each in a goroutine of its own looping until
// told to stop (each completes at least one full pass), runs check
// meanwhile, then stops and waits for them and reports their errors.
func during(t *testing.T, check func(), attacks ...func(stop <-chan struct{}) error) {
	t.Helper()
	stop := make(chan struct{})
	errs := make([]error, len(attacks))
	var wg sync.WaitGroup
	for i, a := range attacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a(stop)
		}()
	}
	check()
	close(stop)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("attack %d: %v", i, err)
		}
	}
}

// loop runs one pass of an attack, then more until stop.
func loop(stop <-chan struct{}, pass func() error) error {
	for {
		if err := pass(); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		default:
		}
	}
}

// heapNow is the live heap after a full collection.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// checkHeap fails when the heap grew by more than bound since before.
func checkHeap(t *testing.T, what string, before uint64, bound uint64) {
	t.Helper()
	after := heapNow()
	if after > before && after-before > bound {
		t.Errorf("%s: the heap grew by %d MiB (from %d to %d MiB), bound %d MiB",
			what, (after-before)>>20, before>>20, after>>20, bound>>20)
	}
}

// rawPost sends body as is (a goroutine may call it: it returns errors).
func rawPost(e *bigEnv, path, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest("POST", e.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// errorCode is the code of a JSON error envelope ("" when it is not one).
func errorCode(b []byte) string {
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &env) != nil || env.Error.Message == "" {
		return ""
	}
	return env.Error.Code
}

func nested(n int, open, close string) []byte {
	return []byte(strings.Repeat(open, n) + strings.Repeat(close, n))
}

// 1. Oversized and deeply nested JSON, over HTTP and as frames, and
// invalid UTF-8: a clear error each, nothing stored, others unaffected.
func TestHostileJSON(t *testing.T) {
	e := newHostileEnv(t, nil)
	by := newBystander(t, e)
	victim := e.fastUsers(t, "victim", 1)[0]
	before := heapNow()

	type bodyCase struct {
		what, path string
		token      bool
		body       []byte
		status     int
	}
	// The usernames these try to create must not exist afterwards.
	bodies := []bodyCase{
		{"100k nested arrays", "/api/v1/signup", false, nested(100_000, "[", "]"), http.StatusRequestEntityTooLarge},
		{"100k unclosed arrays", "/api/v1/signup", false, []byte(strings.Repeat("[", 100_000)), http.StatusRequestEntityTooLarge},
		{"a megabyte of JSON", "/api/v1/signup", false, []byte(`{"username":"hostile-mb","password":"` + strings.Repeat("p", 1<<20) + `"}`), http.StatusRequestEntityTooLarge},
		{"30k nested arrays under the size limit", "/api/v1/signup", false, nested(30_000, "[", "]"), http.StatusBadRequest},
		{"nested objects in a field", "/api/v1/signup", false, append(append([]byte(`{"username":`), nested(10_001, `{"a":`, "}")...), '}'), http.StatusBadRequest},
		{"nested login", "/api/v1/login", false, nested(30_000, "[", "]"), http.StatusBadRequest},
		{"invalid UTF-8 in a username", "/api/v1/signup", false, []byte("{\"username\":\"hostile-\xff\",\"password\":\"" + testPassword + "\"}"), http.StatusBadRequest},
		{"invalid UTF-8 in a display name", "/api/v1/signup", false, []byte("{\"username\":\"hostile-utf8\",\"password\":\"" + testPassword + "\",\"display_name\":\"a\xc0\xafb\"}"), http.StatusBadRequest},
		{"a surrogate encoded in UTF-8", "/api/v1/signup", false, []byte("{\"username\":\"hostile-sur\",\"password\":\"" + testPassword + "\",\"display_name\":\"\xed\xa0\x80\"}"), http.StatusBadRequest},
		{"nested title", "/api/v1/conversations", true, append(append([]byte(`{"title":`), nested(20_000, "[", "]")...), '}'), http.StatusBadRequest},
		{"invalid UTF-8 in a title", "/api/v1/conversations", true, []byte("{\"title\":\"\xff\xfe\",\"members\":[]}"), http.StatusBadRequest},
		{"a title of 65 KiB", "/api/v1/conversations", true, []byte(`{"title":"` + strings.Repeat("t", 65<<10) + `","members":[]}`), http.StatusRequestEntityTooLarge},
	}
	httpAttack := func(stop <-chan struct{}) error {
		return loop(stop, func() error {
			for _, c := range bodies {
				token := ""
				if c.token {
					token = victim.Token
				}
				status, b, err := rawPost(e, c.path, token, c.body)
				if err != nil {
					return fmt.Errorf("%s: %w", c.what, err)
				}
				if status != c.status || errorCode(b) != "invalid_request" {
					return fmt.Errorf("%s: %d %.200s, want %d invalid_request", c.what, status, b, c.status)
				}
			}
			return nil
		})
	}

	// Frames: each is answered with an error frame and the connection
	// stays open (a ping after it is answered).
	frames := []struct {
		what    string
		payload []byte
		code    string
	}{
		{"32k nested arrays, 65,536 bytes", nested(32_768, "[", "]"), "bad_request"},
		{"nested id", append(append([]byte(`{"type":"ping","id":`), nested(20_000, "[", "]")...), '}'), "bad_request"},
		{"nested objects", nested(10_001, `{"a":`, "}"), "bad_request"},
		{"a send nested in its conversation", append(append([]byte(`{"type":"send","id":"n","client_id":"c","body":"b","conversation":`), nested(20_000, "[", "]")...), '}'), "bad_request"},
		{"a string of 65,000 quotes", []byte(`"` + strings.Repeat(`\"`, 32_000) + `"`), "bad_request"},
	}
	attacker := e.fastUsers(t, "attacker", 1)[0]
	wsAttack := func(stop <-chan struct{}) error {
		r, err := dialRawErr(e, attacker.Token)
		if err != nil {
			return err
		}
		defer r.conn.Close()
		return loop(stop, func() error {
			for _, f := range frames {
				if err := r.writeFrameErr(true, 1, f.payload); err != nil {
					return fmt.Errorf("%s: %w", f.what, err)
				}
				got, err := r.nextText()
				if err != nil {
					return fmt.Errorf("%s: %w", f.what, err)
				}
				if msgType(got) != "error" || !bytes.Contains(got, []byte(`"code":"`+f.code+`"`)) {
					return fmt.Errorf("%s: answered %.200s, want error %s", f.what, got, f.code)
				}
			}
			if err := r.writeFrameErr(true, 1, []byte(`{"type":"ping","id":"alive"}`)); err != nil {
				return err
			}
			got, err := r.nextText()
			if err != nil || msgType(got) != "pong" {
				return fmt.Errorf("ping after the bad frames: %.200s %v", got, err)
			}
			return nil
		})
	}
	during(t, func() {
		for range 3 {
			by.roundTrip(t)
		}
	}, httpAttack, httpAttack, wsAttack)

	// Frames that close the connection, each with its code.
	for _, c := range []struct {
		what    string
		payload []byte
		code    int
	}{
		{"65,537 bytes of nested arrays", append(nested(32_768, "[", "]"), ' '), 1009},
		{"invalid UTF-8", []byte("{\"type\":\"ping\",\"id\":\"\xc0\xaf\"}"), 1007},
		{"a UTF-8 surrogate", []byte("{\"type\":\"ping\",\"id\":\"\xed\xa0\x80\"}"), 1007},
	} {
		r := e.dialRaw(t, attacker.Token)
		r.writeFrame(t, true, 1, c.payload)
		if code := r.awaitClose(t); code != c.code {
			t.Errorf("%s: close code %d, want %d", c.what, code, c.code)
		}
	}

	// Nothing changed: no account was made, the victim is in no
	// conversation, the bystanders' conversation is theirs alone.
	for _, name := range []string{"hostile-mb", "hostile-utf8", "hostile-sur"} {
		var users struct {
			Users []apiUser `json:"users"`
		}
		e.call(t, "GET", "/api/v1/users?prefix="+name, victim.Token, nil, http.StatusOK, &users)
		if len(users.Users) != 0 {
			t.Errorf("an attack created the account %+v", users.Users)
		}
	}
	if cs := e.conversations(t, victim); len(cs) != 0 {
		t.Errorf("an attack created conversations for the victim: %+v", cs)
	}
	by.checkUntouched(t)
	checkHeap(t, "nested and oversized JSON", before, 32<<20)
}

// dialRawErr is env.dialRaw for goroutines: it returns errors.
func dialRawErr(e *bigEnv, token string) (*rawWS, error) {
	u, _ := url.Parse(e.base)
	conn, err := net.DialTimeout("tcp", u.Host, frameWait)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(frameWait))
	fmt.Fprintf(conn, "GET /ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		url.QueryEscape(token), u.Host)
	r := &rawWS{conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade: HTTP %d", resp.StatusCode)
	}
	if got, err := r.nextText(); err != nil || msgType(got) != "hello" {
		conn.Close()
		return nil, fmt.Errorf("first frame %.100s (%v), want hello", got, err)
	}
	return r, nil
}

// writeFrameErr is writeFrame for goroutines.
func (r *rawWS) writeFrameErr(fin bool, op byte, payload []byte) error {
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
	// A zero mask: the payload travels as it is (RFC 6455 allows any key;
	// the server must unmask either way).
	buf := append(append(hdr, 0, 0, 0, 0), payload...)
	_ = r.conn.SetWriteDeadline(time.Now().Add(frameWait))
	_, err := r.conn.Write(buf)
	return err
}

// nextText returns the next text frame; a close frame is an error naming
// its code.
func (r *rawWS) nextText() ([]byte, error) {
	for {
		op, p, err := r.readFrame()
		if err != nil {
			return nil, err
		}
		switch op {
		case 1:
			return p, nil
		case 8:
			return nil, &closedError{code: closeCode(p)}
		}
	}
}

type closedError struct{ code int }

func (e *closedError) Error() string { return fmt.Sprintf("closed with %d", e.code) }

func closeCode(p []byte) int {
	if len(p) < 2 {
		return -1
	}
	return int(binary.BigEndian.Uint16(p))
}

// errCode is the close code in err, or 0.
func errCode(err error) int {
	var ce *closedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 0
}

// msgType is a frame's "type".
func msgType(b []byte) string {
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &f)
	return f.Type
}

// 1. Every field at its limit (accepted) and one past it (a clear error,
// nothing stored), with Unicode edge cases: limits count code points, not
// bytes, so the at-limit values use multi-byte characters.
func TestHostileFieldLimits(t *testing.T) {
	e := newHostileEnv(t, nil)
	by := newBystander(t, e)
	u := e.fastUsers(t, "limits", 2)
	a, other := u[0], u[1]
	rep := strings.Repeat
	signup := func(username, password, display string) (int, []byte) {
		return e.do(t, "POST", "/api/v1/signup", "", map[string]string{"username": username, "password": password, "display_name": display})
	}

	t.Run("signup", func(t *testing.T) {
		ok := []struct{ what, username, password, display string }{
			{"username of 3", "abc", testPassword, ""},
			{"username of 32", rep("u", 32), testPassword, ""},
			{"password of 8 code points", "pw-min", rep("é", 8), ""},
			{"password of 256 code points", "pw-max", rep("😀", 256), ""},
			{"display name of 64 code points", "dn-max", testPassword, rep("é", 64)},
			{"display name of 64 emoji", "dn-emoji", testPassword, rep("👩‍", 32)},
			{"right-to-left display name", "dn-rtl", testPassword, "مرحبا بالعالم"},
		}
		for _, c := range ok {
			if status, b := signup(c.username, c.password, c.display); status != http.StatusCreated {
				t.Errorf("%s: %d %s, want 201", c.what, status, b)
			}
		}
		bad := []struct{ what, username, password, display string }{
			{"username of 2", "ab", testPassword, ""},
			{"username of 33", rep("v", 33), testPassword, ""},
			{"password of 7 code points", "pw-short", rep("é", 7), ""},
			{"password of 257 code points", "pw-long", rep("😀", 257), ""},
			{"display name of 65 code points", "dn-long", testPassword, rep("é", 65)},
			// Usernames: one spelling per name, ASCII only.
			{"fullwidth letters", "ｆｕｌｌｗｉｄｔｈ", testPassword, ""},
			{"Kelvin sign", "\u212Aelvin", testPassword, ""},
			{"Cyrillic a (a confusable)", "\u0430lice-cyr", testPassword, ""},
			{"zero-width joiner", "zw\u200Dj-name", testPassword, ""},
			{"zero-width space", "zw\u200Bs-name", testPassword, ""},
			{"right-to-left override", "rlo\u202Ename", testPassword, ""},
			{"NUL", "nul\x00name", testPassword, ""},
			{"combining accent", "e\u0301-name", testPassword, ""},
			{"ligature", "\uFB01le-name", testPassword, ""},
			{"space", "two words", testPassword, ""},
			{"slash", "a/b-name", testPassword, ""},
			{"a username of 1000 bytes", rep("\u212A", 333), testPassword, ""},
			// extend: display-name rules (control, zero-width, bidi
			// override characters; another user's name) when they land.
		}
		for _, c := range bad {
			status, b := signup(c.username, c.password, c.display)
			if status != http.StatusBadRequest || errorCode(b) != "invalid_request" {
				t.Errorf("%s: %d %s, want 400 invalid_request", c.what, status, b)
			}
		}
		// Nothing refused was stored, and a look-alike never logs in as
		// the name it imitates.
		for _, name := range []string{"ab", rep("v", 33), "pw-short", "pw-long", "dn-long"} {
			e.fail(t, "POST", "/api/v1/login", "", map[string]string{"username": name, "password": testPassword}, http.StatusUnauthorized, "unauthorized")
		}
		for _, lookalike := range []string{"ＡＢＣ", "\u212Abc", "\u0430bc", "ab\u200Dc"} {
			e.fail(t, "POST", "/api/v1/login", "", map[string]string{"username": lookalike, "password": testPassword}, http.StatusUnauthorized, "unauthorized")
		}
		var users struct {
			Users []apiUser `json:"users"`
		}
		e.call(t, "GET", "/api/v1/users?prefix=pw-", a.Token, nil, http.StatusOK, &users)
		if len(users.Users) != 2 {
			t.Errorf("users pw-*: %+v, want pw-max and pw-min only", users.Users)
		}
	})

	t.Run("search prefix", func(t *testing.T) {
		e.call(t, "GET", "/api/v1/users?prefix="+rep("p", 32), a.Token, nil, http.StatusOK, nil)
		e.fail(t, "GET", "/api/v1/users?prefix="+rep("p", 33), a.Token, nil, http.StatusBadRequest, "invalid_request")
		// A look-alike finds nobody: it is refused, not folded into "k".
		e.fastUsers(t, "kelvin", 1)
		for _, p := range []string{"\u212Aelvin", "ｋelvin", "KELVIN"} {
			status, b := e.do(t, "GET", "/api/v1/users?prefix="+url.QueryEscape(p), a.Token, nil)
			if p == "KELVIN" {
				if status != http.StatusOK || !bytes.Contains(b, []byte(`"kelvin`)) {
					t.Errorf("prefix %q: %d %s, want the kelvin user (ASCII folds)", p, status, b)
				}
				continue
			}
			if status != http.StatusBadRequest || errorCode(b) != "invalid_request" {
				t.Errorf("prefix %q: %d %s, want 400 invalid_request", p, status, b)
			}
		}
	})

	t.Run("group title and members", func(t *testing.T) {
		before := len(e.conversations(t, a))
		e.group(t, a, rep("é", 128))
		e.group(t, a, rep("😀", 128))
		e.group(t, a, "שלום \u05D0")
		e.group(t, a, "devs 👩\u200d💻") // an emoji sequence keeps its joiner
		for _, c := range []struct {
			what string
			body any
		}{
			{"title of 129 code points", map[string]any{"title": rep("é", 129), "members": []string{}}},
			{"empty title", map[string]any{"title": "", "members": []string{}}},
			{"white space title", map[string]any{"title": " \t\n ", "members": []string{}}},
			{"a title that is not a string", map[string]any{"title": []int{1}, "members": []string{}}},
			{"1000 members besides the creator", map[string]any{"title": "big", "members": fakeNames(1000)}},
			{"a line break in a title", map[string]any{"title": "a\nb", "members": []string{}}},
			{"NUL in a title", map[string]any{"title": "a\x00b", "members": []string{}}},
			{"a zero-width space in a title", map[string]any{"title": "a\u200bb", "members": []string{}}},
			{"a right-to-left override in a title", map[string]any{"title": "abc\u202etxt", "members": []string{}}},
			{"an isolate in a title", map[string]any{"title": "a\u2066b", "members": []string{}}},
		} {
			e.fail(t, "POST", "/api/v1/conversations", a.Token, c.body, http.StatusBadRequest, "invalid_request")
		}
		g := e.group(t, a, "grows")
		e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"usernames": fakeNames(1001)}, http.StatusBadRequest, "invalid_request")
		if got := len(e.conversations(t, a)); got != before+5 {
			t.Errorf("%d conversations after, want %d: a refused one was made", got, before+5)
		}
		var m struct {
			MemberCount int `json:"member_count"`
		}
		e.call(t, "GET", "/api/v1/conversations/"+g.ID+"/members", a.Token, nil, http.StatusOK, &m)
		if m.MemberCount != 1 {
			t.Errorf("a refused add changed the group: %d members", m.MemberCount)
		}
	})

	t.Run("frames", func(t *testing.T) {
		conv := e.direct(t, a, other.User.Username).ID
		c, _ := e.dial(t, "limits", a.Token)
		sent := c.send(t, conv, rep("c", 64), rep("é", 4096)) // both at their limit
		c.send(t, conv, "emoji-body", rep("😀", 4096))
		send := func(clientID, body string) map[string]any {
			return map[string]any{"type": "send", "conversation": conv, "client_id": clientID, "body": body}
		}
		for _, r := range []struct {
			what string
			req  map[string]any
			code string
		}{
			{"body of 4097 code points", send("b1", rep("é", 4097)), "invalid_message"},
			{"white space body", send("b2", " \u00A0\u2003\n"), "invalid_message"},
			{"empty body", send("b3", ""), "invalid_message"},
			{"client_id of 65", send(rep("c", 65), "x"), "invalid_message"},
			{"client_id with a control character", send("c\x01", "x"), "invalid_message"},
			{"client_id not ASCII", send("é", "x"), "invalid_message"},
			{"body not a string", map[string]any{"type": "send", "conversation": conv, "client_id": "b4", "body": 5}, "invalid_message"},
			{"emoji of 33 bytes", map[string]any{"type": "react", "conversation": conv, "message_id": sent.ID, "emoji": rep("😀", 8) + "!"}, "invalid_message"},
			{"emoji of 11 code points", map[string]any{"type": "react", "conversation": conv, "message_id": sent.ID, "emoji": rep("é", 11)}, "invalid_message"},
			{"emoji of ASCII", map[string]any{"type": "react", "conversation": conv, "message_id": sent.ID, "emoji": "ok"}, "invalid_message"},
			{"emoji with white space", map[string]any{"type": "react", "conversation": conv, "message_id": sent.ID, "emoji": "😀 "}, "invalid_message"},
			{"history limit 0", map[string]any{"type": "history", "conversation": conv, "limit": 0}, "bad_request"},
			{"a message ID past 64 bits", map[string]any{"type": "history", "conversation": conv, "before": "18446744073709551616"}, "bad_request"},
		} {
			id := nextID("lim")
			r.req["id"] = id
			c.errorFor(t, id, r.req, r.code)
		}
		// At the limit: an emoji of 32 bytes (8 four-byte code points).
		id := nextID("react")
		if f := c.request(t, id, map[string]any{"type": "react", "id": id, "conversation": conv, "message_id": sent.ID, "emoji": rep("😀", 8)}); f.Type != "ack" {
			t.Errorf("emoji of 32 bytes: %s, want ack", f.Raw)
		}
		// Nothing refused was stored: the two sends, newest first.
		p := c.history(t, conv, map[string]any{"limit": 10})
		if len(p.Messages) != 2 || p.Messages[1].ID != sent.ID {
			t.Errorf("history after the refused sends: %+v", p.Messages)
		}
	})
	by.roundTrip(t)
	by.checkUntouched(t)
}

// fakeNames are n valid usernames nobody has.
func fakeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("nobody-%d", i)
	}
	return out
}

// 2. Slow bytes: clients that send a request one byte at a time, on the
// WebSocket handshake and on the HTTP API, never finishing it. The server
// closes each once HandshakeTimeout passes (2 s here, scaled down from 10);
// meanwhile everyone else's upgrades and requests go on.
func TestHostileSlowBytes(t *testing.T) {
	e := newHostileEnv(t, func(c *gateway.Config) { c.HandshakeTimeout = 2 * time.Second })
	by := newBystander(t, e)
	u, _ := url.Parse(e.base)
	before := heapNow()
	const n = 100 // of each kind
	// Requests that never end: a header line that grows forever.
	starts := []string{
		"GET /ws?token=" + by.a.Token + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nX-Slow: ",
		"GET /api/v1/me HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Bearer " + by.a.Token + "\r\nX-Slow: ",
		"POST /api/v1/login HTTP/1.1\r\nHost: " + u.Host + "\r\nX-Slow: ",
	}
	type slow struct {
		conn net.Conn
		req  string
		sent int
	}
	var conns []*slow
	for i := range n * len(starts) {
		c, err := net.DialTimeout("tcp", u.Host, frameWait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns = append(conns, &slow{conn: c, req: starts[i%len(starts)]})
	}
	// One goroutine writes the next byte to each every 20 ms (a minute,
	// scaled down) until the server closes it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, s := range conns {
				b := byte('a')
				if s.sent < len(s.req) {
					b = s.req[s.sent]
				}
				_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := s.conn.Write([]byte{b}); err == nil {
					s.sent++
				}
			}
		}
	}()
	by.roundTrip(t) // while every slow client is mid-request
	// Each is closed by the server, with no answer but an error status.
	for i, s := range conns {
		_ = s.conn.SetReadDeadline(time.Now().Add(hostileWait))
		got, err := io.ReadAll(s.conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow client %d (%.20q): still open after %v", i, s.req, hostileWait)
		}
		if bytes.HasPrefix(got, []byte("HTTP/1.1 1")) || bytes.HasPrefix(got, []byte("HTTP/1.1 2")) {
			t.Errorf("slow client %d: answered %.60q", i, got)
		}
	}
	close(stop)
	wg.Wait()
	by.roundTrip(t)
	checkHeap(t, "slow clients", before, 16<<20)
}

// 3. A thousand connections each hold an unfinished fragmented message.
// The gateway's reassembly budget (Config.MaxReassembly, 8 MiB here) bounds
// what they hold together: past it a connection's next fragment is refused
// with 1013; the heap stays bounded; small messages of others go on; once
// the holders leave, the budget is free again.
func TestHostileFragmentedMessages(t *testing.T) {
	const budget = 8 << 20
	e := newHostileEnv(t, func(c *gateway.Config) {
		c.MaxReassembly = budget
		c.ReadTimeout = time.Minute // a stalled frame is not the point here
	})
	by := newBystander(t, e)
	// 50 users of 20 connections each: under any per-user connection cap
	// of 20 or more (extend: the cap's own test holds a user to it).
	users := e.fastUsers(t, "frag", 50)
	const conns = 1000
	fragment := []byte(`{"type":"ping","id":"` + strings.Repeat("f", 60_000))
	before := heapNow()
	// Eight clients at a time open the connections and send the fragments.
	var (
		mu            sync.Mutex
		holders       []*rawWS
		held, refused int
		resets        int // refused with the close frame lost to a reset
		wg            sync.WaitGroup
		errs          = make([]error, 8)
	)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < conns; i += len(errs) {
				r, err := dialRawErr(e, users[i%len(users)].Token)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", i, err)
					return
				}
				// A ping after the fragment: answered once the fragment is
				// taken. A refused one is closed while it is being sent: the
				// write may fail, and the close frame be lost to the reset.
				werr := r.writeFrameErr(false, 1, fragment)
				if werr == nil {
					werr = r.writeFrameErr(true, 9, []byte("p"))
				}
				code, err := r.pongOrClose()
				if werr != nil && code == 0 {
					code, err = 1013, nil
					mu.Lock()
					resets++
					mu.Unlock()
				}
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", i, err)
					return
				}
				mu.Lock()
				switch code {
				case 0:
					held++
					holders = append(holders, r)
				case 1013:
					refused++
					r.conn.Close()
				default:
					errs[w] = fmt.Errorf("connection %d: closed with %d, want a pong or 1013", i, code)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, h := range holders {
			h.conn.Close()
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkHeap(t, "1,000 unfinished fragmented messages", before, budget+24<<20)
	t.Logf("%d connections hold a fragment, %d were refused (%d of them reset)", held, refused, resets)
	if held == 0 || refused == resets {
		t.Fatalf("%d held and %d refused: the budget bounds nothing", held, refused)
	}
	if held*len(fragment) > budget {
		t.Errorf("%d connections hold %d bytes, over the budget of %d", held, held*len(fragment), budget)
	}
	by.roundTrip(t) // small messages are never refused
	// The holders leave; the budget is free again: a fragmented message
	// is reassembled and answered.
	for _, h := range holders {
		h.conn.Close()
	}
	eventually(t, "a fragmented message once the holders left", func() error {
		r, err := dialRawErr(e, users[1].Token)
		if err != nil {
			return err
		}
		defer r.conn.Close()
		if err := r.writeFrameErr(false, 1, fragment); err != nil {
			return err
		}
		if err := r.writeFrameErr(true, 0, []byte(`"}`)); err != nil {
			return err
		}
		got, err := r.nextText()
		if err != nil {
			return err
		}
		if msgType(got) != "pong" || len(got) < 60_000 {
			return fmt.Errorf("answered %.100s", got)
		}
		return nil
	})
}

// pongOrClose reads until a pong (0) or a close frame (its code).
func (r *rawWS) pongOrClose() (int, error) {
	for {
		op, p, err := r.readFrame()
		if err != nil {
			return 0, fmt.Errorf("waiting for a pong or a close: %w", err)
		}
		switch op {
		case 10:
			return 0, nil
		case 8:
			return closeCode(p), nil
		}
	}
}

// A frame still arriving is charged to the budget as the buffer it needs
// grows: with a budget smaller than a frame, half of one is refused (1013)
// without waiting for the rest; a fragmented message that fits is not.
func TestHostileFrameStillArriving(t *testing.T) {
	e := newHostileEnv(t, func(c *gateway.Config) {
		c.MaxReassembly = 16 << 10
		c.ReadTimeout = time.Minute
	})
	a := e.fastUsers(t, "arriving", 1)[0]
	small := e.dialRaw(t, a.Token)
	msg := pingOfSize("fits", 12_000)
	small.writeFrame(t, false, 1, msg[:6000])
	small.writeFrame(t, true, 0, msg[6000:])
	small.awaitText(t, `"fits"`)

	r := e.dialRaw(t, a.Token)
	frame := maskedFrame(true, 1, pingOfSize("big", 60_000))
	_ = r.conn.SetWriteDeadline(time.Now().Add(frameWait))
	if _, err := r.conn.Write(frame[:len(frame)/2]); err != nil {
		t.Fatal(err)
	}
	if code := r.awaitClose(t); code != 1013 {
		t.Errorf("half a 60 KB frame past a 16 KiB budget: close %d, want 1013", code)
	}
	// The refused connection gave back what it held.
	small.writeFrame(t, false, 1, msg[:6000])
	small.writeFrame(t, true, 0, msg[6000:])
	small.awaitText(t, `"fits"`)
}

// maskedFrame is one client frame with a zero mask.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	var buf bytes.Buffer
	r := &rawWS{conn: &bufConn{w: &buf}}
	_ = r.writeFrameErr(fin, op, payload)
	return buf.Bytes()
}

// bufConn is a net.Conn that writes into a buffer (for maskedFrame).
type bufConn struct {
	net.Conn
	w *bytes.Buffer
}

func (c *bufConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }

// 4. One user creates 500 groups as fast as eight clients can, each with
// four members and a title of 128 four-byte characters, so that their list
// outgrows a page's 512 KiB (a thousand would take half a minute of the
// store's synced writes). Each creation is answered: 201, or a clear refusal
// once a cap applies (extend: the groups-per-hour cap's own test holds the
// count). Meanwhile others are unaffected; afterwards the user's hello and
// lists stay bounded in bytes and the user can still connect.
func TestHostileManyConversations(t *testing.T) {
	e := newHostileEnv(t, nil)
	by := newBystander(t, e)
	spammer := e.fastUsers(t, "spammer", 1)[0]
	members, _ := json.Marshal(usernames(e.fastUsers(t, "member", 4)))
	before := heapNow()
	const total, clients = 500, 8
	title := strings.Repeat("😀", 128)
	body := []byte(`{"title":"` + title + `","members":` + string(members) + `}`)
	var (
		mu              sync.Mutex
		created, capped int
		next            int
	)
	create := func(stop <-chan struct{}) error {
		for {
			mu.Lock()
			if next == total {
				mu.Unlock()
				return nil
			}
			next++
			mu.Unlock()
			status, b, err := rawPost(e, "/api/v1/conversations", spammer.Token, body)
			if err != nil {
				return err
			}
			mu.Lock()
			switch {
			case status == http.StatusCreated:
				created++
			case (status == http.StatusTooManyRequests || status == http.StatusBadRequest) && errorCode(b) != "":
				capped++
			default:
				mu.Unlock()
				return fmt.Errorf("group %d: %d %.200s", next, status, b)
			}
			mu.Unlock()
		}
	}
	attacks := make([]func(<-chan struct{}) error, clients)
	for i := range attacks {
		attacks[i] = create
	}
	during(t, func() { by.roundTrip(t) }, attacks...)
	t.Logf("%d groups created, %d refused", created, capped)
	if created+capped != total {
		t.Fatalf("%d of %d creations answered", created+capped, total)
	}

	// hello: at most 1,000 conversations and 512 KiB of them.
	hello := e.dialNoHello(t, "spammer raw", e.wsBase+"?token="+url.QueryEscape(spammer.Token), nil).take(t, "hello", ofType("hello"))
	var h struct {
		Conversations []json.RawMessage `json:"conversations"`
		NextBefore    *string           `json:"next_before"`
	}
	hello.decode(t, &h)
	const pageBytes = 512 << 10
	if len(hello.Raw) > pageBytes+4<<10 {
		t.Errorf("hello is %d bytes, over the 512 KiB bound", len(hello.Raw))
	}
	if len(h.Conversations) > created || len(h.Conversations) > 1000 {
		t.Errorf("hello lists %d conversations of %d", len(h.Conversations), created)
	}
	// The list, page by page: each page bounded, every group once.
	seen, pagesSeen := 0, 0
	cursor := ""
	for range total + 1 {
		path := "/api/v1/conversations"
		if cursor != "" {
			path += "?before=" + url.QueryEscape(cursor)
		}
		status, b := e.do(t, "GET", path, spammer.Token, nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %.200s", path, status, b)
		}
		if len(b) > pageBytes+4<<10 {
			t.Errorf("a page of the list is %d bytes, over the 512 KiB bound", len(b))
		}
		var p struct {
			Conversations []json.RawMessage `json:"conversations"`
			NextBefore    *string           `json:"next_before"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		seen += len(p.Conversations)
		pagesSeen++
		if p.NextBefore == nil {
			break
		}
		cursor = *p.NextBefore
	}
	if pagesSeen < 2 && created == total {
		t.Errorf("the list of %d conversations came in one page: the byte bound was not reached", created)
	}
	if seen != created {
		t.Errorf("the list walks through %d conversations, want the %d created", seen, created)
	}
	by.roundTrip(t)
	by.checkUntouched(t)
	checkHeap(t, "500 conversations", before, 32<<20)
}

// 5. Ten connections ask history as fast as they can, past the rate
// limit: every request gets its answer, a page or rate_limited, in order;
// the limit holds per connection; others are unaffected.
func TestHostileHistoryAtRateLimit(t *testing.T) {
	// The rate scaled down (from 20 a second, bursts of 50): under the
	// race detector a history page takes about the 50 ms the default
	// rate allows per request, and the point is requests past the limit.
	// At one a second, 60 requests at once pass it unless answering the
	// first 20 takes 40 s.
	e := newHostileEnv(t, func(c *gateway.Config) { c.SendRate, c.SendBurst = 1, 20 })
	by := newBystander(t, e)
	users := e.fastUsers(t, "reader", 10)
	g := e.group(t, users[0], "read me", usernames(users[1:])...)
	e.sendMany(t, users[0], g.ID, "history", 5)
	before := heapNow()
	const perConn = 60 // the burst is 20
	var (
		mu            sync.Mutex
		pages, limits int
	)
	attacks := make([]func(<-chan struct{}) error, len(users))
	for i, u := range users {
		attacks[i] = func(<-chan struct{}) error {
			r, err := dialRawErr(e, u.Token)
			if err != nil {
				return err
			}
			defer r.conn.Close()
			ids := make([]string, perConn)
			var batch []byte
			for k := range ids {
				ids[k] = fmt.Sprintf("h%d-%d", i, k)
				batch = append(batch, maskedFrame(true, 1, []byte(`{"type":"history","id":"`+ids[k]+`","conversation":"`+g.ID+`","limit":5}`))...)
			}
			_ = r.conn.SetWriteDeadline(time.Now().Add(hostileWait))
			if _, err := r.conn.Write(batch); err != nil {
				return err
			}
			got := map[string]int{}
			for k := 0; k < perConn; {
				f, err := r.nextText()
				if err != nil {
					return fmt.Errorf("after %d answers: %w", k, err)
				}
				var a struct {
					Type     string            `json:"type"`
					ID       string            `json:"id"`
					Code     string            `json:"code"`
					Messages []json.RawMessage `json:"messages"`
				}
				if err := json.Unmarshal(f, &a); err != nil {
					return err
				}
				if a.ID == "" {
					continue // a delivery, not an answer
				}
				if a.ID != ids[k] {
					return fmt.Errorf("answer %d is for %s, want %s: answers come in order", k, a.ID, ids[k])
				}
				switch {
				case a.Type == "history" && len(a.Messages) == 5:
					got["page"]++
				case a.Type == "error" && a.Code == "rate_limited":
					got["limited"]++
				default:
					return fmt.Errorf("request %s answered %.200s", a.ID, f)
				}
				k++
			}
			if got["limited"] == 0 {
				return fmt.Errorf("%d requests at once were never rate limited", perConn)
			}
			mu.Lock()
			pages += got["page"]
			limits += got["limited"]
			mu.Unlock()
			return nil
		}
	}
	during(t, func() { by.roundTrip(t) }, attacks...)
	t.Logf("%d pages, %d rate_limited", pages, limits)
	by.roundTrip(t)
	by.checkUntouched(t)
	checkHeap(t, "history at the rate limit", before, 32<<20)
}

// An unfinished fragmented message has ReadTimeout, as a frame does (1 s
// here): a client cannot hold its fragments, and the reassembly budget,
// for ever by staying alive.
func TestHostileFragmentHeldTooLong(t *testing.T) {
	e := newHostileEnv(t, func(c *gateway.Config) { c.ReadTimeout = time.Second })
	a := e.fastUsers(t, "lingerer", 1)[0]
	r := e.dialRaw(t, a.Token)
	r.writeFrame(t, false, 1, []byte(`{"type":"ping","id":"`))
	r.writeFrame(t, true, 9, []byte("alive")) // control frames do not extend it
	if code := r.awaitClose(t); code != 1008 {
		t.Errorf("a fragmented message held past ReadTimeout: close %d, want 1008", code)
	}
}
