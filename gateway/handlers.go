package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/router"
	"go.uber.org/zap"
)

// Error codes of error frames (PROTOCOL.md).
const (
	codeInvalidMessage = "invalid_message"
	codeNotFound       = "not_found"
	codeRateLimited    = "rate_limited"
	codeBadRequest     = "bad_request"
	codeUnavailable    = "unavailable"
	codeInternal       = "internal"
)

// request is any client frame; each type uses the fields it needs.
type request struct {
	Type         string          `json:"type"`
	ID           json.RawMessage `json:"id"`
	Conversation *flexString     `json:"conversation"`
	ClientID     *flexString     `json:"client_id"`
	Body         *flexString     `json:"body"`
	Before       *flexID         `json:"before"`
	After        *flexID         `json:"after"`
	Limit        *flexInt        `json:"limit"`
	MessageID    *flexID         `json:"message_id"`
	ReplyTo      *flexID         `json:"reply_to"`
	Emoji        *flexString     `json:"emoji"`
}

// flexString accepts any JSON value and remembers whether it was a string,
// so that a field of the wrong type is that field's error (with the
// request's id echoed), not a frame that fails to decode.
type flexString struct {
	s  string
	ok bool
}

func (f *flexString) UnmarshalJSON(b []byte) error {
	f.ok = json.Unmarshal(b, &f.s) == nil && len(b) > 0 && b[0] == '"'
	return nil
}

// str returns the string, or "" when the value was not one.
func (f *flexString) str() (string, bool) {
	if f == nil || !f.ok {
		return "", false
	}
	return f.s, true
}

// flexInt is flexString's counterpart for numbers.
type flexInt struct {
	n  int
	ok bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	f.ok = json.Unmarshal(b, &f.n) == nil
	return nil
}

// flexID accepts an ID as a decimal string (the protocol's form) or a JSON
// number, and remembers whether it was valid so the handler can say so.
type flexID struct {
	id chat.ID
	ok bool
}

func (f *flexID) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		s = string(b[1 : len(b)-1])
	}
	id, err := chat.ParseID(s)
	f.id, f.ok = id, err == nil
	return nil
}

// knownTypes are the client frame types, for bounded metric labels.
var knownTypes = map[string]bool{"send": true, "history": true, "read": true, "typing": true, "ping": true,
	"edit": true, "delete": true, "react": true, "changes": true, "members": true}

// handleMessage acts on one complete text message from c.
func (s *Server) handleMessage(c *Conn, payload []byte, at time.Time) {
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		s.m.framesIn.WithLabelValues("invalid").Inc()
		c.sendError(nil, codeBadRequest, "frame is not a JSON object")
		return
	}
	if !knownTypes[req.Type] {
		s.m.framesIn.WithLabelValues("invalid").Inc()
		if req.Type == "" {
			c.sendError(req.ID, codeBadRequest, "frame has no type")
		} else {
			c.sendError(req.ID, codeBadRequest, "unknown frame type")
		}
		return
	}
	s.m.framesIn.WithLabelValues(req.Type).Inc()
	if !c.allowRequest(at) {
		c.sendError(req.ID, codeRateLimited, "too many requests, slow down")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	switch req.Type {
	case "ping":
		c.sendJSON("pong", struct {
			Type string          `json:"type"`
			ID   json.RawMessage `json:"id,omitempty"`
		}{"pong", req.ID})
	case "send":
		s.onSend(ctx, c, &req, at)
	case "history":
		s.onHistory(ctx, c, &req)
	case "read":
		s.onRead(ctx, c, &req)
	case "typing":
		s.onTyping(ctx, c, &req)
	case "edit":
		s.onEdit(ctx, c, &req, at)
	case "delete":
		s.onDelete(ctx, c, &req, at)
	case "react":
		s.onReact(ctx, c, &req, at)
	case "changes":
		s.onChanges(ctx, c, &req)
	case "members":
		s.onMembers(ctx, c, &req)
	}
}

// conversationOf checks the frame names a conversation c's user is in.
func (s *Server) conversationOf(ctx context.Context, c *Conn, req *request) (string, bool) {
	conv, ok := req.Conversation.str()
	if !ok || conv == "" {
		c.sendError(req.ID, codeBadRequest, "conversation must be a conversation ID")
		return "", false
	}
	ok, err := s.isMember(ctx, c, conv)
	if err != nil {
		c.sendError(req.ID, codeUnavailable, "try again")
		return "", false
	}
	if !ok {
		c.sendError(req.ID, codeNotFound, msgNoConversation)
		return "", false
	}
	return conv, true
}

// isMember answers from the connection's subscriptions, else asks the
// store (and subscribes the connection on success: members are never
// removed, so a yes stays true).
func (s *Server) isMember(ctx context.Context, c *Conn, conv string) (bool, error) {
	if s.hub.in(c, conv) {
		return true, nil
	}
	if !chat.ValidConversationID(conv) {
		return false, nil
	}
	if a, b, ok := chat.DirectMembers(conv); ok && a != c.user && b != c.user {
		return false, nil
	}
	cv, member, err := s.membership(ctx, conv, c.user)
	if errors.Is(err, chat.ErrNotFound) {
		return false, nil
	}
	if err != nil || !member {
		return false, err
	}
	s.hub.join(c, conv, cv.Members)
	return true, nil
}

func (s *Server) onSend(ctx context.Context, c *Conn, req *request, at time.Time) {
	clientID, ok := req.ClientID.str()
	if !ok || !chat.ValidClientID(clientID) {
		c.sendError(req.ID, codeInvalidMessage, "client_id must be 1-64 printable ASCII characters")
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
	if blocked, err := s.blockedDirect(ctx, conv); err != nil {
		c.sendError(req.ID, codeUnavailable, "message not stored, retry with the same client_id")
		return
	} else if blocked {
		c.sendError(req.ID, codeForbidden, "you cannot message this user")
		return
	}
	out := chat.Message{Conversation: conv, Sender: c.user, Body: body, ClientID: clientID}
	if req.ReplyTo != nil {
		orig, ok := s.target(ctx, c, req, conv, req.ReplyTo, "reply_to")
		if !ok {
			return
		}
		// The quote travels with the live message; history quotes the
		// original as it is when read.
		out.ReplyTo, out.Reply = orig.ID, chat.QuoteOf(orig)
	}
	// This connection's deliveries of the conversation wait until its ack
	// is queued: the fan-out can bring the sender's own message before the
	// PubAck returns, and PROTOCOL.md promises the ack first. Holding back
	// costs no round trip, and what is held keeps its order.
	c.hold(conv)
	start := time.Now()
	m, _, err := s.pub.Publish(ctx, out)
	s.m.publishLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		s.log.Warn("publish failed", zap.String("conversation", conv), zap.Error(err))
		c.releaseWith(conv, errorFrame(req.ID, codeUnavailable, "message not stored, retry with the same client_id"), "error")
		return
	}
	c.releaseWith(conv, ackFrame(req.ID, "message", len(m.Body), m.AppendJSON), "ack")
	s.m.ackLatency.Observe(time.Since(at).Seconds())
}

func (s *Server) onHistory(ctx context.Context, c *Conn, req *request) {
	p, msg := parsePage(req.Before, req.After, req.Limit)
	if msg != "" {
		c.sendError(req.ID, codeBadRequest, msg)
		return
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	p.Viewer = c.user
	page, err := s.historyPage(ctx, conv, p)
	if err != nil {
		c.sendError(req.ID, codeUnavailable, "history is not available right now, retry")
		return
	}
	b, _ := chat.Marshal(page.render(req.ID, true))
	c.send(textFrame(b), "history")
}

// parsePage validates history parameters: one cursor at most, limit
// defaulting to 50, clamped to 200, under 1 refused.
func parsePage(before, after *flexID, limit *flexInt) (page, string) {
	p := page{Page: chat.Page{Limit: 50}}
	if before != nil && after != nil {
		return p, "give before or after, not both"
	}
	if before != nil {
		if !before.ok {
			return p, "before must be a message ID"
		}
		p.Before = before.id
		p.emptyBefore = before.id == 0 // nothing is older than 0
	}
	if after != nil {
		if !after.ok {
			return p, "after must be a message ID"
		}
		// chat.Page's zero means "no cursor"; no message has ID 0 or 1
		// (IDs carry milliseconds since 2025 above bit 22), so after=0 is
		// after=1: the whole history, oldest first.
		p.After = max(after.id, 1)
	}
	if limit != nil {
		if !limit.ok || limit.n < 1 {
			return p, "limit must be a number, at least 1"
		}
		p.Limit = min(limit.n, 200)
	}
	return p, ""
}

// page is a history request: chat.Page, plus before=0, which the store
// cannot express (its zero means "newest").
type page struct {
	chat.Page
	emptyBefore bool
}

// historyPage is a page of history in the protocol's shape.
type historyPage struct {
	Messages []chat.Message
	Next     *chat.ID
	After    bool // the page went forward: the cursor is next_after
}

func (s *Server) historyPage(ctx context.Context, conv string, p page) (historyPage, error) {
	if p.emptyBefore {
		return historyPage{Messages: []chat.Message{}}, nil
	}
	msgs, more, err := s.store.History(ctx, conv, p.Page)
	if err != nil {
		return historyPage{}, err
	}
	if msgs == nil {
		msgs = []chat.Message{}
	}
	hp := historyPage{Messages: msgs, After: p.After != 0}
	if more && len(msgs) > 0 {
		id := msgs[len(msgs)-1].ID
		hp.Next = &id
	}
	return hp, nil
}

// render renders the page as a history frame (with its type, and the
// request's id when it had one) or as an HTTP body.
func (hp historyPage) render(id json.RawMessage, frame bool) any {
	type beforePage struct {
		Type       string          `json:"type,omitempty"`
		ID         json.RawMessage `json:"id,omitempty"`
		Messages   []chat.Message  `json:"messages"`
		NextBefore *chat.ID        `json:"next_before"`
	}
	type afterPage struct {
		Type      string          `json:"type,omitempty"`
		ID        json.RawMessage `json:"id,omitempty"`
		Messages  []chat.Message  `json:"messages"`
		NextAfter *chat.ID        `json:"next_after"`
	}
	typ := ""
	if frame {
		typ = "history"
	}
	if hp.After {
		return afterPage{typ, id, hp.Messages, hp.Next}
	}
	return beforePage{typ, id, hp.Messages, hp.Next}
}

func (s *Server) onRead(ctx context.Context, c *Conn, req *request) {
	if req.MessageID == nil || !req.MessageID.ok || req.MessageID.id == 0 {
		c.sendError(req.ID, codeBadRequest, "message_id must be a message ID")
		return
	}
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	// A mark past the newest message would stick (marks only move
	// forward) and hide every later message from the unread count.
	newest, err := s.newestMessage(ctx, conv, req.MessageID.id)
	if err != nil {
		c.sendError(req.ID, codeUnavailable, "read mark not saved, retry")
		return
	}
	if req.MessageID.id > newest {
		c.sendError(req.ID, codeBadRequest, "message_id is past the conversation's newest message")
		return
	}
	mark, moved, err := s.store.MarkRead(ctx, conv, c.user, req.MessageID.id)
	if err != nil {
		c.sendError(req.ID, codeUnavailable, "read mark not saved, retry")
		return
	}
	if !moved {
		return
	}
	b, _ := json.Marshal(struct {
		Type         string  `json:"type"`
		Conversation string  `json:"conversation"`
		User         chat.ID `json:"user"`
		MessageID    chat.ID `json:"message_id"`
	}{"read", conv, c.user, mark})
	if err := router.PublishRead(s.nc, conv, c.user, b); err != nil {
		c.sendError(req.ID, codeUnavailable, "read mark saved but not broadcast")
	}
}

func (s *Server) onTyping(ctx context.Context, c *Conn, req *request) {
	conv, ok := s.conversationOf(ctx, c, req)
	if !ok {
		return
	}
	b, _ := json.Marshal(struct {
		Type         string  `json:"type"`
		Conversation string  `json:"conversation"`
		User         chat.ID `json:"user"`
	}{"typing", conv, c.user})
	if err := router.PublishTyping(s.nc, conv, c.user, b); err != nil {
		c.sendError(req.ID, codeUnavailable, "typing not sent")
	}
}

// newestMessage is the ID of conv's newest message (0: none), at least
// as new as want when the conversation has one that new: the stream's
// newest, which has every acked message even before the store wrote it;
// the store's when the stream holds none of the conversation (past its
// retention).
func (s *Server) newestMessage(ctx context.Context, conv string, want chat.ID) (chat.ID, error) {
	id, err := s.pub.Newest(ctx, conv, want)
	if err != nil || id != 0 {
		return id, err
	}
	msgs, _, err := s.store.History(ctx, conv, chat.Page{Limit: 1})
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	return msgs[0].ID, nil
}

// sendError answers a request with an error frame.
func (c *Conn) sendError(id json.RawMessage, code, msg string) {
	c.send(errorFrame(id, code, msg), "error")
}

// errorFrame is an error frame answering the request with that id.
func errorFrame(id json.RawMessage, code, msg string) []byte {
	b, _ := json.Marshal(struct {
		Type    string          `json:"type"`
		ID      json.RawMessage `json:"id,omitempty"`
		Code    string          `json:"code"`
		Message string          `json:"message"`
	}{"error", id, code, msg})
	return textFrame(b)
}

func (c *Conn) sendJSON(typ string, v any) {
	b, err := chat.Marshal(v)
	if err != nil {
		return
	}
	c.send(textFrame(b), typ)
}

// ackFrame is an ack frame: {"type":"ack","id":...,"<field>":<object>},
// the object appended by appendJSON without reflection (the hot path of
// every send). size is a hint of the object's variable part.
func ackFrame(id json.RawMessage, field string, size int, appendJSON func([]byte) []byte) []byte {
	b := make([]byte, 0, 200+size)
	b = append(b, `{"type":"ack",`...)
	if len(id) > 0 {
		b = append(b, `"id":`...)
		b = append(b, id...)
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, field...)
	b = append(b, `":`...)
	b = appendJSON(b)
	b = append(b, '}')
	return textFrame(b)
}
