package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// routes is the HTTP side of PROTOCOL.md. /metrics and the profiler are
// not here: the process serves them on another address (cmd/chat
// --metrics-addr), so the public port never exposes them.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/signup", s.signup)
	mux.HandleFunc("POST /api/v1/login", s.login)
	mux.HandleFunc("GET /api/v1/me", s.authed(s.me))
	mux.HandleFunc("GET /api/v1/users", s.authed(s.searchUsers))
	mux.HandleFunc("GET /api/v1/conversations", s.authed(s.listConversations))
	mux.HandleFunc("POST /api/v1/conversations/direct", s.authed(s.direct))
	mux.HandleFunc("POST /api/v1/conversations", s.authed(s.createGroup))
	mux.HandleFunc("POST /api/v1/conversations/{id}/members", s.authed(s.addMember))
	mux.HandleFunc("GET /api/v1/conversations/{id}/members", s.authed(s.listMembers))
	mux.HandleFunc("DELETE /api/v1/conversations/{id}/members/me", s.authed(s.leaveGroup))
	mux.HandleFunc("GET /api/v1/conversations/{id}/messages", s.authed(s.messages))
	s.consentRoutes(mux)
	s.pushRoutes(mux)
	s.sessionRoutes(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"unavailable"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("GET /ws", s.serveHTTPUpgrade)
	// Metrics and the profiler live on the process's metrics address;
	// here they are refused outright rather than answered by the web page.
	notHere := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "not served on this port")
	}
	mux.HandleFunc("/metrics", notHere)
	mux.HandleFunc("/debug/", notHere)
	if s.cfg.Web != nil {
		mux.Handle("/", s.cfg.Web)
	}
	return s.withOrigin(methodsOf(mux))
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e apiError
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // JSON for programs, never parsed as HTML
	_ = enc.Encode(v)
}

// msgNoConversation is the one wording of every 404 of a conversation, on
// HTTP and the WebSocket alike: a conversation that does not exist and one
// the caller is not in read the same, so a stranger cannot tell whether two
// users talk (direct conversation IDs are built from public user IDs).
const msgNoConversation = "no such conversation"

// noConversation answers 404 for a conversation the caller cannot see.
func noConversation(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "not_found", msgNoConversation)
}

// convError is storeError for a call on one conversation: not found there
// is the conversation, in msgNoConversation's words.
func (s *Server) convError(w http.ResponseWriter, err error) {
	if errors.Is(err, chat.ErrNotFound) {
		noConversation(w)
		return
	}
	s.storeError(w, err)
}

// secondsToNextHour: the hourly limits start over at the next clock hour.
func secondsToNextHour() int {
	t := time.Now()
	return int(t.Truncate(time.Hour).Add(time.Hour).Sub(t)/time.Second) + 1
}

// storeError answers a failed store call with the fitting status.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, chat.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, chat.ErrUsernameTaken):
		writeError(w, http.StatusConflict, "username_taken", "that username is taken")
	case errors.Is(err, chat.ErrInvalid), errors.Is(err, chat.ErrTooMany):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, chat.ErrNotAllowed):
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
	case errors.Is(err, chat.ErrLimited):
		w.Header().Set("Retry-After", strconv.Itoa(secondsToNextHour()))
		writeError(w, http.StatusTooManyRequests, "rate_limited", err.Error())
	case errors.Is(err, ErrBusy), errors.Is(err, chat.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "try again shortly")
	default:
		s.log.Error("request failed", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "try again shortly")
	}
}

// maxBody bounds a request body.
const maxBody = 64 << 10

// decode reads a small JSON body into v: one JSON value and nothing after
// it (but white space); 413 over maxBody.
//
// The body is read whole first (it is at most 64 KiB) and must be UTF-8:
// encoding/json would otherwise turn invalid bytes into U+FFFD silently,
// storing a name or title other than the one sent.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "body over 65536 bytes")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", "body could not be read")
		return false
	case !utf8.Valid(body):
		writeError(w, http.StatusBadRequest, "invalid_request", "body is not valid UTF-8")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	err = dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errTrailing
		}
	}
	switch {
	case errors.Is(err, errTrailing):
		writeError(w, http.StatusBadRequest, "invalid_request", "body must be one JSON object, with nothing after it")
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", "body must be a JSON object")
		return false
	}
	return true
}

var errTrailing = errors.New("gateway: bytes after the JSON body")

var prefixRE = regexp.MustCompile(`^[a-z0-9_.-]+$`)

type credentials struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Device      string `json:"device"` // the session's name in the sessions list
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	var req credentials
	if !decode(w, r, &req) {
		return
	}
	name, ok := chat.FoldUsername(req.Username)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_request", "username must be 3-32 characters of a-z, 0-9, _ . -")
		return
	}
	if chat.ReservedUsername(name) {
		writeError(w, http.StatusConflict, "username_taken", "that username is reserved")
		return
	}
	if !chat.ValidPassword(req.Password) {
		writeError(w, http.StatusBadRequest, "invalid_request", "password must be 8-256 characters")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	display, msg, err := s.displayName(ctx, req.DisplayName, name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	addr := s.clientAddr(r)
	if reason, wait := s.throttle.beginSignup(addr, time.Now()); reason != "" {
		writeThrottled(w, wait, "too many signups from this address")
		return
	}
	hash, err := s.auth.hash(ctx, req.Password)
	if err != nil {
		s.throttle.signupNotTried(addr, time.Now())
		s.storeError(w, err)
		return
	}
	u, err := s.store.Signup(ctx, chat.Account{User: chat.User{Username: name, DisplayName: display}, PasswordHash: hash, CreatedAt: time.Now().UTC()})
	if err != nil {
		if !errors.Is(err, chat.ErrUsernameTaken) {
			s.throttle.signupNotTried(addr, time.Now())
		}
		s.storeError(w, err)
		return
	}
	s.startSession(w, r, http.StatusCreated, u, req.Device)
}

// displayName checks a new display name of the user named username: ""
// means the username. It answers the name to store, or why it is refused
// (msg), or a store error.
func (s *Server) displayName(ctx context.Context, display, username string) (string, string, error) {
	if strings.TrimSpace(display) == "" {
		return username, "", nil
	}
	clean, ok := chat.CleanDisplayName(display)
	if !ok {
		return "", "display_name must be 1-64 characters, without control, zero-width or bidi-override characters", nil
	}
	if skel := chat.DisplayNameSkeleton(clean); skel != "" && skel != username {
		_, err := s.store.Account(ctx, skel)
		switch {
		case err == nil:
			return "", "display_name may not be another user's username", nil
		case !errors.Is(err, chat.ErrNotFound):
			return "", "", err
		}
	}
	return clean, "", nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req credentials
	if !decode(w, r, &req) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if req.Username == "" || req.Password == "" {
		// A request without the fields is malformed, not a failed login.
		writeError(w, http.StatusBadRequest, "invalid_request", "username and password are required")
		return
	}
	fail := func() {
		s.m.authFailures.WithLabelValues("login").Inc()
		writeError(w, http.StatusUnauthorized, "unauthorized", "wrong username or password")
	}
	name, ok := chat.FoldUsername(req.Username)
	// Throttled before the store is asked (throttle.go): a refused try
	// costs no password check.
	key, addr := loginKey(name, ok, req.Username), s.clientAddr(r)
	if reason, wait := s.throttle.beginLogin(key, addr, time.Now()); reason != "" {
		writeThrottled(w, wait, "too many failed logins")
		return
	}
	if !ok || !chat.ValidPassword(req.Password) {
		fail() // no account has such a name or password: nothing to ask
		return
	}
	// The store checks the password: a hash never leaves it. An unknown
	// user costs it the same work and gets the same answer.
	u, err := s.store.Login(ctx, name, req.Password)
	if errors.Is(err, chat.ErrWrongPassword) {
		fail()
		return
	}
	if err != nil {
		s.throttle.loginNotTried(key, addr, time.Now())
		s.storeError(w, err)
		return
	}
	s.throttle.loginSucceeded(key, addr, time.Now())
	s.startSession(w, r, http.StatusOK, u, req.Device)
}

// authed wraps a handler that needs a valid bearer token.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := s.verifyToken(bearer(r.Header.Get("Authorization")))
		if err != nil {
			s.m.authFailures.WithLabelValues("token").Inc()
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid token")
			return
		}
		h(w, r, id)
	}
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, id identity) {
	u, err := s.users.one(r.Context(), id.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request, id identity) {
	// ASCII letters only are folded: strings.ToLower would turn a Kelvin
	// sign into "k", finding names other than the one typed, which sign
	// up and log in refuse (chat.FoldUsername).
	prefix := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, r.URL.Query().Get("prefix"))
	if prefix == "" || len(prefix) > 32 || !prefixRE.MatchString(prefix) {
		writeError(w, http.StatusBadRequest, "invalid_request", "prefix must be 1-32 characters of a-z, 0-9, _ . -")
		return
	}
	users, err := s.store.Search(r.Context(), prefix, 20)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if users == nil {
		users = []chat.User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, id identity) {
	q := r.URL.Query()
	p := chat.ListPage{Limit: s.cfg.HelloConversations}
	if v := q.Get("limit"); q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit must be a positive number")
			return
		}
		p.Limit = min(n, p.Limit)
	}
	if q.Has("before") {
		var ok bool
		if p.Activity, p.Conversation, ok = parseListCursor(q.Get("before")); !ok {
			writeError(w, http.StatusBadRequest, "invalid_request", "before must be a next_before of this list")
			return
		}
	}
	lp, err := s.conversationPage(r.Context(), id.User, p)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": lp.convs, "next_before": lp.next})
}

func (s *Server) direct(w http.ResponseWriter, r *http.Request, id identity) {
	var req struct {
		Username string `json:"username"`
	}
	if !decode(w, r, &req) {
		return
	}
	name, ok := chat.FoldUsername(req.Username)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such user")
		return
	}
	other, err := s.store.Account(r.Context(), name)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if other.ID == id.User {
		writeError(w, http.StatusBadRequest, "invalid_request", "a direct conversation needs another user")
		return
	}
	cv, _, err := s.store.Direct(r.Context(), id.User, other.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.respondConversation(w, r, id, http.StatusOK, cv)
}

func (s *Server) respondConversation(w http.ResponseWriter, r *http.Request, id identity, status int, cv chat.Conversation) {
	ac, err := s.renderOne(r.Context(), id.User, cv)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, status, ac)
}

// resolve turns usernames into user IDs; 404 for any unknown one. A page
// of up to chat.MaxMembersPage names is looked up resolveParallel at a
// time.
func (s *Server) resolve(ctx context.Context, names []string) ([]chat.ID, error) {
	uniq := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		name, ok := chat.FoldUsername(n)
		if !ok {
			return nil, chat.ErrNotFound
		}
		if !seen[name] {
			seen[name] = true
			uniq = append(uniq, name)
		}
	}
	ids := make([]chat.ID, len(uniq))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveParallel)
	for i, name := range uniq {
		g.Go(func() error {
			a, err := s.store.Account(gctx, name)
			ids[i] = a.ID
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return ids, nil
}

// resolveParallel bounds the account lookups of one request in flight.
const resolveParallel = 16

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, id identity) {
	var req struct {
		Title   string   `json:"title"`
		Members []string `json:"members"`
	}
	if !decode(w, r, &req) {
		return
	}
	title := strings.TrimSpace(req.Title)
	if !chat.ValidTitle(title) {
		writeError(w, http.StatusBadRequest, "invalid_request", "title must be 1-128 characters, with no control, zero-width or direction-changing characters")
		return
	}
	// A group starts with at most a page of members and grows by pages.
	if len(req.Members)+1 > min(s.cfg.MaxMembers, chat.MaxMembersPage) {
		writeError(w, http.StatusBadRequest, "invalid_request", "too many members")
		return
	}
	ids, err := s.resolve(r.Context(), req.Members)
	if err != nil {
		s.storeError(w, err)
		return
	}
	cv, err := s.store.Group(r.Context(), title, id.User, ids)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.respondConversation(w, r, id, http.StatusCreated, cv)
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, id identity) {
	conv := r.PathValue("id")
	var req struct {
		Username  string   `json:"username"`
		Usernames []string `json:"usernames"` // (extension) a page of up to chat.MaxMembersPage
	}
	if !decode(w, r, &req) {
		return
	}
	names := req.Usernames
	if req.Username != "" {
		names = append(names, req.Username)
	}
	if len(names) == 0 || len(names) > chat.MaxMembersPage {
		writeError(w, http.StatusBadRequest, "invalid_request", "give a username, or usernames: 1-1000 of them")
		return
	}
	if !s.memberHTTP(w, r, id, conv) {
		return
	}
	ids, err := s.resolve(r.Context(), names)
	if err != nil {
		s.storeError(w, err)
		return
	}
	cv, _, err := s.store.AddMembers(r.Context(), conv, id.User, ids)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.respondConversation(w, r, id, http.StatusOK, cv)
}

// memberHTTP answers 404 unless the caller is in the conversation (its
// existence is not disclosed to others).
func (s *Server) memberHTTP(w http.ResponseWriter, r *http.Request, id identity, conv string) bool {
	if !chat.ValidConversationID(conv) {
		noConversation(w)
		return false
	}
	_, member, err := s.membership(r.Context(), conv, id.User)
	if err != nil {
		s.storeError(w, err)
		return false
	}
	if !member {
		noConversation(w)
		return false
	}
	return true
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, id identity) {
	conv := r.PathValue("id")
	q := r.URL.Query()
	var before, after *flexID
	if q.Has("before") {
		before = &flexID{}
		_ = before.UnmarshalJSON([]byte(q.Get("before")))
	}
	if q.Has("after") {
		after = &flexID{}
		_ = after.UnmarshalJSON([]byte(q.Get("after")))
	}
	var limit *flexInt
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		limit = &flexInt{n: n, ok: err == nil}
	}
	p, msg := parsePage(before, after, limit)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	if !s.memberHTTP(w, r, id, conv) {
		return
	}
	p.Viewer = id.User
	page, err := s.historyPage(r.Context(), conv, p)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page.render(nil, false))
}
