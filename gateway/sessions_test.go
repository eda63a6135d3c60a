package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
)

const testSecret = "test-secret-0123456789abcdef"

type tokens struct {
	User         chat.User `json:"user"`
	Token        string    `json:"token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresIn    int       `json:"expires_in"`
}

// api makes one HTTP call and returns the status and body.
func api(t testing.TB, addr, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func mustAPI(t testing.TB, addr, method, path, token string, body any, want int, out any) {
	t.Helper()
	code, b := api(t, addr, method, path, token, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func (e *env) signupTokens(t testing.TB, name string) tokens {
	t.Helper()
	var out tokens
	mustAPI(t, e.addr, "POST", "/api/v1/signup", "", map[string]string{"username": name, "password": "password-123", "device": "first device"}, http.StatusCreated, &out)
	return out
}

func (e *env) loginTokens(t testing.TB, addr, name, password, device string) tokens {
	t.Helper()
	var out tokens
	mustAPI(t, addr, "POST", "/api/v1/login", "", map[string]string{"username": name, "password": password, "device": device}, http.StatusOK, &out)
	return out
}

// authorized reports whether token is accepted by the gateway at addr.
func authorized(t testing.TB, addr, token string) int {
	code, _ := api(t, addr, "GET", "/api/v1/me", token, nil)
	return code
}

// upgrade tries a WebSocket handshake and returns the HTTP status and, on
// 101, the client.
func upgrade(t testing.TB, addr, query, authz string) (int, *rawClient) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	h := ""
	if authz != "" {
		h = "Authorization: " + authz + "\r\n"
	}
	fmt.Fprintf(conn, "GET /ws%s HTTP/1.1\r\nHost: %s\r\n%sUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", query, addr, h, key)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return resp.StatusCode, nil
	}
	c := &rawClient{conn: conn, br: br}
	t.Cleanup(func() { conn.Close() })
	if typ := typeOf(c.read(t)); typ != "hello" {
		t.Fatalf("first frame %q, want hello", typ)
	}
	return resp.StatusCode, c
}

// closeCode reads until the server's close frame and returns its code.
func (c *rawClient) closeCode(t testing.TB, within time.Duration) ws.StatusCode {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			t.Fatalf("no close frame within %v: %v", within, err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			return code
		}
	}
}

func TestLoginAnswersSessionTokens(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.signupTokens(t, "billy")
	if tk.Token == "" || tk.RefreshToken == "" || tk.ExpiresIn != 900 {
		t.Fatalf("signup answered %+v, want a token, a refresh token and expires_in 900", tk)
	}
	if code := authorized(t, e.addr, tk.Token); code != http.StatusOK {
		t.Fatalf("the access token: %d", code)
	}
	lg := e.loginTokens(t, e.addr, "billy", "password-123", "phone")
	if lg.RefreshToken == tk.RefreshToken || lg.Token == tk.Token {
		t.Error("two logins got the same tokens")
	}
	// A token without a session (as tokens were before sessions) is
	// refused: it could never be revoked.
	c := jwt.MapClaims{"sub": tk.User.ID.String(), "name": "billy", "iss": "chat", "aud": []string{"chat-clients"},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	old, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if code := authorized(t, e.addr, old); code != http.StatusUnauthorized {
		t.Errorf("a token without a session: %d, want 401", code)
	}
}

func TestRefreshRotatesAndReuseEndsTheSession(t *testing.T) {
	e := newEnv(t, nil)
	first := e.signupTokens(t, "billy")
	var second tokens
	mustAPI(t, e.addr, "POST", "/api/v1/token", "", map[string]string{"refresh_token": first.RefreshToken}, http.StatusOK, &second)
	if second.RefreshToken == first.RefreshToken || second.Token == "" || second.User.Username != "billy" || second.ExpiresIn != 900 {
		t.Fatalf("refresh answered %+v", second)
	}
	if code := authorized(t, e.addr, second.Token); code != http.StatusOK {
		t.Fatalf("the refreshed access token: %d", code)
	}
	_, sock := upgrade(t, e.addr, "?token="+second.Token, "")
	// The retired refresh token again: refused, and the session ends.
	code, body := api(t, e.addr, "POST", "/api/v1/token", "", map[string]string{"refresh_token": first.RefreshToken})
	if code != http.StatusUnauthorized {
		t.Fatalf("a retired refresh token: %d %s, want 401", code, body)
	}
	if code := authorized(t, e.addr, second.Token); code != http.StatusUnauthorized {
		t.Errorf("after reuse, the session's access token: %d, want 401", code)
	}
	if code, _ := api(t, e.addr, "POST", "/api/v1/token", "", map[string]string{"refresh_token": second.RefreshToken}); code != http.StatusUnauthorized {
		t.Errorf("after reuse, the session's current refresh token: %d, want 401", code)
	}
	if got := sock.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("the session's WebSocket closed with %d, want 4001", got)
	}
}

func TestForgedRefreshTokenEndsNothing(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.signupTokens(t, "billy")
	b, _ := base64.RawURLEncoding.DecodeString(tk.RefreshToken)
	// Generation 0 of the same session, with a MAC that is not ours: were
	// it believed, it would be "reuse" and end the session.
	binary.BigEndian.PutUint32(b[8:], 0)
	forged := base64.RawURLEncoding.EncodeToString(b)
	for _, bad := range []string{forged, "", "garbage", tk.Token} {
		if code, _ := api(t, e.addr, "POST", "/api/v1/token", "", map[string]string{"refresh_token": bad}); code != http.StatusUnauthorized {
			t.Errorf("refresh with %.20q: %d, want 401", bad, code)
		}
	}
	if code := authorized(t, e.addr, tk.Token); code != http.StatusOK {
		t.Errorf("a forged refresh token ended the session: %d", code)
	}
	mustAPI(t, e.addr, "POST", "/api/v1/token", "", map[string]string{"refresh_token": tk.RefreshToken}, http.StatusOK, nil)
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	a := e.signupTokens(t, "billy")
	b := e.loginTokens(t, e.addr, "billy", "password-123", "phone")
	c := e.loginTokens(t, e.addr, "billy", "password-123", "tablet")
	_, sockA := upgrade(t, e.addr, "", "Bearer "+a.Token)
	_, sockB := upgrade(t, e.addr, "", "Bearer "+b.Token)

	mustAPI(t, e.addr, "POST", "/api/v1/logout", a.Token, nil, http.StatusNoContent, nil)
	// Refused at once, not eventually.
	if code := authorized(t, e.addr, a.Token); code != http.StatusUnauthorized {
		t.Errorf("after logout, the access token: %d, want 401", code)
	}
	if code, _ := api(t, e.addr, "POST", "/api/v1/token", "", map[string]string{"refresh_token": a.RefreshToken}); code != http.StatusUnauthorized {
		t.Errorf("after logout, the refresh token: %d, want 401", code)
	}
	if got := sockA.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("the logged-out WebSocket closed with %d, want 4001", got)
	}
	if code := authorized(t, e.addr, b.Token); code != http.StatusOK {
		t.Errorf("logging one session out ended another: %d", code)
	}
	// Everywhere, push registrations included.
	mustAPI(t, e.addr, "POST", "/api/v1/devices", c.Token, map[string]string{"kind": "gateway", "token": "tablet-push", "app_id": "x"}, http.StatusCreated, nil)
	var devs struct {
		Devices []json.RawMessage `json:"devices"`
	}
	mustAPI(t, e.addr, "GET", "/api/v1/devices", b.Token, nil, http.StatusOK, &devs)
	if len(devs.Devices) != 1 {
		t.Fatalf("devices before logout all: %d, want 1", len(devs.Devices))
	}
	mustAPI(t, e.addr, "POST", "/api/v1/logout?all=true", b.Token, nil, http.StatusNoContent, nil)
	d := e.loginTokens(t, e.addr, "billy", "password-123", "laptop")
	mustAPI(t, e.addr, "GET", "/api/v1/devices", d.Token, nil, http.StatusOK, &devs)
	if len(devs.Devices) != 0 {
		t.Errorf("after logout all, %d push registrations remain", len(devs.Devices))
	}
	for name, tk := range map[string]tokens{"phone": b, "tablet": c} {
		if code := authorized(t, e.addr, tk.Token); code != http.StatusUnauthorized {
			t.Errorf("after logout all, %s: %d, want 401", name, code)
		}
	}
	if got := sockB.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("after logout all, a WebSocket closed with %d, want 4001", got)
	}
	if code, _ := api(t, e.addr, "POST", "/api/v1/logout?all=maybe", e.signupTokens(t, "anna").Token, nil); code != http.StatusBadRequest {
		t.Errorf("all=maybe: %d, want 400", code)
	}
}

func TestSessionsListAndEndOne(t *testing.T) {
	e := newEnv(t, nil)
	a := e.signupTokens(t, "billy")
	b := e.loginTokens(t, e.addr, "billy", "password-123", "phone\u202e\x00 evil")
	other := e.signupTokens(t, "anna")
	var list struct {
		Sessions []struct {
			ID        string `json:"id"`
			Device    string `json:"device"`
			CreatedAt string `json:"created_at"`
			LastSeen  string `json:"last_seen"`
			Current   bool   `json:"current"`
		} `json:"sessions"`
	}
	mustAPI(t, e.addr, "GET", "/api/v1/sessions", a.Token, nil, http.StatusOK, &list)
	if len(list.Sessions) != 2 {
		t.Fatalf("sessions = %+v, want 2", list.Sessions)
	}
	var phone string
	for _, s := range list.Sessions {
		if _, err := time.Parse(chat.TimeLayout, s.CreatedAt); err != nil || s.LastSeen == "" {
			t.Errorf("session times %q %q", s.CreatedAt, s.LastSeen)
		}
		switch s.Device {
		case "first device":
			if !s.Current {
				t.Error("the caller's session is not marked current")
			}
		case "phone evil":
			phone = s.ID
			if s.Current {
				t.Error("another session is marked current")
			}
		default:
			t.Errorf("device %q (control and bidi characters must be dropped)", s.Device)
		}
	}
	if phone == "" {
		t.Fatal("the phone session is not listed")
	}
	// Another user cannot end it, nor learn it exists.
	if code, _ := api(t, e.addr, "DELETE", "/api/v1/sessions/"+phone, other.Token, nil); code != http.StatusNotFound {
		t.Errorf("ending another user's session: %d, want 404", code)
	}
	if code := authorized(t, e.addr, b.Token); code != http.StatusOK {
		t.Fatalf("another user ended billy's session: %d", code)
	}
	for _, bad := range []string{"123", "x"} {
		if code, _ := api(t, e.addr, "DELETE", "/api/v1/sessions/"+bad, a.Token, nil); code != http.StatusNotFound {
			t.Errorf("DELETE /sessions/%s: %d, want 404", bad, code)
		}
	}
	mustAPI(t, e.addr, "DELETE", "/api/v1/sessions/"+phone, a.Token, nil, http.StatusNoContent, nil)
	if code := authorized(t, e.addr, b.Token); code != http.StatusUnauthorized {
		t.Errorf("the ended session's token: %d, want 401", code)
	}
	mustAPI(t, e.addr, "GET", "/api/v1/sessions", a.Token, nil, http.StatusOK, &list)
	if len(list.Sessions) != 1 || !list.Sessions[0].Current {
		t.Errorf("after ending one, sessions = %+v", list.Sessions)
	}
}

func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	e := newEnv(t, nil)
	a := e.signupTokens(t, "billy")
	b := e.loginTokens(t, e.addr, "billy", "password-123", "phone")
	_, sockB := upgrade(t, e.addr, "?token="+b.Token, "")
	code, body := api(t, e.addr, "POST", "/api/v1/password", a.Token, map[string]string{"current_password": "wrong-password", "new_password": "new-password-456"})
	if code != http.StatusBadRequest {
		t.Errorf("wrong current password: %d %s, want 400", code, body)
	}
	if code, _ := api(t, e.addr, "POST", "/api/v1/password", a.Token, map[string]string{"current_password": "password-123", "new_password": "short"}); code != http.StatusBadRequest {
		t.Errorf("a too short new password: %d, want 400", code)
	}
	if code := authorized(t, e.addr, b.Token); code != http.StatusOK {
		t.Fatalf("a refused password change ended a session: %d", code)
	}
	mustAPI(t, e.addr, "POST", "/api/v1/password", a.Token, map[string]string{"current_password": "password-123", "new_password": "new-password-456"}, http.StatusNoContent, nil)
	if code := authorized(t, e.addr, a.Token); code != http.StatusOK {
		t.Errorf("the session that changed the password: %d, want 200", code)
	}
	if code := authorized(t, e.addr, b.Token); code != http.StatusUnauthorized {
		t.Errorf("another session after a password change: %d, want 401", code)
	}
	if got := sockB.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("another session's WebSocket closed with %d, want 4001", got)
	}
	if code, _ := api(t, e.addr, "POST", "/api/v1/login", "", map[string]string{"username": "billy", "password": "password-123"}); code != http.StatusUnauthorized {
		t.Errorf("login with the old password: %d, want 401", code)
	}
	e.loginTokens(t, e.addr, "billy", "new-password-456", "")
}

func TestWebSocketTicket(t *testing.T) {
	e := newEnv(t, nil)
	a := e.signupTokens(t, "billy")
	var tk struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	mustAPI(t, e.addr, "POST", "/api/v1/ws-ticket", a.Token, nil, http.StatusOK, &tk)
	if tk.Ticket == "" || tk.ExpiresIn != 30 {
		t.Fatalf("ticket answer %+v", tk)
	}
	// Not an access token.
	if code := authorized(t, e.addr, tk.Ticket); code != http.StatusUnauthorized {
		t.Errorf("a ticket as a bearer token: %d, want 401", code)
	}
	if code, _ := upgrade(t, e.addr, "?token="+tk.Ticket, ""); code != http.StatusUnauthorized {
		t.Errorf("a ticket as ?token=: %d, want 401", code)
	}
	code, sock := upgrade(t, e.addr, "?ticket="+tk.Ticket, "")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade with a ticket: %d", code)
	}
	if code, _ := upgrade(t, e.addr, "?ticket="+tk.Ticket, ""); code != http.StatusUnauthorized {
		t.Errorf("a ticket used twice: %d, want 401", code)
	}
	if code, _ := upgrade(t, e.addr, "?ticket="+a.Token, ""); code != http.StatusUnauthorized {
		t.Errorf("an access token as a ticket: %d, want 401", code)
	}
	// The socket outlives the ticket, but not the session.
	mustAPI(t, e.addr, "POST", "/api/v1/logout", a.Token, nil, http.StatusNoContent, nil)
	if got := sock.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("a ticket socket after logout closed with %d, want 4001", got)
	}
	// A ticket of an ended session is refused.
	b := e.loginTokens(t, e.addr, "billy", "password-123", "")
	mustAPI(t, e.addr, "POST", "/api/v1/ws-ticket", b.Token, nil, http.StatusOK, &tk)
	mustAPI(t, e.addr, "POST", "/api/v1/logout", b.Token, nil, http.StatusNoContent, nil)
	if code, _ := upgrade(t, e.addr, "?ticket="+tk.Ticket, ""); code != http.StatusUnauthorized {
		t.Errorf("a ticket of an ended session: %d, want 401", code)
	}
}

// addGateway starts another gateway on e's NATS server and store, as a
// second pod would be, and returns its address.
func (e *env) addGateway(t *testing.T) string {
	t.Helper()
	nc, err := nats.Connect(e.nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := Start(context.Background(), Options{Config: Config{JWTSecret: []byte(testSecret)}, NATS: nc})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gw.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = gw.Shutdown(context.Background())
		<-done
		nc.Close()
	})
	return ln.Addr().String()
}

func TestRevocationClosesSocketsOnEveryGateway(t *testing.T) {
	e := newEnv(t, nil)
	other := e.addGateway(t)
	a := e.signupTokens(t, "billy")
	phone := e.loginTokens(t, other, "billy", "password-123", "phone")
	_, onFirst := upgrade(t, e.addr, "?token="+a.Token, "")
	_, onSecond := upgrade(t, other, "", "Bearer "+a.Token)
	_, phoneSock := upgrade(t, other, "?token="+phone.Token, "")

	// Logged out through the first gateway: the second refuses the token
	// and closes its socket too.
	mustAPI(t, e.addr, "POST", "/api/v1/logout", a.Token, nil, http.StatusNoContent, nil)
	start := time.Now()
	if got := onFirst.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("first gateway's socket closed with %d, want 4001", got)
	}
	if got := onSecond.closeCode(t, 5*time.Second); got != statusTokenExpired {
		t.Errorf("second gateway's socket closed with %d, want 4001", got)
	}
	t.Logf("both sockets closed %v after logout", time.Since(start))
	eventually(t, 5*time.Second, func() error {
		if code := authorized(t, other, a.Token); code != http.StatusUnauthorized {
			return fmt.Errorf("second gateway still accepts the token: %d", code)
		}
		return nil
	})
	// The other session lives on, on both.
	if code := authorized(t, other, phone.Token); code != http.StatusOK {
		t.Errorf("the phone session on the second gateway: %d", code)
	}
	_ = phoneSock.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := ws.ReadHeader(phoneSock.br); err == nil {
		t.Error("the phone's socket got a frame after another session's logout")
	}

	// A gateway that starts after the revocation learns it from the others.
	late := e.addGateway(t)
	if code := authorized(t, late, a.Token); code != http.StatusUnauthorized {
		t.Errorf("a gateway started after the logout accepts the token: %d, want 401", code)
	}
	if code := authorized(t, late, phone.Token); code != http.StatusOK {
		t.Errorf("the late gateway refuses a live session: %d", code)
	}
}
