package chat

import "errors"

// Sentinel errors shared by the store, its client and the gateway. Callers
// wrap them with %w and test with errors.Is; the store's wire format carries
// each one as a code, so they survive a NATS round trip.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrUsernameTaken = errors.New("store: username taken")
	ErrInvalid       = errors.New("store: invalid argument")
	ErrUnavailable   = errors.New("store: unavailable")
	ErrTooMany       = errors.New("store: too many members")
)
