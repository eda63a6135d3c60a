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
