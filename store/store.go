package store

import (
	"context"
	"io"
	"time"

	"github.com/chatcluster/chat"
)

// Backend is the storage a Service serves. Every method is safe for
// concurrent use. Writes are idempotent: replaying any of them (a redelivered
// JetStream message, a retried request) leaves the same state.
type Backend interface {
	// CreateAccount stores a new account; ErrUsernameTaken if the username
	// (already folded to lower case) exists.
	CreateAccount(ctx context.Context, a chat.Account) error
	// AccountByUsername returns the account or ErrNotFound.
	AccountByUsername(ctx context.Context, username string) (chat.Account, error)
	// Users returns the users with these IDs that exist, in the order asked.
	Users(ctx context.Context, ids []chat.ID) ([]chat.User, error)
	// SearchUsers returns up to limit users whose username starts with
	// prefix, ordered by username.
	SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error)

	// CreateConversation stores c with its members unless a conversation
	// with c.ID exists; it returns the stored conversation and whether this
	// call created it (a direct conversation's ID is derived from its two
	// members, so asking twice returns the first).
	CreateConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error)
	// AddMembers adds users to a conversation (joined at at) and returns the
	// conversation after the change and the IDs that were not members
	// before. ErrNotFound for an unknown conversation.
	AddMembers(ctx context.Context, conversation string, users []chat.ID, at time.Time) (chat.Conversation, []chat.ID, error)
	// Conversation returns a conversation with its members, or ErrNotFound.
	Conversation(ctx context.Context, id string) (chat.Conversation, error)
	// Conversations lists up to limit of a user's conversations, the most
	// recent activity first.
	Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error)

	// SaveMessages stores messages (any conversations, any order) and moves
	// each conversation's last message forward. A message whose ID is
	// already stored is left as it is.
	SaveMessages(ctx context.Context, msgs []chat.Message) error
	// Messages returns one page of a conversation's history: newest first
	// for Before or no cursor, oldest first for After. more says whether
	// further messages exist beyond the page in the direction of travel.
	Messages(ctx context.Context, conversation string, p chat.Page) (msgs []chat.Message, more bool, err error)
	// MarkRead moves user's read mark in conversation forward to msg and
	// returns the mark after the call and whether it moved.
	MarkRead(ctx context.Context, conversation string, user chat.ID, msg chat.ID) (chat.ID, bool, error)

	io.Closer
}
