package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
)

// Consent (issue 14): a user's "who may add me to a group" setting and
// their blocks. The store keeps and enforces them for groups; the gateway
// serves the API and refuses sends in a direct conversation where either
// user blocks the other.

func (s *Server) consentRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/me/settings", s.authed(s.getSettings))
	mux.HandleFunc("PUT /api/v1/me/settings", s.authed(s.putSettings))
	mux.HandleFunc("GET /api/v1/blocks", s.authed(s.listBlocks))
	mux.HandleFunc("PUT /api/v1/blocks/{username}", s.authed(s.blockUser))
	mux.HandleFunc("DELETE /api/v1/blocks/{username}", s.authed(s.unblockUser))
}

type settings struct {
	AddPolicy storeclient.AddPolicy `json:"add_policy"`
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request, id identity) {
	p, err := s.store.AddPolicy(r.Context(), id.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, settings{AddPolicy: p})
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request, id identity) {
	var req settings
	if !decode(w, r, &req) {
		return
	}
	if !req.AddPolicy.Valid() {
		writeError(w, http.StatusBadRequest, "invalid_request", `add_policy must be "anyone", "contacts" or "nobody"`)
		return
	}
	if err := s.store.SetAddPolicy(r.Context(), id.User, req.AddPolicy); err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) listBlocks(w http.ResponseWriter, r *http.Request, id identity) {
	ids, err := s.store.Blocks(r.Context(), id.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	users, err := s.users.get(r.Context(), ids)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]apiUser, 0, len(ids))
	for _, u := range ids {
		if usr, ok := users[u]; ok {
			out = append(out, apiUser{ID: usr.ID, Username: usr.Username, DisplayName: usr.DisplayName})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) blockUser(w http.ResponseWriter, r *http.Request, id identity) {
	s.setBlock(w, r, id, true)
}

func (s *Server) unblockUser(w http.ResponseWriter, r *http.Request, id identity) {
	s.setBlock(w, r, id, false)
}

func (s *Server) setBlock(w http.ResponseWriter, r *http.Request, id identity, on bool) {
	ids, err := s.resolve(r.Context(), []string{r.PathValue("username")})
	if err != nil {
		if errors.Is(err, chat.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no such user")
			return
		}
		s.storeError(w, err)
		return
	}
	if ids[0] == id.User {
		writeError(w, http.StatusBadRequest, "invalid_request", "you cannot block yourself")
		return
	}
	if err := s.store.Block(r.Context(), id.User, ids[0], on); err != nil {
		s.storeError(w, err)
		return
	}
	s.blocks.forget(id.User, ids[0])
	w.WriteHeader(http.StatusNoContent)
}

// blockTTL is how long a gateway trusts what it learnt of a pair's
// blocks: a block made through another gateway applies to sends here
// within it (through this one, at once).
const blockTTL = 2 * time.Second

// maxBlockCache bounds the pairs remembered; past it the cache starts over.
const maxBlockCache = 100_000

// blockCache remembers, per direct conversation, whether either member
// blocks the other, so that a send costs no store round trip most times.
type blockCache struct {
	mu sync.Mutex
	m  map[[2]chat.ID]blockEntry
}

type blockEntry struct {
	blocked bool
	at      time.Time
}

func pairOf(a, b chat.ID) [2]chat.ID { return [2]chat.ID{min(a, b), max(a, b)} }

func (bc *blockCache) forget(a, b chat.ID) {
	bc.mu.Lock()
	delete(bc.m, pairOf(a, b))
	bc.mu.Unlock()
}

// blockedDirect reports whether conv is a direct conversation in which one
// member blocks the other.
func (s *Server) blockedDirect(ctx context.Context, conv string) (bool, error) {
	a, b, ok := chat.DirectMembers(conv)
	if !ok {
		return false, nil
	}
	k, now := pairOf(a, b), time.Now()
	s.blocks.mu.Lock()
	e, hit := s.blocks.m[k]
	s.blocks.mu.Unlock()
	if hit && now.Sub(e.at) < blockTTL {
		return e.blocked, nil
	}
	blocked, err := s.store.BlockedEither(ctx, a, b)
	if err != nil {
		return false, err
	}
	s.blocks.mu.Lock()
	if s.blocks.m == nil || len(s.blocks.m) >= maxBlockCache {
		s.blocks.m = make(map[[2]chat.ID]blockEntry)
	}
	s.blocks.m[k] = blockEntry{blocked: blocked, at: now}
	s.blocks.mu.Unlock()
	return blocked, nil
}
