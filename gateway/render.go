package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"go.uber.org/zap"
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

// userCache keeps users by ID. Users never change once created, so entries
// need no invalidation; the cache is only bounded.
type userCache struct {
	st  *storeclient.Client
	max int

	mu    sync.Mutex
	users map[chat.ID]chat.User
}

func newUserCache(st *storeclient.Client, max int) *userCache {
	return &userCache{st: st, max: max, users: make(map[chat.ID]chat.User)}
}

// get returns the users with these IDs that exist, asking the store once
// for all that are not cached.
func (uc *userCache) get(ctx context.Context, ids []chat.ID) (map[chat.ID]chat.User, error) {
	out := make(map[chat.ID]chat.User, len(ids))
	var missing []chat.ID
	uc.mu.Lock()
	for _, id := range ids {
		if u, ok := uc.users[id]; ok {
			out[id] = u
		} else if _, dup := out[id]; !dup {
			missing = append(missing, id)
			out[id] = chat.User{} // placeholder, replaced or removed below
		}
	}
	uc.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	found, err := uc.st.Users(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, id := range missing {
		delete(out, id)
	}
	uc.mu.Lock()
	if len(uc.users)+len(found) > uc.max {
		clear(uc.users) // crude, but bounded; the working set refills fast
	}
	for _, u := range found {
		uc.users[u.ID] = u
		out[u.ID] = u
	}
	uc.mu.Unlock()
	return out, nil
}

func (uc *userCache) one(ctx context.Context, id chat.ID) (chat.User, error) {
	m, err := uc.get(ctx, []chat.ID{id})
	if err != nil {
		return chat.User{}, err
	}
	u, ok := m[id]
	if !ok {
		return chat.User{}, chat.ErrNotFound
	}
	return u, nil
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
	b, err := json.Marshal(struct {
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

// onUserEvent handles an event the store sent to a local user: a
// conversation they are in was created or changed. Their connections
// subscribe to it and are told. Runs off the dispatcher.
func (s *Server) onUserEvent(user chat.ID, data []byte) {
	var ev struct {
		Type         string            `json:"type"`
		Conversation chat.Conversation `json:"conversation"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Type != "conversation" || !chat.ValidConversationID(ev.Conversation.ID) {
		return
	}
	// Subscribe now, on the dispatcher, so that no message sent after the
	// change is missed; hold those messages back until the conversation
	// frame, which needs the members' names (the store, maybe), is queued.
	conv := ev.Conversation
	conns := s.hub.userConns(user)
	for _, c := range conns {
		c.hold(conv.ID)
		s.hub.join(c, conv.ID, conv.Members)
	}
	task := func() {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		var frame []byte
		if ac, err := s.renderOne(ctx, user, conv); err != nil {
			s.log.Warn("conversation event", zap.Error(err))
		} else {
			b, _ := json.Marshal(struct {
				Type         string          `json:"type"`
				Conversation apiConversation `json:"conversation"`
			}{"conversation", ac})
			frame = textFrame(b)
		}
		for _, c := range conns {
			c.release(conv.ID, frame)
		}
	}
	if err := s.pool.Schedule(task); err != nil {
		go task()
	}
}

// onPresence tells local connections that share a conversation with user.
func (s *Server) onPresence(user chat.ID, online bool) {
	b, _ := json.Marshal(struct {
		Type   string  `json:"type"`
		User   chat.ID `json:"user"`
		Online bool    `json:"online"`
	}{"presence", user, online})
	frame := textFrame(b)
	for _, c := range s.hub.coMembers(user) {
		if c.user != user {
			c.send(frame, "presence")
		}
	}
}
