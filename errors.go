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
	// ErrConflict: a compare-and-set lost (a session refreshed by someone
	// else meanwhile).
	ErrConflict = errors.New("store: conflict")
	// ErrRevoked: a retired refresh token was presented again; its session
	// has been ended.
	ErrRevoked = errors.New("store: session revoked")
	// ErrWrongPassword: a login or a password change named an unknown
	// user or the wrong password (the store checks; one answer for both).
	ErrWrongPassword = errors.New("store: wrong username or password")
	// ErrNotAllowed: the other user does not allow it (their "who may
	// add me" setting, or a block).
	ErrNotAllowed = errors.New("store: not allowed by the user")
	// ErrLimited: a per-user limit over a period was reached; retry later.
	ErrLimited = errors.New("store: limit reached, retry later")
)
