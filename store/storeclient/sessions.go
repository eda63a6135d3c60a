package storeclient

import (
	"context"

	"github.com/chatcluster/chat"
)

// CreateSession starts a session (see SessionCreateRequest) and returns it
// with its ID.
func (c *Client) CreateSession(ctx context.Context, s chat.Session) (chat.Session, error) {
	var resp SessionResponse
	if err := c.call(ctx, OpSessionCreate, SessionCreateRequest{Session: s}, &resp); err != nil {
		return chat.Session{}, err
	}
	return resp.Session, nil
}

// RefreshSession rotates a session's refresh token (see
// SessionRefreshRequest). chat.ErrRevoked on reuse, chat.ErrNotFound.
func (c *Client) RefreshSession(ctx context.Context, req SessionRefreshRequest) (chat.Session, error) {
	var resp SessionResponse
	if err := c.call(ctx, OpSessionRefresh, req, &resp); err != nil {
		return chat.Session{}, err
	}
	return resp.Session, nil
}

// Sessions lists a user's live sessions.
func (c *Client) Sessions(ctx context.Context, user chat.ID) ([]chat.Session, error) {
	var resp SessionsResponse
	if err := c.call(ctx, OpSessions, SessionsRequest{User: user}, &resp); err != nil {
		return nil, err
	}
	return resp.Sessions, nil
}

// EndSession ends one of user's sessions. chat.ErrNotFound when user has
// no such session.
func (c *Client) EndSession(ctx context.Context, user, id chat.ID) error {
	return c.call(ctx, OpSessionEnd, SessionEndRequest{User: user, ID: id}, &Empty{})
}

// EndSessions ends every session of user but except (0: all) and returns
// the ones ended.
func (c *Client) EndSessions(ctx context.Context, user, except chat.ID) ([]chat.ID, error) {
	var resp SessionsEndResponse
	if err := c.call(ctx, OpSessionsEnd, SessionsEndRequest{User: user, Except: except}, &resp); err != nil {
		return nil, err
	}
	return resp.Ended, nil
}

// SetPassword replaces a password hash, ends every session of the user but
// req.Keep and returns the sessions ended.
func (c *Client) SetPassword(ctx context.Context, req PasswordRequest) ([]chat.ID, error) {
	var resp SessionsEndResponse
	if err := c.call(ctx, OpPassword, req, &resp); err != nil {
		return nil, err
	}
	return resp.Ended, nil
}
