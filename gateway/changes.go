package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/chatcluster/chat"
	"go.uber.org/zap"
)

// codeForbidden answers an edit or deletion of someone else's message, or an
// edit after the edit window (extension of PROTOCOL.md's codes).
const codeForbidden = "forbidden"

// changeFrame wraps a change record's JSON (the stream payload, the
// protocol's Change object) into the client's "change" frame without
// decoding it.
func changeFrame(changeJSON []byte) []byte {
	const pre, post = `{"type":"change","change":`, `}`
	n := len(pre) + len(changeJSON) + len(post)
	b := make([]byte, 0, n+10)
	b = appendFrameHeader(b, n)
	b = append(b, pre...)
	b = append(b, changeJSON...)
	return append(b, post...)
}

// target reads the message a request names (field says which request
// field, for the error), as the connection's user sees it now: the store
// answers only once it holds everything the stream held for the
// conversation, so an edit is never checked against a stale state.
func (s *Server) target(ctx context.Context, c *Conn, req *request, conv string, id *flexID, field string) (chat.Message, bool) {
	if id == nil || !id.ok || id.id == 0 {
		c.sendError(req.ID, codeBadRequest, field+" must be a message ID")
		return chat.Message{}, false
	}
	m, err := s.store.Message(ctx, conv, id.id, c.user)
	switch {
	case errors.Is(err, chat.ErrNotFound):
		c.sendError(req.ID, codeNotFound, field+": no such message")
		return chat.Message{}, false
	case err != nil:
		c.sendError(req.ID, codeUnavailable, "try again")
		return chat.Message{}, false
	case m.Deleted:
		c.sendError(req.ID, codeNotFound, field+": the message was deleted")
		return chat.Message{}, false
	}
	return m, true
}

// optionalClientID returns the request's client_id, "" when absent; ok is
// false (and the error sent) when present but invalid.
func optionalClientID(c *Conn, req *request, required bool) (string, bool) {
	if req.ClientID == nil && !required {
		return "", true
	}
	id, ok := req.ClientID.str()
	if !ok || !chat.ValidClientID(id) {
		c.sendError(req.ID, codeInvalidMessage, "client_id must be 1-64 printable ASCII characters")
		return "", false
	}
	return id, true
}

func (s *Server) onEdit(ctx context.Context, c *Conn, req *request, at time.Time) {
	clientID, ok := optionalClientID(c, req, true)
	if !ok {
		return
	}
	body, ok := req.Body.str()
	if !ok || !chat.ValidBody(body) {
		c.sendError(req.ID, codeInvalidMessage, "body must be 1-4096 characters, not only white space")
		return
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	m, ok := s.target(ctx, c, req, conv, req.MessageID, "message_id")
	if !ok {
		return
	}
	switch {
	case m.Sender != c.user:
		c.sendError(req.ID, codeForbidden, "only the sender can edit a message")
		return
	case time.Since(m.SentAt) > s.cfg.EditWindow:
		c.sendError(req.ID, codeForbidden, "too late to edit this message")
		return
	}
	s.publishChange(ctx, c, req, at, chat.Change{Conversation: conv, Kind: chat.EventEdit, MessageID: m.ID,
		User: c.user, ClientID: clientID, Body: body})
}

func (s *Server) onDelete(ctx context.Context, c *Conn, req *request, at time.Time) {
	clientID, ok := optionalClientID(c, req, false)
	if !ok {
		return
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	if req.MessageID == nil || !req.MessageID.ok || req.MessageID.id == 0 {
		c.sendError(req.ID, codeBadRequest, "message_id must be a message ID")
		return
	}
	m, err := s.store.Message(ctx, conv, req.MessageID.id, c.user)
	switch {
	case errors.Is(err, chat.ErrNotFound):
		c.sendError(req.ID, codeNotFound, "message_id: no such message")
		return
	case err != nil:
		c.sendError(req.ID, codeUnavailable, "try again")
		return
	case m.Sender != c.user:
		c.sendError(req.ID, codeForbidden, "only the sender can delete a message")
		return
	}
	// Deleting a deleted message is acked again (a retry after a lost
	// ack); storing the deletion twice changes nothing.
	s.publishChange(ctx, c, req, at, chat.Change{Conversation: conv, Kind: chat.EventDelete, MessageID: m.ID,
		User: c.user, ClientID: clientID})
}

func (s *Server) onReact(ctx context.Context, c *Conn, req *request, at time.Time) {
	clientID, ok := optionalClientID(c, req, false)
	if !ok {
		return
	}
	emoji, ok := req.Emoji.str()
	if !ok || !chat.ValidEmoji(emoji) {
		c.sendError(req.ID, codeInvalidMessage, "emoji must be one emoji")
		return
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	m, ok := s.target(ctx, c, req, conv, req.MessageID, "message_id")
	if !ok {
		return
	}
	// A toggle: on unless the user's reaction with this emoji is there.
	on, known := true, false
	for _, r := range m.Reactions {
		if r.Emoji == emoji {
			on, known = !r.Me, true
		}
	}
	if on && !known && len(m.Reactions) >= chat.MaxReactionEmojis {
		c.sendError(req.ID, codeInvalidMessage, "this message has as many different reactions as it may")
		return
	}
	s.publishChange(ctx, c, req, at, chat.Change{Conversation: conv, Kind: chat.EventReact, MessageID: m.ID,
		User: c.user, ClientID: clientID, Emoji: emoji, On: on})
}

// publishChange stores a change in the stream and acks it with the change
// as stored (the first one for a resent client_id). Every connection of
// every member gets it as a "change" frame from the stream.
func (s *Server) publishChange(ctx context.Context, c *Conn, req *request, at time.Time, ch chat.Change) {
	// As for a send: this connection's own change frame comes after its ack.
	c.hold(ch.Conversation)
	start := time.Now()
	stored, _, err := s.pub.PublishChange(ctx, ch)
	s.m.publishLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		s.log.Warn("publish change failed", zap.String("conversation", ch.Conversation), zap.Error(err))
		c.releaseWith(ch.Conversation, errorFrame(req.ID, codeUnavailable, "change not stored, retry with the same client_id"), "error")
		return
	}
	c.releaseWith(ch.Conversation, ackFrame(req.ID, "change", len(stored.Body), stored.AppendJSON), "ack")
	s.m.ackLatency.Observe(time.Since(at).Seconds())
}

// onChanges answers a page of the conversation's change log after the
// client's change cursor.
func (s *Server) onChanges(ctx context.Context, c *Conn, req *request) {
	if req.Before != nil {
		c.sendError(req.ID, codeBadRequest, "changes go forward only: give after")
		return
	}
	p, msg := parsePage(nil, req.After, req.Limit)
	if msg != "" {
		c.sendError(req.ID, codeBadRequest, msg)
		return
	}
	if p.After == 0 {
		p.After = 1 // no cursor: every change
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	p.Viewer = c.user
	cs, more, err := s.store.Changes(ctx, conv, p.Page)
	if err != nil {
		c.sendError(req.ID, codeUnavailable, "changes are not available right now, retry")
		return
	}
	if cs == nil {
		cs = []chat.Change{}
	}
	var next *chat.ID
	if more && len(cs) > 0 {
		id := cs[len(cs)-1].ID
		next = &id
	}
	b, _ := json.Marshal(struct {
		Type         string          `json:"type"`
		ID           json.RawMessage `json:"id,omitempty"`
		Conversation string          `json:"conversation"`
		Changes      []chat.Change   `json:"changes"`
		NextAfter    *chat.ID        `json:"next_after"`
	}{"changes", req.ID, conv, cs, next})
	c.send(textFrame(b), "changes")
}
