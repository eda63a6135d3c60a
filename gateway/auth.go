package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatcluster/chat"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"
)

// Errors of authentication.
var (
	ErrBadToken    = errors.New("gateway: invalid token")
	ErrBadPassword = errors.New("gateway: wrong username or password")
	ErrBusy        = errors.New("gateway: too many password checks at once")
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
	dummy    string        // a hash to verify against for unknown users
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
	a.dummy = encodeHash(make([]byte, saltLen), argon2.IDKey([]byte("x"), make([]byte, saltLen), argonTime, argonMemory, argonThreads, argonKeyLen))
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

// argon2id with OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

func (a *authenticator) acquire(ctx context.Context) error {
	select {
	case a.hashes <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ErrBusy
	}
}

func (a *authenticator) release() { <-a.hashes }

// hash returns password's argon2id hash in the PHC string format.
func (a *authenticator) hash(ctx context.Context, password string) (string, error) {
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer a.release()
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("gateway: salt: %w", err)
	}
	return encodeHash(salt, argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)), nil
}

// HashPassword returns password's argon2id hash as the gateway stores it,
// for tools that seed accounts without the HTTP API (the browser tests'
// 10,000-member group).
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("gateway: salt: %w", err)
	}
	return encodeHash(salt, argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)), nil
}

func encodeHash(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// check verifies password against an encoded hash ("" checks against a
// dummy so that unknown users take as long as known ones).
func (a *authenticator) check(ctx context.Context, encoded, password string) error {
	if encoded == "" {
		encoded = a.dummy
		password += "\x00never"
	}
	var v, m, t, p int
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return fmt.Errorf("%w: hash format", ErrBadPassword)
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil {
		return fmt.Errorf("%w: hash format", ErrBadPassword)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m <= 0 || t <= 0 || p <= 0 || m > 1<<22 || t > 64 || p > 64 {
		return fmt.Errorf("%w: hash parameters", ErrBadPassword)
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return fmt.Errorf("%w: hash encoding", ErrBadPassword)
	}
	if err := a.acquire(ctx); err != nil {
		return err
	}
	got := argon2.IDKey([]byte(password), salt, uint32(t), uint32(m), uint8(p), uint32(len(want)))
	a.release()
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrBadPassword
	}
	return nil
}
