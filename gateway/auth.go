package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/password"
	"github.com/golang-jwt/jwt/v5"
)

// Errors of authentication.
var (
	ErrBadToken    = errors.New("gateway: invalid token")
	ErrBadPassword = errors.New("gateway: wrong username or password")
	ErrBusy        = errors.New("gateway: too many password hashes at once")
)

// claims is what a token says: who (sub = user ID), their username, and
// the session (sid) it was issued to, by which it can be revoked.
type claims struct {
	Username string `json:"name"`
	Session  string `json:"sid"`
	// SessionEnds is when the session ends on its own (unix seconds): a
	// WebSocket opened with a ticket lives until then unless revoked.
	SessionEnds int64 `json:"sexp,omitempty"`
	jwt.RegisteredClaims
}

// identity is an authenticated user.
type identity struct {
	User    chat.ID
	Name    string
	Session chat.ID
	Expires time.Time
	// SessionEnds is when the session ends (zero when the token does not
	// say).
	SessionEnds time.Time
	// Ticket is the ID of the WebSocket ticket this identity came from.
	Ticket string
}

type authenticator struct {
	secret   []byte
	issuer   string
	audience string
	ttl      time.Duration
	parser   *jwt.Parser
	tickets  *jwt.Parser   // WebSocket tickets: another audience, so neither passes for the other
	refresh  []byte        // the key refresh tokens are signed with, derived from secret
	hashes   chan struct{} // semaphore bounding concurrent argon2 runs
}

func newAuthenticator(cfg *Config) *authenticator {
	a := &authenticator{
		secret: cfg.JWTSecret, issuer: cfg.JWTIssuer, audience: cfg.JWTAudience, ttl: cfg.TokenTTL,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(cfg.JWTIssuer),
			jwt.WithAudience(cfg.JWTAudience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
		),
		tickets: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(cfg.JWTIssuer),
			jwt.WithAudience(ticketAudience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
		),
		refresh: deriveKey(cfg.JWTSecret, "chat refresh tokens v1"),
		hashes:  make(chan struct{}, cfg.MaxHashes),
	}
	return a
}

func (a *authenticator) issue(u chat.User, session chat.Session, now time.Time) (string, error) {
	c := claims{
		Username:    u.Username,
		Session:     session.ID.String(),
		SessionEnds: session.ExpiresAt.Unix(),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID.String(),
			Issuer:    a.issuer,
			Audience:  jwt.ClaimStrings{a.audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
	if err != nil {
		return "", fmt.Errorf("gateway: sign token: %w", err)
	}
	return s, nil
}

func (a *authenticator) verify(token string) (identity, error) {
	return a.verifyWith(a.parser, token)
}

func (a *authenticator) verifyWith(p *jwt.Parser, token string) (identity, error) {
	var c claims
	t, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil })
	if err != nil || !t.Valid {
		return identity{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	id, err := chat.ParseID(c.Subject)
	if err != nil || id == 0 {
		return identity{}, fmt.Errorf("%w: subject", ErrBadToken)
	}
	// A token without a session cannot be revoked: refused (tokens from
	// before sessions existed lasted 7 days and are refused since).
	sid, err := chat.ParseID(c.Session)
	if err != nil || sid == 0 {
		return identity{}, fmt.Errorf("%w: no session", ErrBadToken)
	}
	ident := identity{User: id, Name: c.Username, Session: sid, Expires: c.ExpiresAt.Time, Ticket: c.ID}
	if c.SessionEnds > 0 {
		ident.SessionEnds = time.Unix(c.SessionEnds, 0)
	}
	return ident, nil
}

// bearer extracts the token of an "Authorization: Bearer" header value.
func bearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (a *authenticator) acquire(ctx context.Context) error {
	select {
	case a.hashes <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ErrBusy
	}
}

func (a *authenticator) release() { <-a.hashes }

// hash returns password's argon2id hash (package password), at most
// MaxHashes at a time. Checking is the store's: a hash never leaves it.
func (a *authenticator) hash(ctx context.Context, pw string) (string, error) {
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer a.release()
	return password.Hash(pw)
}

// HashPassword returns password's argon2id hash as the gateway stores it,
// for tools that seed accounts without the HTTP API (the browser tests'
// 10,000-member group).
func HashPassword(pw string) (string, error) { return password.Hash(pw) }
