package store

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"go.uber.org/zap"
)

// refreshHashLen is a SHA-256.
const refreshHashLen = 32

// public drops what never leaves the store: the refresh hash.
func public(ss chat.Session) chat.Session {
	ss.RefreshHash = nil
	return ss
}

func (s *Service) sessionCreate(ctx context.Context, req storeclient.SessionCreateRequest) (any, error) {
	ss := req.Session
	t := now()
	switch {
	case ss.User == 0:
		return nil, fmt.Errorf("%w: session without a user", chat.ErrInvalid)
	case len(ss.RefreshHash) != refreshHashLen:
		return nil, fmt.Errorf("%w: refresh hash must be %d bytes", chat.ErrInvalid, refreshHashLen)
	case !ss.Live(t):
		return nil, fmt.Errorf("%w: session already expired", chat.ErrInvalid)
	case !utf8.ValidString(ss.Device) || utf8.RuneCountInString(ss.Device) > chat.MaxDevice:
		return nil, fmt.Errorf("%w: device name", chat.ErrInvalid)
	}
	id, err := s.nextID()
	if err != nil {
		return nil, err
	}
	ss.ID = id
	ss.Generation = 0
	ss.CreatedAt, ss.LastSeen = t, t
	ss.ExpiresAt = ss.ExpiresAt.UTC().Truncate(1e6)
	if err := s.b.CreateSession(ctx, ss); err != nil {
		return nil, err
	}
	// Bound the user's sessions: signing in again and again must not grow
	// the list (and its listing) without end.
	all, err := s.b.Sessions(ctx, ss.User)
	if err != nil {
		return nil, err
	}
	if extra := len(all) - s.cfg.MaxSessions; extra > 0 {
		slices.SortFunc(all, func(a, b chat.Session) int { return a.LastSeen.Compare(b.LastSeen) })
		var ended []chat.ID
		for _, old := range all {
			if len(ended) == extra {
				break
			}
			if old.ID == ss.ID {
				continue
			}
			if err := s.b.DeleteSession(ctx, ss.User, old.ID); err != nil {
				return nil, err
			}
			ended = append(ended, old.ID)
		}
		s.revoked(ss.User, ended)
	}
	return storeclient.SessionResponse{Session: public(ss)}, nil
}

func (s *Service) sessionRefresh(ctx context.Context, req storeclient.SessionRefreshRequest) (any, error) {
	if len(req.NewHash) != refreshHashLen {
		return nil, fmt.Errorf("%w: refresh hash must be %d bytes", chat.ErrInvalid, refreshHashLen)
	}
	ss, err := s.b.Session(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Generation < ss.Generation:
		// A retired refresh token came back: it was copied. Whoever holds
		// it and whoever holds the current one cannot be told apart, so
		// the session ends for both (OAuth 2.0 security BCP, 4.14.2).
		return nil, s.endForReuse(ctx, ss)
	case req.Generation > ss.Generation || subtle.ConstantTimeCompare(req.Hash, ss.RefreshHash) != 1:
		return nil, fmt.Errorf("%w: session %d", chat.ErrNotFound, req.ID)
	}
	seen := now()
	if err := s.b.RotateSession(ctx, ss.ID, ss.Generation, req.NewHash, seen); err != nil {
		if errors.Is(err, chat.ErrConflict) {
			// Someone refreshed with the same token a moment ago: the same
			// token used twice, which is reuse as well.
			return nil, s.endForReuse(ctx, ss)
		}
		return nil, err
	}
	ss.Generation++
	ss.LastSeen = seen
	return storeclient.SessionResponse{Session: public(ss)}, nil
}

func (s *Service) endForReuse(ctx context.Context, ss chat.Session) error {
	if err := s.b.DeleteSession(ctx, ss.User, ss.ID); err != nil {
		return err
	}
	s.revoked(ss.User, []chat.ID{ss.ID})
	s.log.Warn("refresh token reused: session ended", zap.Uint64("user", uint64(ss.User)), zap.Uint64("session", uint64(ss.ID)))
	return fmt.Errorf("%w: session %d", chat.ErrRevoked, ss.ID)
}

func (s *Service) sessions(ctx context.Context, req storeclient.SessionsRequest) (any, error) {
	all, err := s.b.Sessions(ctx, req.User)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Session, 0, len(all))
	for _, ss := range all {
		out = append(out, public(ss))
	}
	return storeclient.SessionsResponse{Sessions: out}, nil
}

func (s *Service) sessionEnd(ctx context.Context, req storeclient.SessionEndRequest) (any, error) {
	ss, err := s.b.Session(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	if ss.User != req.User {
		// Someone else's session is not disclosed.
		return nil, fmt.Errorf("%w: session %d", chat.ErrNotFound, req.ID)
	}
	if err := s.b.DeleteSession(ctx, ss.User, ss.ID); err != nil {
		return nil, err
	}
	s.revoked(ss.User, []chat.ID{ss.ID})
	return storeclient.Empty{}, nil
}

func (s *Service) sessionsEnd(ctx context.Context, req storeclient.SessionsEndRequest) (any, error) {
	ended, err := s.endAll(ctx, req.User, req.Except)
	if err != nil {
		return nil, err
	}
	return storeclient.SessionsEndResponse{Ended: ended}, nil
}

// endAll ends every session of user but except and announces it.
func (s *Service) endAll(ctx context.Context, user, except chat.ID) ([]chat.ID, error) {
	if user == 0 {
		return nil, fmt.Errorf("%w: no user", chat.ErrInvalid)
	}
	all, err := s.b.Sessions(ctx, user)
	if err != nil {
		return nil, err
	}
	ended := []chat.ID{}
	for _, ss := range all {
		if ss.ID == except {
			continue
		}
		if err := s.b.DeleteSession(ctx, user, ss.ID); err != nil {
			s.revoked(user, ended) // those are gone already: say so
			return nil, err
		}
		ended = append(ended, ss.ID)
	}
	s.revoked(user, ended)
	return ended, nil
}

func (s *Service) password(ctx context.Context, req storeclient.PasswordRequest) (any, error) {
	if req.Hash == "" {
		return nil, fmt.Errorf("%w: empty password hash", chat.ErrInvalid)
	}
	a, err := s.b.AccountByUsername(ctx, req.Username)
	if err != nil {
		return nil, err
	}
	if a.ID != req.User {
		return nil, fmt.Errorf("%w: account %q", chat.ErrNotFound, req.Username)
	}
	if err := s.checkPassword(ctx, a.PasswordHash, req.Current); err != nil {
		return nil, err
	}
	if err := s.b.SetPasswordHash(ctx, req.Username, req.Hash); err != nil {
		return nil, err
	}
	ended, err := s.endAll(ctx, req.User, req.Keep)
	if err != nil {
		return nil, err
	}
	return storeclient.SessionsEndResponse{Ended: ended}, nil
}

// revoked tells every gateway that these sessions ended. Core NATS, at
// most once: a gateway that misses it (it was starting) learns it from the
// others' sync, and at worst accepts the access token until it expires.
func (s *Service) revoked(user chat.ID, ids []chat.ID) {
	if len(ids) == 0 {
		return
	}
	b, err := json.Marshal(chat.SessionsRevoked{User: user, Sessions: ids})
	if err == nil {
		err = s.nc.Publish(chat.SessionRevokedSubject, b)
	}
	if err != nil {
		s.log.Warn("publishing session revocation failed", zap.Error(err))
	}
}
