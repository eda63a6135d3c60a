package chatclient

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// statusOf is the status of GET /api/v1/me with token.
func statusOf(t *testing.T, ctx context.Context, base, token string) int {
	t.Helper()
	err := call(ctx, nil, base, token, http.MethodGet, "/me", nil, nil)
	var se *ServerError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &se):
		return se.Status
	default:
		t.Fatalf("GET /me: %v", err)
		return 0
	}
}

// Access tokens that last 3 s: a client with a refresh token keeps sending
// over its socket and calling the API across several expiries, and a
// client without one is told its token expired. Logging out ends the
// session on the server without reporting an expiry.
func TestSessionOutlivesAccessTokens(t *testing.T) {
	const ttl = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := startChatDev(t, "--access-ttl", ttl.String())
	anna := signup(t, ctx, base, "anna")
	billy := signup(t, ctx, base, "billy")
	if anna.RefreshToken == "" || anna.ExpiresIn != int(ttl/time.Second) {
		t.Fatalf("signup answered refresh_token %q, expires_in %d", anna.RefreshToken, anna.ExpiresIn)
	}

	// Without a refresh token: over once the token expires.
	var plainExpired atomic.Int32
	plain, err := Dial(ctx, Config{BaseURL: base, Token: billy.Token, OnAuthExpired: func() { plainExpired.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	var mu sync.Mutex
	var saved []Tokens
	var expired atomic.Int32
	c, err := Dial(ctx, Config{
		BaseURL:       base,
		Token:         anna.Token,
		RefreshToken:  anna.RefreshToken,
		ExpiresIn:     time.Duration(anna.ExpiresIn) * time.Second,
		OnTokens:      func(tk Tokens) { mu.Lock(); saved = append(saved, tk); mu.Unlock() },
		OnAuthExpired: func() { expired.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conv, err := c.Direct(ctx, billy.User.Username)
	if err != nil {
		t.Fatal(err)
	}
	// Over three and a half lifetimes: a send and an HTTP call, paced by a
	// ticker, each of which must succeed.
	pace := time.NewTicker(200 * time.Millisecond)
	defer pace.Stop()
	end := time.Now().Add(ttl*3 + ttl/2)
	sent := 0
	for time.Now().Before(end) {
		if _, err := c.Send(ctx, conv.ID, "tick"); err != nil {
			t.Fatalf("send %d after %d renewals: %v", sent, len(saved), err)
		}
		sent++
		if _, err := c.Conversations(ctx); err != nil {
			t.Fatalf("conversations: %v", err)
		}
		<-pace.C
	}
	mu.Lock()
	renewals := len(saved)
	seen := map[string]bool{}
	for _, tk := range saved {
		seen[tk.RefreshToken] = true
	}
	mu.Unlock()
	if renewals < 3 || len(seen) != renewals {
		t.Fatalf("%d renewals, %d distinct refresh tokens, in %v of %v tokens", renewals, len(seen), ttl*3+ttl/2, ttl)
	}
	if n := expired.Load(); n != 0 {
		t.Fatalf("OnAuthExpired called %d times", n)
	}
	if s := statusOf(t, ctx, base, anna.Token); s != http.StatusUnauthorized {
		t.Fatalf("the first access token: %d, want 401 (expired)", s)
	}
	if s := statusOf(t, ctx, base, c.Token()); s != http.StatusOK {
		t.Fatalf("the current access token: %d", s)
	}
	poll(t, "the client without a refresh token to be told", 10*time.Second, func() error {
		if plainExpired.Load() != 1 {
			return errors.New("not yet")
		}
		return nil
	})

	last := c.Token()
	if err := c.Logout(ctx, false); err != nil {
		t.Fatal(err)
	}
	if s := statusOf(t, ctx, base, last); s != http.StatusUnauthorized {
		t.Fatalf("after logout the access token: %d, want 401", s)
	}
	if _, err := c.Send(ctx, conv.ID, "after logout"); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after logout: %v, want ErrClosed", err)
	}
	if n := expired.Load(); n != 0 {
		t.Fatalf("logging out called OnAuthExpired %d times", n)
	}
}

// A session ended from another device: the server closes the socket with
// 4001, the refresh is refused, OnAuthExpired is called once and sends fail
// with ErrUnauthorized.
func TestSessionEndedElsewhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := startChatDev(t)
	anna := signup(t, ctx, base, "anna")
	var expired atomic.Int32
	c, err := Dial(ctx, Config{BaseURL: base, Token: anna.Token, RefreshToken: anna.RefreshToken, ExpiresIn: time.Duration(anna.ExpiresIn) * time.Second,
		OnAuthExpired: func() { expired.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := Login(ctx, nil, base, anna.User.Username, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Sessions []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"sessions"`
	}
	if err := call(ctx, nil, base, other.Token, http.MethodGet, "/sessions", nil, &list); err != nil {
		t.Fatal(err)
	}
	ended := 0
	for _, s := range list.Sessions {
		if !s.Current {
			if err := call(ctx, nil, base, other.Token, http.MethodDelete, "/sessions/"+s.ID, nil, nil); err != nil {
				t.Fatal(err)
			}
			ended++
		}
	}
	if ended != 1 {
		t.Fatalf("ended %d sessions, want the client's one", ended)
	}
	poll(t, "OnAuthExpired", 10*time.Second, func() error {
		if expired.Load() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	if _, err := c.Send(ctx, "1", "too late"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("send after the session ended: %v, want ErrUnauthorized", err)
	}
	if n := expired.Load(); n != 1 {
		t.Fatalf("OnAuthExpired called %d times", n)
	}
}
