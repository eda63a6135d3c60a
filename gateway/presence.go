package gateway

import (
	"encoding/json"

	"github.com/chatcluster/chat"
)

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
