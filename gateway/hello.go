package gateway

import (
	"context"

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
type apiConversation struct {
	ID          string        `json:"id"`
	Kind        chat.Kind     `json:"kind"`
	Title       string        `json:"title"`
	Members     []apiUser     `json:"members"`
	LastMessage *chat.Message `json:"last_message"`
	Unread      int           `json:"unread"`
}

// render turns stored conversations into what reader sees: member users,
// a direct conversation's title being the other member's display name.
func (s *Server) render(ctx context.Context, reader chat.ID, sums []chat.Summary) ([]apiConversation, error) {
	var ids []chat.ID
	for i := range sums {
		ids = append(ids, sums[i].Members...)
	}
	users, err := s.users.get(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]apiConversation, 0, len(sums))
	for i := range sums {
		sm := &sums[i]
		ac := apiConversation{ID: sm.ID, Kind: sm.Kind, Title: sm.Title, LastMessage: sm.LastMessage, Unread: sm.Unread,
			Members: make([]apiUser, 0, len(sm.Members))}
		for _, id := range sm.Members {
			u, ok := users[id]
			if !ok {
				u = chat.User{ID: id}
			}
			online := s.presence.Online(id)
			ac.Members = append(ac.Members, apiUser{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Online: &online})
			if sm.Kind == chat.Direct && id != reader {
				ac.Title = u.DisplayName
			}
		}
		out = append(out, ac)
	}
	return out, nil
}

func (s *Server) renderOne(ctx context.Context, reader chat.ID, c chat.Conversation) (apiConversation, error) {
	r, err := s.render(ctx, reader, []chat.Summary{{Conversation: c}})
	if err != nil {
		return apiConversation{}, err
	}
	return r[0], nil
}

// hello builds a connection's first frame and returns the conversations
// it should be subscribed to.
func (s *Server) hello(ctx context.Context, c *Conn) ([]byte, []chat.Conversation, error) {
	me, err := s.users.one(ctx, c.user)
	if err != nil {
		return nil, nil, err
	}
	sums, err := s.store.Conversations(ctx, c.user, s.cfg.HelloConversations)
	if err != nil {
		return nil, nil, err
	}
	convs, err := s.render(ctx, c.user, sums)
	if err != nil {
		return nil, nil, err
	}
	b, err := chat.Marshal(struct {
		Type          string            `json:"type"`
		User          chat.User         `json:"user"`
		Conversations []apiConversation `json:"conversations"`
	}{"hello", me, convs})
	if err != nil {
		return nil, nil, err
	}
	raw := make([]chat.Conversation, len(sums))
	for i := range sums {
		raw[i] = sums[i].Conversation
	}
	return textFrame(b), raw, nil
}
