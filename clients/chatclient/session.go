package chatclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Sessions (docs/PROTOCOL.md, "Sessions"): the access token lasts minutes
// (15 by default), the refresh token trades for a new pair once. With
// Config.RefreshToken the client renews the access token a little before it
// expires and when the server refuses it (HTTP 401, close code 4001), so a
// bot runs as long as its session (30 days) rather than 15 minutes; and it
// opens the WebSocket with a single-use ticket, so the connection lives
// until the session ends instead of closing with 4001 at every expiry.

// Tokens is what Config.OnTokens receives after every refresh: persist it
// to survive a restart (the refresh token is a secret).
type Tokens struct {
	Token        string
	RefreshToken string
	// ExpiresAt is when Token expires (zero: unknown).
	ExpiresAt time.Time
}

const (
	// maxRefreshAhead bounds how long before expiry the token is renewed;
	// it is a fifth of the token's lifetime when that is shorter.
	maxRefreshAhead = time.Minute
	// refreshRetry is the wait after a refresh that failed for want of the
	// network or a busy server (not a refusal).
	refreshRetry = 5 * time.Second
)

// tokens holds the session's credentials; one refresh runs at a time,
// because a refresh token presented twice ends the whole session.
type tokens struct {
	mu        sync.Mutex
	token     string
	refresh   string
	expiresAt time.Time
	ttl       time.Duration
	inflight  chan struct{} // closed when the refresh in flight ends
	result    error         // of the refresh that closed inflight
}

// ErrSessionEnded is wrapped by a refresh the server refused: the session
// ended (logout, ended from another device, expired). It matches
// ErrUnauthorized too.
var ErrSessionEnded = fmt.Errorf("chatclient: session ended: %w", ErrUnauthorized)

// Token is the access token the client uses now.
func (c *Client) Token() string {
	c.tok.mu.Lock()
	defer c.tok.mu.Unlock()
	return c.tok.token
}

func (c *Client) hasSession() bool {
	c.tok.mu.Lock()
	defer c.tok.mu.Unlock()
	return c.tok.refresh != ""
}

// Refresh renews the access token now with the refresh token. It returns
// an error matching ErrSessionEnded when the server refused it (log in
// again), ErrBadRequest without a refresh token, or another error (the
// network) that leaves the session as it was.
func (c *Client) Refresh(ctx context.Context) error {
	return c.refreshToken(ctx, "")
}

// refreshToken renews the access token unless refused (the token a server
// refused) is no longer current, someone having renewed it already.
// Callers at the same time share one POST /token.
func (c *Client) refreshToken(ctx context.Context, refused string) error {
	t := &c.tok
	t.mu.Lock()
	if refused != "" && refused != t.token {
		t.mu.Unlock()
		return nil
	}
	if t.refresh == "" {
		t.mu.Unlock()
		return fmt.Errorf("chatclient: no refresh token: %w", ErrBadRequest)
	}
	if ch := t.inflight; ch != nil {
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.result
	}
	ch := make(chan struct{})
	t.inflight = ch
	rt := t.refresh
	t.mu.Unlock()

	// The call runs on the client's context, not the caller's: a caller
	// that gives up must not leave the pair half-rotated (the server
	// retired rt, the answer lost).
	var a Auth
	err := call(c.ctx, c.http, c.cfg.BaseURL, "", http.MethodPost, "/token", map[string]string{"refresh_token": rt}, &a)
	var se *ServerError
	if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
		err = fmt.Errorf("%w: %w", ErrSessionEnded, err)
	}
	t.mu.Lock()
	if err == nil {
		t.token, t.refresh = a.Token, a.RefreshToken
		t.expiresAt = time.Time{}
		if a.ExpiresIn > 0 {
			t.ttl = time.Duration(a.ExpiresIn) * time.Second
			t.expiresAt = time.Now().Add(t.ttl)
		}
	}
	saved := Tokens{Token: t.token, RefreshToken: t.refresh, ExpiresAt: t.expiresAt}
	t.result = err
	t.inflight = nil
	close(ch)
	t.mu.Unlock()
	if err == nil {
		if c.cfg.OnTokens != nil {
			c.cfg.OnTokens(saved)
		}
		c.kickRefresher()
	}
	return err
}

// kickRefresher tells the refresher the expiry moved.
func (c *Client) kickRefresher() {
	select {
	case c.refreshKick <- struct{}{}:
	default:
	}
}

// refresher renews the access token ahead of its expiry until Close or the
// end of the session.
func (c *Client) refresher() {
	defer c.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var wait time.Duration
	for {
		c.tok.mu.Lock()
		at, ttl := c.tok.expiresAt, c.tok.ttl
		c.tok.mu.Unlock()
		switch {
		case wait > 0: // a retry after a failure
		case at.IsZero():
			wait = time.Hour // unknown: a 401 will tell
		default:
			wait = max(0, time.Until(at)-min(maxRefreshAhead, ttl/5))
		}
		t.Reset(wait)
		wait = 0
		select {
		case <-c.ctx.Done():
			return
		case <-c.refreshKick:
			t.Stop() // since Go 1.23 no stale tick is left to drain
			continue
		case <-t.C:
		}
		err := c.refreshToken(c.ctx, "")
		switch {
		case err == nil:
			// The kick it sent is read at the top of the loop.
		case errors.Is(err, ErrSessionEnded):
			c.endSession()
			return
		case c.ctx.Err() != nil:
			return
		default:
			wait = refreshRetry
		}
	}
}

// renewAfterRefusal is the answer to a refused token at the WebSocket
// (4001, or 401 at the upgrade): false when the session is over (no refresh
// token, or the refresh was refused); true when a new token is in place or
// the network failed the refresh (the reconnect backoff tries again).
func (c *Client) renewAfterRefusal(refused string) bool {
	if !c.hasSession() {
		return false
	}
	err := c.refreshToken(c.ctx, refused)
	return err == nil || !errors.Is(err, ErrUnauthorized)
}

// endSession is a refused refresh: the session is over. The connection is
// closed and the run loop, seeing ended, calls OnAuthExpired.
func (c *Client) endSession() {
	c.mu.Lock()
	c.ended = true
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		s.conn.CloseNow()
	}
}

// wsURL is the /ws URL to dial, the header to send, and the access token
// they stand for: with a session a single-use ticket in the URL (POST
// /ws-ticket), so the connection lives until the session ends; else the
// access token in the Authorization header.
func (c *Client) wsURL(ctx context.Context) (string, http.Header, string, error) {
	u := strings.Replace(c.cfg.BaseURL, "http", "ws", 1) + "/ws"
	tok := c.Token()
	if !c.hasSession() {
		return u, http.Header{"Authorization": {"Bearer " + tok}}, tok, nil
	}
	var r struct {
		Ticket string `json:"ticket"`
	}
	if err := c.call(ctx, http.MethodPost, "/ws-ticket", nil, &r); err != nil {
		return "", nil, tok, err
	}
	return u + "?ticket=" + url.QueryEscape(r.Ticket), nil, c.Token(), nil
}
