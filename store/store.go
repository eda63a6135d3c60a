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
	// CreateAccount stores a new account and returns it as stored;
	// ErrUsernameTaken if the username (already folded to lower case)
	// belongs to another sign-up. A retried sign-up is not another one: when
	// the username's account has a's ID, or a's (non-empty) PasswordHash,
	// which is salted and so names one sign-up request, CreateAccount
	// completes that account and returns it, with its ID, whatever ID a
	// carries. So a caller may retry a sign-up whose outcome it does not
	// know with the same request (a new ID is fine) and gets one account.
	// A claimed username always has its user (Users finds it).
	CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error)
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
	// recent activity first: the first page of ConversationPage, entries
	// as it makes them.
	Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error)
	// ConversationPage is one page of that list after p's cursor, and
	// whether more entries follow. Entries carry MemberCount, and Members
	// only for conversations of at most chat.MaxInlineMembers (nil
	// otherwise), so that a page costs the same whatever the groups' sizes.
	// ErrInvalid for a Limit under 1.
	ConversationPage(ctx context.Context, user chat.ID, p chat.ListPage) ([]chat.Summary, bool, error)
	// RemoveMember takes user out of a conversation (leaving a group) and
	// returns the conversation after the change and whether user was a
	// member. ErrNotFound for an unknown conversation. Removing a
	// non-member changes nothing; a removed user may be added again.
	RemoveMember(ctx context.Context, conversation string, user chat.ID) (chat.Conversation, bool, error)
	// Members returns up to limit of a conversation's member IDs above
	// after (0: from the first), ascending, and whether more follow.
	// ErrNotFound for an unknown conversation, ErrInvalid for a limit
	// under 1.
	Members(ctx context.Context, conversation string, after chat.ID, limit int) ([]chat.ID, bool, error)

	// SaveMessages stores messages (any conversations, any order) and moves
	// each conversation's last message forward. A message whose ID is
	// already stored is left as it is.
	SaveMessages(ctx context.Context, msgs []chat.Message) error
	// Messages returns one page of a conversation's history: newest first
	// for Before or no cursor, oldest first for After, each message as it
	// is now (edited, deleted, its reactions marked for p.Viewer, a
	// reply's quote). more says whether
	// further messages exist beyond the page in the direction of travel.
	Messages(ctx context.Context, conversation string, p chat.Page) (msgs []chat.Message, more bool, err error)
	// ApplyChanges applies edits, deletions and reactions (any
	// conversations, any order, replays included) to stored messages and
	// records each in its conversation's change log. The result does not
	// depend on the order: of two edits the larger change ID wins, a
	// deletion wins over every edit and blanks the stored body, and a
	// user's reaction with one emoji is what their newest change of it
	// says. A change to a message not stored yet applies when it is. A
	// message's Version is the largest change ID applied to it, except
	// that once deleted it is the (largest) deletion's.
	ApplyChanges(ctx context.Context, changes []chat.Change) error
	// Message returns one message as Messages would (reactions marked for
	// viewer, a reply's quote), or ErrNotFound.
	Message(ctx context.Context, conversation string, id, viewer chat.ID) (chat.Message, error)
	// Changes returns the conversation's changes with IDs above p.After,
	// oldest first, at most p.Limit, each carrying its message as it is now
	// (for p.Viewer); a message changed several times within the page
	// appears once, at its newest change. more says whether changes remain
	// beyond the page. p.Before must be 0.
	Changes(ctx context.Context, conversation string, p chat.Page) (changes []chat.Change, more bool, err error)
	// MarkRead moves user's read mark in conversation forward to msg and
	// returns the mark after the call and whether it moved.
	MarkRead(ctx context.Context, conversation string, user chat.ID, msg chat.ID) (chat.ID, bool, error)

	PushBackend
	SessionBackend

	io.Closer
}

// ReportingSaver is a Backend that can tell, while SaveMessages runs, which
// conversations' messages are stored, so that the store acks them at once
// rather than after the slowest conversation of the batch.
type ReportingSaver interface {
	// SaveMessagesReporting is SaveMessages that calls stored(c), from
	// any goroutine and before it returns, once every message of
	// conversation c in msgs is stored and c's last message moved. A
	// conversation not reported may or may not be stored.
	SaveMessagesReporting(ctx context.Context, msgs []chat.Message, stored func(conversation string)) error
}

// saveReporting saves msgs through b, reporting conversations as
// ReportingSaver does: as b reports them, or all at the end when b cannot.
func saveReporting(ctx context.Context, b Backend, msgs []chat.Message, stored func(string)) error {
	if rs, ok := b.(ReportingSaver); ok {
		return rs.SaveMessagesReporting(ctx, msgs, stored)
	}
	if err := b.SaveMessages(ctx, msgs); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if !seen[m.Conversation] {
			seen[m.Conversation] = true
			stored(m.Conversation)
		}
	}
	return nil
}

// PushBackend stores what push notifications need: users' devices and
// per-conversation mutes.
type PushBackend interface {
	// PutDevice registers d (valid per chat.ValidateDevice) for d.User,
	// replacing the keys of the same token. A token belongs to one user: if
	// another user held it, it moves. ErrTooMany when the user already has
	// chat.MaxDevices others. Replaying it changes nothing.
	PutDevice(ctx context.Context, d chat.Device) error
	// Devices lists user's devices ordered by token.
	Devices(ctx context.Context, user chat.ID) ([]chat.Device, error)
	// DeleteDevice removes user's device with token; ErrNotFound when user
	// has no such device (a token another user holds is not touched).
	DeleteDevice(ctx context.Context, user chat.ID, token string) error
	// SetMuted mutes or unmutes conversation for user. ErrNotFound unless
	// user is a member.
	SetMuted(ctx context.Context, conversation string, user chat.ID, muted bool) error
	// MemberStates returns every member's read mark and mute, ascending by
	// user ID. ErrNotFound for an unknown conversation.
	MemberStates(ctx context.Context, conversation string) ([]chat.MemberState, error)
}

// SessionBackend stores sessions (one per signed-in device) and password
// changes. A session past its ExpiresAt is gone: no method returns it.
type SessionBackend interface {
	// CreateSession stores a new session. Replaying it changes nothing.
	CreateSession(ctx context.Context, s chat.Session) error
	// Session returns a live session, or ErrNotFound.
	Session(ctx context.Context, id chat.ID) (chat.Session, error)
	// RotateSession moves session id from generation gen to gen+1 with a
	// new refresh hash and last-seen time, only if it is still at gen
	// (compare-and-set): ErrConflict when it is not, ErrNotFound when the
	// session is gone. Of two concurrent rotations from one generation
	// exactly one succeeds.
	RotateSession(ctx context.Context, id chat.ID, gen uint32, hash []byte, seen time.Time) error
	// DeleteSession ends user's session id. Deleting one that is gone, or
	// belongs to someone else, changes nothing and is not an error.
	DeleteSession(ctx context.Context, user, id chat.ID) error
	// Sessions lists user's live sessions, by ID (creation order).
	Sessions(ctx context.Context, user chat.ID) ([]chat.Session, error)
	// SetPasswordHash replaces the password hash of the account of
	// username. ErrNotFound for an unknown username.
	SetPasswordHash(ctx context.Context, username, hash string) error
}
