package chatclient

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Sentinel errors; check them with errors.Is. An error the server answered
// is a *ServerError, which matches the sentinel of its code.
var (
	ErrClosed         = errors.New("chatclient: client closed")
	ErrDisconnected   = errors.New("chatclient: not connected")
	ErrUnauthorized   = errors.New("chatclient: unauthorized")
	ErrNotFound       = errors.New("chatclient: not found")
	ErrInvalidMessage = errors.New("chatclient: invalid message")
	ErrRateLimited    = errors.New("chatclient: rate limited")
	ErrUnavailable    = errors.New("chatclient: unavailable, retry")
	ErrBadRequest     = errors.New("chatclient: bad request")
	ErrUsernameTaken  = errors.New("chatclient: username taken")
)

// codeErrors maps the protocol's error codes (WebSocket and HTTP) to sentinels.
var codeErrors = map[string]error{
	"unauthorized":    ErrUnauthorized,
	"not_found":       ErrNotFound,
	"invalid_message": ErrInvalidMessage,
	"rate_limited":    ErrRateLimited,
	"unavailable":     ErrUnavailable,
	"bad_request":     ErrBadRequest,
	"invalid_request": ErrBadRequest,
	"username_taken":  ErrUsernameTaken,
}

// ServerError is an error the server answered: an `error` frame, or an
// HTTP error body (then Status is the HTTP status).
type ServerError struct {
	Code    string
	Message string
	Status  int
}

func (e *ServerError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("chatclient: server answered %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("chatclient: server answered %s: %s", e.Code, e.Message)
}

// Is matches the sentinel of the error's code.
func (e *ServerError) Is(target error) bool {
	s, ok := codeErrors[e.Code]
	return ok && s == target
}

func frameError(f *serverFrame) error {
	var msg string
	_ = json.Unmarshal(f.Message, &msg)
	return &ServerError{Code: f.Code, Message: msg}
}
