package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/chatcluster/chat"
)

// Members of big groups travel on request, a page at a time, never inline
// (docs/PROTOCOL.md: member_count, the members request). Presence in a big
// group is on request too: each member of a page carries `online`, and the
// first page carries the group's online count.

// defaultMembersLimit is a members page's size when the request names none.
const defaultMembersLimit = 100

// membership tells whether user is a member of conv, with the conversation
// (members inline only when small).
func (s *Server) membership(ctx context.Context, conv string, user chat.ID) (chat.Conversation, bool, error) {
	return s.store.Membership(ctx, conv, user)
}

// membersPage is the answer to a members request, as an HTTP body or (Type
// and ID set) a WebSocket frame.
type membersPage struct {
	Type         string          `json:"type,omitempty"`
	ID           json.RawMessage `json:"id,omitempty"`
	Conversation string          `json:"conversation"`
	Members      []apiUser       `json:"members"`
	NextAfter    *chat.ID        `json:"next_after"`
	MemberCount  int             `json:"member_count"`
	OnlineCount  *int            `json:"online_count,omitempty"`
}

// parseMembersPage validates a members request's cursor and limit.
func parseMembersPage(after *flexID, limit *flexInt) (chat.ID, int, string) {
	a, n := chat.ID(0), defaultMembersLimit
	if after != nil {
		if !after.ok {
			return 0, 0, "after must be a user ID"
		}
		a = after.id
	}
	if limit != nil {
		if !limit.ok || limit.n < 1 {
			return 0, 0, "limit must be a number, at least 1"
		}
		n = min(limit.n, chat.MaxMembersPage)
	}
	return a, n, ""
}

// members reads a page of conv's members for member by, rendered with
// presence, bounded in bytes; the first page (after 0) also counts the
// members online.
func (s *Server) members(ctx context.Context, conv string, by, after chat.ID, limit int) (membersPage, error) {
	ids, more, count, err := s.store.Members(ctx, conv, by, after, limit)
	if err != nil {
		return membersPage{}, err
	}
	users, err := s.users.get(ctx, ids)
	if err != nil {
		return membersPage{}, err
	}
	mp := membersPage{Conversation: conv, Members: make([]apiUser, 0, len(ids)), MemberCount: count}
	used := 0
	for i, id := range ids {
		u := s.apiUserOf(users, id)
		b, _ := chat.Marshal(&u)
		used += len(b) + 1
		if used > chat.MaxPageBytes && i > 0 {
			more = true
			break
		}
		mp.Members = append(mp.Members, u)
	}
	if more && len(mp.Members) > 0 {
		last := mp.Members[len(mp.Members)-1].ID
		mp.NextAfter = &last
	}
	if after == 0 {
		n, err := s.onlineCount(ctx, conv, by, ids, more)
		if err != nil {
			return membersPage{}, err
		}
		mp.OnlineCount = &n
	}
	return mp, nil
}

// onlineCount counts conv's members online now. first is the first page of
// members already read; the rest are paged from the store.
func (s *Server) onlineCount(ctx context.Context, conv string, by chat.ID, first []chat.ID, more bool) (int, error) {
	n := 0
	count := func(ids []chat.ID) {
		for _, id := range ids {
			if s.presence.Online(id) {
				n++
			}
		}
	}
	count(first)
	for more && len(first) > 0 {
		var err error
		first, more, _, err = s.store.Members(ctx, conv, by, first[len(first)-1], chat.MaxMembersPage)
		if err != nil {
			return 0, err
		}
		count(first)
	}
	return n, nil
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, id identity) {
	conv := r.PathValue("id")
	q := r.URL.Query()
	var after *flexID
	if q.Has("after") {
		after = &flexID{}
		_ = after.UnmarshalJSON([]byte(q.Get("after")))
	}
	var limit *flexInt
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		limit = &flexInt{n: n, ok: err == nil}
	}
	a, n, msg := parseMembersPage(after, limit)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	if !chat.ValidConversationID(conv) {
		noConversation(w)
		return
	}
	mp, err := s.members(r.Context(), conv, id.User, a, n)
	if err != nil {
		s.convError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, mp)
}

func (s *Server) onMembers(ctx context.Context, c *Conn, req *request) {
	a, n, msg := parseMembersPage(req.After, req.Limit)
	if msg != "" {
		c.sendError(req.ID, codeBadRequest, msg)
		return
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	mp, err := s.members(ctx, conv, c.user, a, n)
	if err != nil {
		c.sendError(req.ID, codeUnavailable, "members are not available right now, retry")
		return
	}
	mp.Type, mp.ID = "members", req.ID
	c.sendJSON("members", mp)
}

// leaveGroup is DELETE /conversations/{id}/members/me: the caller leaves a
// group. 204; 404 unless a member; 400 for a direct conversation.
func (s *Server) leaveGroup(w http.ResponseWriter, r *http.Request, id identity) {
	conv := r.PathValue("id")
	if !chat.ValidConversationID(conv) {
		noConversation(w)
		return
	}
	if err := s.store.Leave(r.Context(), conv, id.User); err != nil {
		if errors.Is(err, chat.ErrInvalid) {
			writeError(w, http.StatusBadRequest, "invalid_request", "only a group can be left")
			return
		}
		s.convError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
