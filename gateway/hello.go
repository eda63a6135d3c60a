package gateway

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/chatcluster/chat"
)

// apiUser is PROTOCOL.md's User, with presence where it is known.
type apiUser struct {
	ID          chat.ID `json:"id"`
	Username    string  `json:"username"`
	DisplayName string  `json:"display_name"`
	Online      *bool   `json:"online,omitempty"`
}

// apiConversation is PROTOCOL.md's Conversation as one reader sees it.
// Members is left out (nil) for a group bigger than chat.MaxInlineMembers:
// its members are paged on request (docs/PROTOCOL.md, member_count).
type apiConversation struct {
	ID          string        `json:"id"`
	Kind        chat.Kind     `json:"kind"`
	Title       string        `json:"title"`
	Members     []apiUser     `json:"members,omitempty"`
	MemberCount int           `json:"member_count"`
	LastMessage *chat.Message `json:"last_message"`
	Unread      int           `json:"unread"`
}

// render turns stored conversations into what reader sees: member users
// for small conversations, a direct conversation's title being the other
// member's display name.
func (s *Server) render(ctx context.Context, reader chat.ID, sums []chat.Summary) ([]apiConversation, error) {
	var ids []chat.ID
	for i := range sums {
		if sums[i].Inline() {
			ids = append(ids, sums[i].Members...)
		}
	}
	users, err := s.users.get(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]apiConversation, 0, len(sums))
	for i := range sums {
		sm := &sums[i]
		count := sm.MemberCount
		if count == 0 {
			count = len(sm.Members)
		}
		ac := apiConversation{ID: sm.ID, Kind: sm.Kind, Title: sm.Title, LastMessage: sm.LastMessage, Unread: sm.Unread,
			MemberCount: count}
		if count <= chat.MaxInlineMembers {
			ac.Members = make([]apiUser, 0, len(sm.Members))
			for _, id := range sm.Members {
				ac.Members = append(ac.Members, s.apiUserOf(users, id))
				if sm.Kind == chat.Direct && id != reader {
					ac.Title = users[id].DisplayName
				}
			}
		}
		out = append(out, ac)
	}
	return out, nil
}

// apiUserOf renders one user with their presence now.
func (s *Server) apiUserOf(users map[chat.ID]chat.User, id chat.ID) apiUser {
	u, ok := users[id]
	if !ok {
		u = chat.User{ID: id}
	}
	online := s.presence.Online(id)
	return apiUser{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Online: &online}
}

func (s *Server) renderOne(ctx context.Context, reader chat.ID, c chat.Conversation) (apiConversation, error) {
	r, err := s.render(ctx, reader, []chat.Summary{{Conversation: c}})
	if err != nil {
		return apiConversation{}, err
	}
	return r[0], nil
}

// listPage is a page of a reader's conversation list in the protocol's
// shape: at most limit entries and chat.MaxPageBytes of JSON, and the
// cursor of the next page (nil at the end).
type listPage struct {
	convs []apiConversation
	raw   []chat.Conversation
	next  *string
}

// conversationPage reads a page of reader's list after cursor p and renders
// it, ending early (with its cursor) where the rendered entries would pass
// chat.MaxPageBytes: the store bounds its reply, but members rendered as
// users add up to 100 users an entry.
func (s *Server) conversationPage(ctx context.Context, reader chat.ID, p chat.ListPage) (listPage, error) {
	sums, more, err := s.store.ConversationPage(ctx, reader, p)
	if err != nil {
		return listPage{}, err
	}
	convs, err := s.render(ctx, reader, sums)
	if err != nil {
		return listPage{}, err
	}
	used, n := 0, len(convs)
	for i := range convs {
		b, _ := chat.Marshal(&convs[i])
		used += len(b) + 1
		if used > chat.MaxPageBytes && i > 0 {
			n, more = i, true
			break
		}
	}
	lp := listPage{convs: convs[:n], raw: make([]chat.Conversation, n)}
	for i := range n {
		lp.raw[i] = sums[i].Conversation
	}
	if more && n > 0 {
		c := listCursor(sums[n-1].Activity, sums[n-1].ID)
		lp.next = &c
	}
	return lp, nil
}

// listCursor is the opaque cursor of a conversation list entry: its
// activity in Unix milliseconds and its ID.
func listCursor(activity time.Time, conv string) string {
	return strconv.FormatInt(activity.UnixMilli(), 10) + "_" + conv
}

// parseListCursor reads a cursor listCursor made.
func parseListCursor(s string) (time.Time, string, bool) {
	ms, conv, ok := strings.Cut(s, "_")
	if !ok || !chat.ValidConversationID(conv) {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, "", false
	}
	return time.UnixMilli(n).UTC(), conv, true
}

// hello builds a connection's first frame and returns the conversations
// it should be subscribed to. Its conversation list is the top page: at
// most HelloConversations entries and chat.MaxPageBytes, with next_before
// when the list goes on.
func (s *Server) hello(ctx context.Context, c *Conn) ([]byte, []chat.Conversation, error) {
	me, err := s.users.one(ctx, c.user)
	if err != nil {
		return nil, nil, err
	}
	lp, err := s.conversationPage(ctx, c.user, chat.ListPage{Limit: s.cfg.HelloConversations})
	if err != nil {
		return nil, nil, err
	}
	b, err := chat.Marshal(struct {
		Type          string            `json:"type"`
		User          chat.User         `json:"user"`
		Conversations []apiConversation `json:"conversations"`
		NextBefore    *string           `json:"next_before"`
	}{"hello", me, lp.convs, lp.next})
	if err != nil {
		return nil, nil, err
	}
	return textFrame(b), lp.raw, nil
}
