package chat

// EventKind says what a record of the message stream is. The stream carries
// more than new messages once messages can change; each kind is one type, one
// publisher call, one store handler and one fan-out frame. The kind travels
// in the HdrKind header so that the payload stays the client's JSON, which a
// gateway wraps into a frame without decoding it.
type EventKind string

const (
	// EventMessage is a new message; its payload is the Message JSON.
	EventMessage EventKind = "message"
)

// RecordKind returns the kind of a stream record from its HdrKind header.
// Records written before kinds existed have none: they are messages.
func RecordKind(header string) EventKind {
	if header == "" {
		return EventMessage
	}
	return EventKind(header)
}
