package chat

import "time"

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
	Members   []ID      `json:"members"` // ascending by ID; in a list, only for conversations of at most MaxInlineMembers
	// MemberCount is len(Members) where Members is complete; in a list
	// entry of a bigger conversation Members is nil and this is the count.
	MemberCount int `json:"member_count"`
}

// Inline reports whether the conversation is small enough to carry its
// members inline in lists, hello and conversation frames (and to get
// presence frames for them).
func (c *Conversation) Inline() bool { return c.MemberCount <= MaxInlineMembers }

// Message is one chat message as stored and as sent to clients. The fields
// after ClientID are extensions of the protocol: each is left out of the
// JSON when it has its zero value, so a message that never changed reads
// exactly as it did before messages could change.
type Message struct {
	ID           ID        `json:"id"`
	Conversation string    `json:"conversation"`
	Sender       ID        `json:"sender"`
	Body         string    `json:"body"` // "" once deleted
	SentAt       time.Time `json:"sent_at"`
	ClientID     string    `json:"client_id"`

	// ReplyTo is the message this one answers, 0 for none. Stored.
	ReplyTo ID `json:"reply_to,omitempty"`
	// Reply is what the answered message shows now; filled when the
	// message is read or published, never stored (an edit or deletion of
	// the original must show in every reply to it).
	Reply *Quote `json:"reply,omitempty"`
	// EditedAt is when the body was last edited; zero if never.
	EditedAt time.Time `json:"edited_at,omitempty"`
	// Deleted says the sender deleted the message: Body is "".
	Deleted bool `json:"deleted,omitempty"`
	// Reactions are the message's reactions by emoji (first reacted first),
	// Me set for the reader's own; filled when read for a reader.
	Reactions []Reaction `json:"reactions,omitempty"`
	// Version is the ID of the newest change (edit, deletion, reaction)
	// this state includes, 0 if none: a client applies a live change only
	// when its ID is larger, so a change it already has is never counted
	// twice.
	Version ID `json:"version,omitempty"`
	// Number is the message's place in its conversation (number.go),
	// from the stream record's headers; not on the wire to clients.
	Number Number `json:"-"`
}

// Reaction is one emoji's reactions to a message.
type Reaction struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Me    bool   `json:"me,omitempty"` // the reader reacted with it
}

// Quote is what a reply shows of the message it answers.
type Quote struct {
	ID      ID     `json:"id"`
	Sender  ID     `json:"sender"`
	Body    string `json:"body"` // at most QuoteLen code points; "" once deleted
	Deleted bool   `json:"deleted,omitempty"`
}

// QuoteOf returns what a reply to m shows.
func QuoteOf(m Message) *Quote {
	q := &Quote{ID: m.ID, Sender: m.Sender, Deleted: m.Deleted}
	if !m.Deleted {
		q.Body = truncate(m.Body, QuoteLen)
	}
	return q
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
	// Viewer is who reads: reactions are marked Me for this user. 0: none.
	Viewer ID
}

// ListPage selects a page of a user's conversation list, ordered by
// activity, newest first, ties by conversation ID ascending. A zero cursor
// (Activity and Conversation unset) starts at the top; otherwise the page
// holds the entries strictly after (Activity, Conversation) in that order.
// Limit is at least 1. Activity changes as messages arrive, so a walk
// through a list that is busy may meet a conversation twice or miss one
// that moved above the cursor: the hello's top of the list is the part that
// must be current, and it is.
type ListPage struct {
	Activity     time.Time
	Conversation string
	Limit        int
}

// After reports whether entry (activity, conv) comes strictly after the
// page's cursor in list order.
func (p ListPage) After(activity time.Time, conv string) bool {
	if p.Conversation == "" {
		return true
	}
	if c := activity.Compare(p.Activity); c != 0 {
		return c < 0
	}
	return conv > p.Conversation
}
