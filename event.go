package chat

import "time"

// EventKind says what a record of the message stream is. The stream carries
// more than new messages once messages can change; each kind is one type, one
// publisher call, one store handler and one fan-out frame. The kind travels
// in the HdrKind header so that the payload stays the client's JSON, which a
// gateway wraps into a frame without decoding it.
type EventKind string

const (
	// EventMessage is a new message; its payload is the Message JSON.
	EventMessage EventKind = "message"
	// EventEdit, EventDelete and EventReact change an earlier message of
	// the conversation; their payload is the Change JSON.
	EventEdit   EventKind = "edit"
	EventDelete EventKind = "delete"
	EventReact  EventKind = "react"
)

// IsChange reports whether k is a kind of Change.
func (k EventKind) IsChange() bool {
	return k == EventEdit || k == EventDelete || k == EventReact
}

// RecordKind returns the kind of a stream record from its HdrKind header.
// Records written before kinds existed have none: they are messages.
func RecordKind(header string) EventKind {
	if header == "" {
		return EventMessage
	}
	return EventKind(header)
}

// Change is an edit, a deletion or a reaction to an earlier message: a
// stream record of its own on the conversation's subject, so the stream
// orders a conversation's messages and changes in one sequence. Its ID comes
// from the same generator and the same "above the conversation's newest"
// rule as message IDs, so within a conversation every message and change has
// a distinct, growing ID: a change's ID is the conversation's change cursor.
type Change struct {
	ID           ID        `json:"id"`
	Conversation string    `json:"conversation"`
	Kind         EventKind `json:"kind"`
	MessageID    ID        `json:"message_id"`
	// User is who made the change: the sender for edits and deletions.
	User     ID        `json:"user"`
	At       time.Time `json:"at"`
	ClientID string    `json:"client_id,omitempty"`
	// Body is an edit's new body.
	Body string `json:"body,omitempty"`
	// Emoji and On are a reaction's: On true added it, false took it back.
	Emoji string `json:"emoji,omitempty"`
	On    bool   `json:"on,omitempty"`
	// Message is, in an answer to a changes request, the changed message as
	// it is now (for that reader). Never on the stream.
	Message *Message `json:"message,omitempty"`
}
