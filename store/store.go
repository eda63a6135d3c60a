// Package store owns the chat's durable state: accounts, conversations,
// membership, messages, read marks. It defines the Backend interface that the
// embedded (bbolt) and Cassandra backends implement and that one conformance
// suite (store/storetest) holds them to, and the Service that serves a backend
// over NATS: it consumes the message stream with a durable JetStream consumer
// and answers queries by request/reply. Gateways reach it with Client.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrUsernameTaken = errors.New("store: username taken")
	ErrInvalid       = errors.New("store: invalid argument")
	ErrUnavailable   = errors.New("store: unavailable")
	ErrTooMany       = errors.New("store: too many members")
)

// Kind of a conversation.
type Kind string

const (
	Direct Kind = "direct"
	Group  Kind = "group"
)

// User is the public part of an account.
type User struct {
	ID          ID     `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// Account is a User with its password hash; it never leaves the store and
// gateway processes.
type Account struct {
	User
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
}

// Conversation is a conversation's own row plus its member IDs.
type Conversation struct {
	ID        string    `json:"id"`
	Kind      Kind      `json:"kind"`
	Title     string    `json:"title,omitempty"` // groups only; a direct conversation's title is per reader
	CreatedBy ID        `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Members   []ID      `json:"members"` // ascending by ID
}

// Message is one chat message as stored and as sent to clients.
type Message struct {
	ID           ID        `json:"id"`
	Conversation string    `json:"conversation"`
	Sender       ID        `json:"sender"`
	Body         string    `json:"body"`
	SentAt       time.Time `json:"sent_at"`
	ClientID     string    `json:"client_id"`
}

// Summary is one entry of a user's conversation list.
type Summary struct {
	Conversation
	LastMessage *Message `json:"last_message"` // nil when the conversation has none
	Unread      int      `json:"unread"`       // messages from others newer than LastRead, capped at UnreadCap
	LastRead    ID       `json:"last_read"`    // the user's read mark, 0 when none
	// Activity orders the list: the newest message's time, else when the
	// user joined.
	Activity time.Time `json:"activity"`
}

// UnreadCap bounds the unread count a backend reports, so that a conversation
// never read costs one bounded query, not a scan of its history.
const UnreadCap = 1000

// Page selects a history page. Exactly one of Before and After may be set;
// neither means the newest messages. Limit is at least 1.
type Page struct {
	Before ID
	After  ID
	Limit  int
}

// Backend is the storage a Service serves. Every method is safe for
// concurrent use. Writes are idempotent: replaying any of them (a redelivered
// JetStream message, a retried request) leaves the same state.
type Backend interface {
	// CreateAccount stores a new account; ErrUsernameTaken if the username
	// (already folded to lower case) exists.
	CreateAccount(ctx context.Context, a Account) error
	// AccountByUsername returns the account or ErrNotFound.
	AccountByUsername(ctx context.Context, username string) (Account, error)
	// Users returns the users with these IDs that exist, in the order asked.
	Users(ctx context.Context, ids []ID) ([]User, error)
	// SearchUsers returns up to limit users whose username starts with
	// prefix, ordered by username.
	SearchUsers(ctx context.Context, prefix string, limit int) ([]User, error)

	// CreateConversation stores c with its members unless a conversation
	// with c.ID exists; it returns the stored conversation and whether this
	// call created it (a direct conversation's ID is derived from its two
	// members, so asking twice returns the first).
	CreateConversation(ctx context.Context, c Conversation) (Conversation, bool, error)
	// AddMembers adds users to a conversation (joined at at) and returns the
	// conversation after the change and the IDs that were not members
	// before. ErrNotFound for an unknown conversation.
	AddMembers(ctx context.Context, conversation string, users []ID, at time.Time) (Conversation, []ID, error)
	// Conversation returns a conversation with its members, or ErrNotFound.
	Conversation(ctx context.Context, id string) (Conversation, error)
	// Conversations lists up to limit of a user's conversations, the most
	// recent activity first.
	Conversations(ctx context.Context, user ID, limit int) ([]Summary, error)

	// SaveMessages stores messages (any conversations, any order) and moves
	// each conversation's last message forward. A message whose ID is
	// already stored is left as it is.
	SaveMessages(ctx context.Context, msgs []Message) error
	// Messages returns one page of a conversation's history: newest first
	// for Before or no cursor, oldest first for After. more says whether
	// further messages exist beyond the page in the direction of travel.
	Messages(ctx context.Context, conversation string, p Page) (msgs []Message, more bool, err error)
	// MarkRead moves user's read mark in conversation forward to msg and
	// returns the mark after the call and whether it moved.
	MarkRead(ctx context.Context, conversation string, user ID, msg ID) (ID, bool, error)

	io.Closer
}
