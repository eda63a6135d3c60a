package chatclient

import "encoding/json"

// The wire types of the client protocol v1 (docs/PROTOCOL.md), defined here
// rather than imported from the server's packages: the protocol is the
// contract, and this package must build against it alone.

// User is an account as the server shows it.
type User struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	// Online is the presence when the object was made (members of a
	// conversation in hello and in HTTP answers).
	Online *bool `json:"online,omitempty"`
}

// Message is a stored message.
type Message struct {
	ID           string `json:"id"`
	Conversation string `json:"conversation"`
	Sender       string `json:"sender"`
	Body         string `json:"body"`
	SentAt       string `json:"sent_at"`
	ClientID     string `json:"client_id"`
}

// Conversation is a direct conversation or a group.
type Conversation struct {
	ID          string   `json:"id"`
	Kind        string   `json:"kind"` // "direct" or "group"
	Title       string   `json:"title"`
	Members     []User   `json:"members,omitempty"`
	MemberCount int      `json:"member_count,omitempty"`
	LastMessage *Message `json:"last_message"`
	Unread      int      `json:"unread"`
}

// Frame types the server sends.
const (
	FrameHello        = "hello"
	FrameAck          = "ack"
	FrameMessage      = "message"
	FrameHistory      = "history"
	FrameRead         = "read"
	FrameTyping       = "typing"
	FramePresence     = "presence"
	FrameConversation = "conversation"
	FrameError        = "error"
	FramePong         = "pong"
)

// Frame types the client sends.
const (
	frameSend    = "send"
	frameHistory = "history"
	frameRead    = "read"
	frameTyping  = "typing"
	framePing    = "ping"
)

// Close codes of the project (docs/PROTOCOL.md, "Close codes").
const (
	CloseTokenExpired = 4001 // log in again before reconnecting
	CloseDraining     = 4002 // reconnect at once, elsewhere
)

// clientFrame is every frame the client sends; unused fields are left out.
type clientFrame struct {
	Type         string `json:"type"`
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	Body         string `json:"body,omitempty"`
	Before       string `json:"before,omitempty"`
	After        string `json:"after,omitempty"`
	Limit        int    `json:"limit,omitempty"`
	MessageID    string `json:"message_id,omitempty"`
}

// serverFrame is every frame the server sends, decoded once; which fields
// are set depends on Type.
type serverFrame struct {
	Type string `json:"type"`
	// ID is the echoed request id; the client only sends strings.
	ID json.RawMessage `json:"id,omitempty"`

	User          json.RawMessage `json:"user,omitempty"` // a User in hello, a user ID elsewhere
	Conversations []Conversation  `json:"conversations,omitempty"`
	Message       json.RawMessage `json:"message,omitempty"` // a Message, or the error text
	Messages      []Message       `json:"messages,omitempty"`
	NextBefore    *string         `json:"next_before,omitempty"`
	NextAfter     *string         `json:"next_after,omitempty"`
	Conversation  json.RawMessage `json:"conversation,omitempty"` // a Conversation, or its ID
	MessageID     string          `json:"message_id,omitempty"`
	Online        bool            `json:"online,omitempty"`
	Code          string          `json:"code,omitempty"`
}

func (f *serverFrame) requestID() string {
	var s string
	if len(f.ID) == 0 || json.Unmarshal(f.ID, &s) != nil {
		return ""
	}
	return s
}

// HistoryPage is the answer to History: Messages newest first for Before
// (and without a cursor), oldest first for After.
type HistoryPage struct {
	Messages   []Message
	NextBefore *string // the cursor for the next older page; nil when none remains
	NextAfter  *string // the cursor for the next newer page; nil when none remains
}

// HistoryQuery selects a page: at most one of Before and After; Limit 0 is
// the server's default (50), at most 200.
type HistoryQuery struct {
	Before string
	After  string
	Limit  int
}

// Event is a frame other than a message: a read mark, typing, presence or
// a conversation created or changed.
type Event struct {
	Type         string // FrameRead, FrameTyping, FramePresence or FrameConversation
	Conversation string // the conversation's ID (all but presence)
	User         string // who read, typed, came online or went offline
	MessageID    string // read: up to which message
	Online       bool   // presence
	// Changed is the conversation of a FrameConversation event.
	Changed *Conversation
}
