// Package fakechat is a small in-memory server speaking the subset of the
// client protocol (PROTOCOL.md) that the load generator uses: sign-up, group
// creation, member addition, /metrics, and a WebSocket with hello, send/ack
// and message fan-out. It lets the generator's tests run without the real
// server, and can misbehave on purpose (drop acks, skip deliveries).
package fakechat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options make the server misbehave for tests.
type Options struct {
	// DropEvery > 0: every DropEvery-th message is neither acked nor delivered.
	DropEvery int64
	// PingEvery > 0: the server pings every connection this often.
	PingEvery time.Duration
	// RateLimitAfter > 0: a connection's sends past this many get rate_limited.
	RateLimitAfter int64
}

type user struct {
	id, name, token string
}

type client struct {
	u     *user
	c     *websocket.Conn
	sends atomic.Int64
}

// Server is the fake. Close it to end every connection and goroutine.
type Server struct {
	opts Options
	hs   *httptest.Server
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	users    map[string]*user // by name
	tokens   map[string]*user
	convs    map[string][]string // conversation → member user IDs
	clients  map[string]map[*client]struct{}
	nextID   int64
	msgs     atomic.Int64
	Upgrades atomic.Int64
}

// New starts a server on 127.0.0.1:0.
func New(opts Options) *Server {
	s := &Server{opts: opts, users: map[string]*user{}, tokens: map[string]*user{},
		convs: map[string][]string{}, clients: map[string]map[*client]struct{}{}, nextID: 1000}
	s.ctx, s.stop = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/signup", s.signup)
	mux.HandleFunc("POST /api/v1/login", s.login)
	mux.HandleFunc("POST /api/v1/conversations", s.createGroup)
	mux.HandleFunc("POST /api/v1/conversations/{id}/members", s.addMember)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", 100<<20+s.Upgrades.Load()*10000)
	})
	mux.HandleFunc("GET /ws", s.ws)
	s.hs = httptest.NewServer(mux)
	return s
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.hs.URL }

// Close ends all connections and waits for their goroutines. Safe twice.
func (s *Server) Close() {
	s.stop()
	s.hs.Close()
	s.wg.Wait()
}

func (s *Server) id() string {
	s.nextID++
	return strconv.FormatInt(s.nextID, 10)
}

func writeErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) auth(r *http.Request) *user {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[tok]
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	var in struct{ Username, Password string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Username) < 3 || len(in.Password) < 8 {
		writeErr(w, 400, "invalid_request")
		return
	}
	s.mu.Lock()
	if _, ok := s.users[in.Username]; ok {
		s.mu.Unlock()
		writeErr(w, 409, "username_taken")
		return
	}
	u := &user{id: s.id(), name: in.Username, token: "tok" + s.id()}
	s.users[u.name], s.tokens[u.token] = u, u
	s.mu.Unlock()
	writeJSON(w, 201, map[string]any{"user": map[string]string{"id": u.id, "username": u.name}, "token": u.token})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in struct{ Username, Password string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	u, ok := s.users[in.Username]
	s.mu.Unlock()
	if !ok {
		writeErr(w, 401, "unauthorized")
		return
	}
	writeJSON(w, 200, map[string]any{"user": map[string]string{"id": u.id, "username": u.name}, "token": u.token})
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	u := s.auth(r)
	if u == nil {
		writeErr(w, 401, "unauthorized")
		return
	}
	var in struct {
		Title   string
		Members []string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeErr(w, 400, "invalid_request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := []string{u.id}
	for _, n := range in.Members {
		m, ok := s.users[n]
		if !ok {
			writeErr(w, 404, "not_found")
			return
		}
		ids = append(ids, m.id)
	}
	id := s.id()
	s.convs[id] = ids
	writeJSON(w, 201, map[string]any{"id": id, "kind": "group", "title": in.Title})
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	u := s.auth(r)
	if u == nil {
		writeErr(w, 401, "unauthorized")
		return
	}
	var in struct{ Username string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	m, ok := s.users[in.Username]
	if _, exists := s.convs[id]; !exists || !ok {
		writeErr(w, 404, "not_found")
		return
	}
	s.convs[id] = append(s.convs[id], m.id)
	writeJSON(w, 200, map[string]any{"id": id})
}

func (s *Server) ws(w http.ResponseWriter, r *http.Request) {
	u := s.auth(r)
	if u == nil {
		writeErr(w, 401, "unauthorized")
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.Upgrades.Add(1)
	cl := &client{u: u, c: c}
	s.mu.Lock()
	if s.clients[u.id] == nil {
		s.clients[u.id] = map[*client]struct{}{}
	}
	s.clients[u.id][cl] = struct{}{}
	var convs []map[string]string
	for id, members := range s.convs {
		for _, m := range members {
			if m == u.id {
				convs = append(convs, map[string]string{"id": id, "kind": "group"})
				break
			}
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients[u.id], cl)
		s.mu.Unlock()
		c.CloseNow()
	}()
	hello, _ := json.Marshal(map[string]any{"type": "hello", "user": map[string]string{"id": u.id, "username": u.name}, "conversations": convs})
	if err := c.Write(s.ctx, websocket.MessageText, hello); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	if s.opts.PingEvery > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTicker(s.opts.PingEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if c.Ping(ctx) != nil {
						return
					}
				}
			}
		}()
	}
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		s.onFrame(ctx, cl, p)
	}
}

func (s *Server) onFrame(ctx context.Context, cl *client, p []byte) {
	var f struct {
		Type, ID, Conversation, Body string
		ClientID                     string `json:"client_id"`
	}
	if json.Unmarshal(p, &f) != nil || f.Type != "send" {
		b, _ := json.Marshal(map[string]string{"type": "error", "code": "bad_request", "message": "not a send"})
		_ = cl.c.Write(ctx, websocket.MessageText, b)
		return
	}
	if s.opts.RateLimitAfter > 0 && cl.sends.Add(1) > s.opts.RateLimitAfter {
		b, _ := json.Marshal(map[string]string{"type": "error", "id": f.ID, "code": "rate_limited", "message": "slow down"})
		_ = cl.c.Write(ctx, websocket.MessageText, b)
		return
	}
	n := s.msgs.Add(1)
	if s.opts.DropEvery > 0 && n%s.opts.DropEvery == 0 {
		return
	}
	s.mu.Lock()
	members := s.convs[f.Conversation]
	id := s.id()
	var targets []*client
	for _, m := range members {
		for t := range s.clients[m] {
			if t != cl {
				targets = append(targets, t)
			}
		}
	}
	s.mu.Unlock()
	msg := map[string]string{"id": id, "conversation": f.Conversation, "sender": cl.u.id, "body": f.Body,
		"sent_at": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "client_id": f.ClientID}
	ack, _ := json.Marshal(map[string]any{"type": "ack", "id": f.ID, "message": msg})
	_ = cl.c.Write(ctx, websocket.MessageText, ack)
	out, _ := json.Marshal(map[string]any{"message": msg, "type": "message"})
	for _, t := range targets {
		_ = t.c.Write(ctx, websocket.MessageText, out)
	}
}
