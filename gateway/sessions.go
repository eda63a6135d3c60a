package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"
)

// Sessions (PROTOCOL.md, "Sessions"). Login and signup start a session and
// answer a short-lived access token (a JWT naming the session) and a
// refresh token. A refresh token is
//
//	base64url(session ID 8 | generation 4 | random 16 | HMAC 16)
//
// signed with a key derived from the JWT secret, so a gateway can tell a
// genuine retired token (reuse: the session ends) from a forged one (just
// refused, so nobody can end someone's session by guessing) before asking
// the store, which keeps only the SHA-256 of the current one.

// ticketAudience is the audience of WebSocket tickets.
const ticketAudience = "chat-ws-ticket"

// ErrBadRefresh is a refresh token that is malformed or not ours.
var ErrBadRefresh = errors.New("gateway: invalid refresh token")

const (
	refreshPayload = 8 + 4 + 16
	refreshMAC     = 16
)

func deriveKey(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// newRefresh makes the refresh token of generation gen of session sid and
// its hash.
func (a *authenticator) newRefresh(sid chat.ID, gen uint32) (string, []byte, error) {
	b := make([]byte, refreshPayload, refreshPayload+refreshMAC)
	binary.BigEndian.PutUint64(b, uint64(sid))
	binary.BigEndian.PutUint32(b[8:], gen)
	if _, err := rand.Read(b[12:refreshPayload]); err != nil {
		return "", nil, fmt.Errorf("gateway: refresh token: %w", err)
	}
	m := hmac.New(sha256.New, a.refresh)
	m.Write(b)
	b = m.Sum(b)[:refreshPayload+refreshMAC]
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, refreshHash(tok), nil
}

func refreshHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// parseRefresh checks a refresh token's signature and returns its session
// and generation.
func (a *authenticator) parseRefresh(tok string) (chat.ID, uint32, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != refreshPayload+refreshMAC {
		return 0, 0, ErrBadRefresh
	}
	m := hmac.New(sha256.New, a.refresh)
	m.Write(b[:refreshPayload])
	if !hmac.Equal(m.Sum(nil)[:refreshMAC], b[refreshPayload:]) {
		return 0, 0, ErrBadRefresh
	}
	return chat.ID(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint32(b[8:]), nil
}

// issueTicket makes a single-use WebSocket ticket for id.
func (a *authenticator) issueTicket(id identity, ttl time.Duration, now time.Time) (string, error) {
	c := claims{
		Username: id.Name,
		Session:  id.Session.String(),
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        nuid.Next(),
			Subject:   id.User.String(),
			Issuer:    a.issuer,
			Audience:  jwt.ClaimStrings{ticketAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	if !id.SessionEnds.IsZero() {
		c.SessionEnds = id.SessionEnds.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.secret)
	if err != nil {
		return "", fmt.Errorf("gateway: sign ticket: %w", err)
	}
	return s, nil
}

// sessionRoutes adds the session API to mux.
func (s *Server) sessionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/token", s.refreshToken)
	mux.HandleFunc("POST /api/v1/logout", s.authed(s.logout))
	mux.HandleFunc("GET /api/v1/sessions", s.authed(s.listSessions))
	mux.HandleFunc("DELETE /api/v1/sessions/{id}", s.authed(s.endSession))
	mux.HandleFunc("POST /api/v1/password", s.authed(s.changePassword))
	mux.HandleFunc("POST /api/v1/ws-ticket", s.authed(s.wsTicket))
}

// verifyToken checks an access token and that its session was not revoked.
func (s *Server) verifyToken(tok string) (identity, error) {
	if tok == "" {
		return identity{}, ErrBadToken
	}
	id, err := s.auth.verify(tok)
	if err != nil {
		return identity{}, err
	}
	if s.revocations.Revoked(id.Session) {
		return identity{}, fmt.Errorf("%w: session ended", ErrBadToken)
	}
	return id, nil
}

// redeemTicket checks a WebSocket ticket and claims it (single use across
// the cluster).
func (s *Server) redeemTicket(ctx context.Context, tok string) (identity, error) {
	id, err := s.auth.verifyWith(s.auth.tickets, tok)
	if err != nil {
		return identity{}, err
	}
	if id.Ticket == "" || s.revocations.Revoked(id.Session) {
		return identity{}, fmt.Errorf("%w: ticket", ErrBadToken)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.tickets.Claim(ctx, id.Ticket); err != nil {
		if !errors.Is(err, router.ErrTicketUsed) {
			s.log.Warn("ticket claim failed", zap.Error(err))
		}
		return identity{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	// The socket lives as long as the session (a revocation closes it);
	// the ticket's own expiry only bounds its redemption.
	id.Expires = id.SessionEnds
	return id, nil
}

type authResponse struct {
	User         chat.User `json:"user"`
	Token        string    `json:"token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresIn    int       `json:"expires_in"`
}

// deviceName is the name a session is listed under: what the client said,
// else its User-Agent, without control characters, at most chat.MaxDevice
// code points.
func deviceName(given, userAgent string) string {
	d := strings.TrimSpace(given)
	if d == "" {
		d = strings.TrimSpace(userAgent)
	}
	var b strings.Builder
	n := 0
	for _, r := range d {
		if n == chat.MaxDevice {
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		b.WriteRune(r)
		n++
	}
	if b.Len() == 0 {
		return "unknown device"
	}
	return b.String()
}

// startSession starts a session for u and answers its tokens.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, status int, u chat.User, device string) {
	now := time.Now()
	// The session ID is the store's to assign, yet the refresh token names
	// it: the store gets a placeholder hash, and the real token (generation
	// 1) comes from an immediate rotation. Two round trips, but only at
	// login, and the store never sees a token.
	tmp := make([]byte, sha256.Size)
	if _, err := rand.Read(tmp); err != nil {
		s.storeError(w, err)
		return
	}
	sess, err := s.store.CreateSession(r.Context(), chat.Session{
		User: u.ID, Device: deviceName(device, r.Header.Get("User-Agent")),
		RefreshHash: tmp, ExpiresAt: now.Add(s.cfg.SessionTTL),
	})
	if err != nil {
		s.storeError(w, err)
		return
	}
	refresh, hash, err := s.auth.newRefresh(sess.ID, 1)
	if err == nil {
		sess, err = s.store.RefreshSession(r.Context(), storeclient.SessionRefreshRequest{ID: sess.ID, Generation: 0, Hash: tmp, NewHash: hash})
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.respondTokens(w, status, u, sess, refresh)
}

func (s *Server) respondTokens(w http.ResponseWriter, status int, u chat.User, sess chat.Session, refresh string) {
	tok, err := s.auth.issue(u, sess, time.Now())
	if err != nil {
		s.storeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, authResponse{User: u, Token: tok, RefreshToken: refresh, ExpiresIn: int(s.cfg.TokenTTL / time.Second)})
}

func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if !decode(w, r, &req) {
		return
	}
	refused := func() {
		s.m.authFailures.WithLabelValues("refresh").Inc()
		writeError(w, http.StatusUnauthorized, "unauthorized", "invalid or expired refresh token")
	}
	sid, gen, err := s.auth.parseRefresh(req.RefreshToken)
	if err != nil || s.revocations.Revoked(sid) {
		refused()
		return
	}
	next, hash, err := s.auth.newRefresh(sid, gen+1)
	if err != nil {
		s.storeError(w, err)
		return
	}
	sess, err := s.store.RefreshSession(r.Context(), storeclient.SessionRefreshRequest{
		ID: sid, Generation: gen, Hash: refreshHash(req.RefreshToken), NewHash: hash,
	})
	switch {
	case errors.Is(err, chat.ErrRevoked):
		s.revocations.Add(0, []chat.ID{sid})
		s.m.authFailures.WithLabelValues("refresh_reuse").Inc()
		refused()
		return
	case errors.Is(err, chat.ErrNotFound):
		refused()
		return
	case err != nil:
		s.storeError(w, err)
		return
	}
	u, err := s.users.one(r.Context(), sess.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.respondTokens(w, http.StatusOK, u, sess, next)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, id identity) {
	var ended []chat.ID
	var err error
	switch r.URL.Query().Get("all") {
	case "true", "1":
		ended, err = s.store.EndSessions(r.Context(), id.User, 0)
		if err == nil {
			// Signed out everywhere: no device gets notifications any more.
			_, err = s.store.DeleteDevice(r.Context(), id.User, "")
		}
	case "", "false", "0":
		err = s.store.EndSession(r.Context(), id.User, id.Session)
		if errors.Is(err, chat.ErrNotFound) {
			err = nil // ended already: logging out twice is fine
		}
		ended = []chat.ID{id.Session}
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", "all must be true or false")
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	ended = append(ended, id.Session)
	s.revocations.Add(id.User, ended)
	w.WriteHeader(http.StatusNoContent)
}

type sessionView struct {
	ID        chat.ID `json:"id"`
	Device    string  `json:"device"`
	CreatedAt string  `json:"created_at"`
	LastSeen  string  `json:"last_seen"`
	Current   bool    `json:"current"`
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, id identity) {
	all, err := s.store.Sessions(r.Context(), id.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]sessionView, 0, len(all))
	for _, ss := range all {
		out = append(out, sessionView{ID: ss.ID, Device: ss.Device, CreatedAt: chat.FormatTime(ss.CreatedAt),
			LastSeen: chat.FormatTime(ss.LastSeen), Current: ss.ID == id.Session})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (s *Server) endSession(w http.ResponseWriter, r *http.Request, id identity) {
	sid, err := chat.ParseID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	if err := s.store.EndSession(r.Context(), id.User, sid); err != nil {
		if errors.Is(err, chat.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no such session")
			return
		}
		s.storeError(w, err)
		return
	}
	s.revocations.Add(id.User, []chat.ID{sid})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, id identity) {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !chat.ValidPassword(req.New) {
		writeError(w, http.StatusBadRequest, "invalid_request", "new_password must be 8-256 characters")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if !chat.ValidPassword(req.Current) {
		s.m.authFailures.WithLabelValues("password").Inc()
		writeError(w, http.StatusBadRequest, "invalid_request", "the current password is wrong")
		return
	}
	hash, err := s.auth.hash(ctx, req.New)
	if err != nil {
		s.storeError(w, err)
		return
	}
	// The store checks the current password (a hash never leaves it)
	// before it stores the new one.
	ended, err := s.store.SetPassword(ctx, storeclient.PasswordRequest{User: id.User, Username: id.Name, Current: req.Current, Hash: hash, Keep: id.Session})
	switch {
	case errors.Is(err, chat.ErrWrongPassword):
		s.m.authFailures.WithLabelValues("password").Inc()
		// Not 401: the caller's token is fine, and clients log out on 401.
		writeError(w, http.StatusBadRequest, "invalid_request", "the current password is wrong")
		return
	case errors.Is(err, chat.ErrNotFound):
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid token")
		return
	case err != nil:
		s.storeError(w, err)
		return
	}
	s.revocations.Add(id.User, ended)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) wsTicket(w http.ResponseWriter, r *http.Request, id identity) {
	t, err := s.auth.issueTicket(id, s.cfg.TicketTTL, time.Now())
	if err != nil {
		s.storeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t, "expires_in": int(s.cfg.TicketTTL / time.Second)})
}

// onRevoke closes the local WebSockets of revoked sessions with 4001.
func (s *Server) onRevoke(_ chat.ID, sessions []chat.ID) {
	set := make(map[chat.ID]struct{}, len(sessions))
	for _, id := range sessions {
		set[id] = struct{}{}
	}
	var doomed []*Conn
	s.hub.each(func(c *Conn) {
		if _, ok := set[c.session]; ok {
			doomed = append(doomed, c)
		}
	})
	for _, c := range doomed {
		c.closeWith(statusTokenExpired, reasonRevoked, "session ended")
	}
}

var _ ws.StatusCode = statusTokenExpired
