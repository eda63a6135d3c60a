package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"go.uber.org/zap"
)

// onUserEvent handles an event the store sent to a local user: a
// conversation they are in was created or changed. Their connections
// subscribe to it and are told. Runs off the dispatcher.
func (s *Server) onUserEvent(user chat.ID, data []byte) {
	var ev struct {
		Type         string            `json:"type"`
		Conversation chat.Conversation `json:"conversation"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || !chat.ValidConversationID(ev.Conversation.ID) {
		return
	}
	switch ev.Type {
	case storeclient.EventConversation:
	case storeclient.EventLeft:
		s.onLeft(user, ev.Conversation.ID)
		return
	default:
		return
	}
	// Membership changed: the room's member list is this one now (a
	// small group's; nil for a big one, whose members get no presence).
	s.hub.resetMembers(ev.Conversation.ID, ev.Conversation.Members)
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
			b, _ := chat.Marshal(struct {
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

// onLeft takes user's local connections out of a conversation they left
// and tells them with a `left` frame.
func (s *Server) onLeft(user chat.ID, conv string) {
	b, _ := chat.Marshal(struct {
		Type         string `json:"type"`
		Conversation string `json:"conversation"`
	}{"left", conv})
	frame := textFrame(b)
	for _, c := range s.hub.userConns(user) {
		s.hub.part(c, conv)
		c.send(frame, "left")
	}
}
