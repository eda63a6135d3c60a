package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/password"
	"github.com/chatcluster/chat/store/storeclient"
)

func (s *Service) signup(ctx context.Context, req storeclient.SignupRequest) (any, error) {
	a := req.Account
	a.Username = strings.ToLower(a.Username)
	switch {
	case !chat.ValidUsername(a.Username):
		return nil, fmt.Errorf("%w: username %q", chat.ErrInvalid, a.Username)
	case chat.ReservedUsername(a.Username):
		return nil, fmt.Errorf("%w: username %q is reserved", chat.ErrUsernameTaken, a.Username)
	case a.PasswordHash == "":
		return nil, fmt.Errorf("%w: empty password hash", chat.ErrInvalid)
	case a.DisplayName != "" && !chat.ValidDisplayName(a.DisplayName):
		return nil, fmt.Errorf("%w: display name", chat.ErrInvalid)
	}
	if a.DisplayName == "" {
		a.DisplayName = a.Username
	}
	if a.ID == 0 {
		id, err := s.nextID()
		if err != nil {
			return nil, err
		}
		a.ID = id
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now()
	}
	// A retried request (its outcome unknown to the caller) carries the
	// same salted password hash and gets the account its first attempt
	// made, not a second ID nor "username taken".
	stored, err := s.b.CreateAccount(ctx, a)
	if err != nil {
		return nil, err
	}
	return storeclient.SignupResponse{User: stored.User}, nil
}

func (s *Service) account(ctx context.Context, req storeclient.AccountRequest) (any, error) {
	u := strings.ToLower(req.Username)
	if !chat.ValidUsername(u) {
		return nil, fmt.Errorf("%w: no account %q", chat.ErrNotFound, req.Username)
	}
	a, err := s.b.AccountByUsername(ctx, u)
	if err != nil {
		return nil, err
	}
	a.PasswordHash = "" // never leaves the store: login checks here
	return storeclient.AccountResponse{Account: a}, nil
}

// login checks a password against the account's hash. An unknown or
// malformed username costs the same argon2 run (against a dummy hash) and
// gets the same answer as a wrong password.
func (s *Service) login(ctx context.Context, req storeclient.LoginRequest) (any, error) {
	var a chat.Account
	if u, ok := chat.FoldUsername(req.Username); ok && chat.ValidPassword(req.Password) {
		var err error
		if a, err = s.b.AccountByUsername(ctx, u); err != nil && !errors.Is(err, chat.ErrNotFound) {
			return nil, err
		}
	}
	if err := s.checkPassword(ctx, a.PasswordHash, req.Password); err != nil {
		return nil, err
	}
	if a.ID == 0 {
		return nil, chat.ErrWrongPassword
	}
	return storeclient.LoginResponse{User: a.User}, nil
}

// checkPassword runs password.Check, at most MaxPasswordChecks at a time:
// chat.ErrWrongPassword on a mismatch, chat.ErrUnavailable when ctx ends
// while waiting for a turn.
func (s *Service) checkPassword(ctx context.Context, hash, pw string) error {
	select {
	case s.checks <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: password checks busy: %w", chat.ErrUnavailable, ctx.Err())
	}
	err := password.Check(hash, pw)
	<-s.checks
	if err != nil {
		return fmt.Errorf("%w: %w", chat.ErrWrongPassword, err)
	}
	return nil
}

func (s *Service) users(ctx context.Context, req storeclient.UsersRequest) (any, error) {
	if len(req.IDs) > s.cfg.MaxIDs {
		return nil, fmt.Errorf("%w: %d ids, at most %d", chat.ErrInvalid, len(req.IDs), s.cfg.MaxIDs)
	}
	resp := storeclient.UsersResponse{Users: []chat.User{}}
	if len(req.IDs) == 0 {
		return resp, nil
	}
	users, err := s.b.Users(ctx, req.IDs)
	if err != nil {
		return nil, err
	}
	if users != nil {
		resp.Users = users
	}
	return resp, nil
}

func (s *Service) search(ctx context.Context, req storeclient.SearchRequest) (any, error) {
	resp := storeclient.SearchResponse{Users: []chat.User{}}
	prefix := strings.ToLower(req.Prefix)
	if len(prefix) > 32 || strings.IndexFunc(prefix, func(r rune) bool { return r > 127 || !chat.UsernameByte(byte(r)) }) >= 0 {
		return resp, nil // no username can start with it
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	users, err := s.b.SearchUsers(ctx, prefix, limit)
	if err != nil {
		return nil, err
	}
	if users != nil {
		resp.Users = users
	}
	return resp, nil
}

// checkUsers returns ErrNotFound unless every user of ids exists.
func (s *Service) checkUsers(ctx context.Context, ids []chat.ID) error {
	users, err := s.b.Users(ctx, ids)
	if err != nil {
		return err
	}
	if len(users) == len(ids) {
		return nil
	}
	found := make(map[chat.ID]bool, len(users))
	for _, u := range users {
		found[u.ID] = true
	}
	for _, id := range ids {
		if !found[id] {
			return fmt.Errorf("%w: user %s", chat.ErrNotFound, id)
		}
	}
	return nil
}
