package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// Sessions are few and small, so they are stored as JSON behind a version
// byte rather than in the hand-rolled codec of the hot paths.

func encodeSession(s chat.Session) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return append([]byte{valueVersion}, b...), nil
}

func decodeSession(v []byte) (chat.Session, error) {
	var s chat.Session
	if len(v) < 1 || v[0] != valueVersion {
		return s, fmt.Errorf("%w: session version", errCorrupt)
	}
	if err := json.Unmarshal(v[1:], &s); err != nil {
		return s, fmt.Errorf("%w: session: %v", errCorrupt, err)
	}
	return s, nil
}

func userSessionKey(user, id chat.ID) []byte { return append(idKey(user), idKey(id)...) }

// CreateSession stores s and indexes it under its user, in one transaction.
func (b *Backend) CreateSession(ctx context.Context, s chat.Session) error {
	if s.ID == 0 || s.User == 0 {
		return fmt.Errorf("%w: session needs an ID and a user", chat.ErrInvalid)
	}
	v, err := encodeSession(s)
	if err != nil {
		return err
	}
	return b.update(ctx, func(tx *bbolt.Tx) error {
		sessions := tx.Bucket(bucketSessions)
		if old := sessions.Get(idKey(s.ID)); old != nil {
			return nil // a replay
		}
		if err := sessions.Put(idKey(s.ID), v); err != nil {
			return err
		}
		return tx.Bucket(bucketUserSess).Put(userSessionKey(s.User, s.ID), nil)
	})
}

// liveSession reads a session in tx; ErrNotFound when absent or expired.
func liveSession(tx *bbolt.Tx, id chat.ID) (chat.Session, error) {
	v := tx.Bucket(bucketSessions).Get(idKey(id))
	if v == nil {
		return chat.Session{}, fmt.Errorf("%w: session %d", chat.ErrNotFound, id)
	}
	s, err := decodeSession(v)
	if err != nil {
		return s, err
	}
	if !s.Live(time.Now()) {
		return chat.Session{}, fmt.Errorf("%w: session %d expired", chat.ErrNotFound, id)
	}
	return s, nil
}

// Session returns a live session or ErrNotFound.
func (b *Backend) Session(ctx context.Context, id chat.ID) (chat.Session, error) {
	var s chat.Session
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		s, err = liveSession(tx, id)
		return err
	})
	return s, err
}

// RotateSession compares and sets in one write transaction: bbolt has one
// writer at a time, so two rotations from one generation are serialised and
// the second sees the first's generation.
func (b *Backend) RotateSession(ctx context.Context, id chat.ID, gen uint32, hash []byte, seen time.Time) error {
	return b.update(ctx, func(tx *bbolt.Tx) error {
		s, err := liveSession(tx, id)
		if err != nil {
			return err
		}
		if s.Generation != gen {
			return fmt.Errorf("%w: session %d is at generation %d, not %d", chat.ErrConflict, id, s.Generation, gen)
		}
		s.Generation = gen + 1
		s.RefreshHash = bytes.Clone(hash)
		s.LastSeen = seen
		v, err := encodeSession(s)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSessions).Put(idKey(id), v)
	})
}

// DeleteSession removes the session and its index entry.
func (b *Backend) DeleteSession(ctx context.Context, user, id chat.ID) error {
	return b.update(ctx, func(tx *bbolt.Tx) error {
		sessions := tx.Bucket(bucketSessions)
		v := sessions.Get(idKey(id))
		if v == nil {
			return nil
		}
		s, err := decodeSession(v)
		if err != nil {
			return err
		}
		if s.User != user {
			return nil
		}
		if err := sessions.Delete(idKey(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketUserSess).Delete(userSessionKey(user, id))
	})
}

// Sessions scans the user's index; expired sessions are skipped (and left
// for a later delete: a read transaction cannot remove them).
func (b *Backend) Sessions(ctx context.Context, user chat.ID) ([]chat.Session, error) {
	var out []chat.Session
	now := time.Now()
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		prefix := idKey(user)
		c := tx.Bucket(bucketUserSess).Cursor()
		sessions := tx.Bucket(bucketSessions)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			v := sessions.Get(k[8:])
			if v == nil {
				continue
			}
			s, err := decodeSession(v)
			if err != nil {
				return err
			}
			if s.Live(now) {
				out = append(out, s)
			}
		}
		return nil
	})
	return out, err
}

// SetPasswordHash rewrites the account's record with the new hash.
func (b *Backend) SetPasswordHash(ctx context.Context, username, hash string) error {
	if hash == "" {
		return fmt.Errorf("%w: empty password hash", chat.ErrInvalid)
	}
	return b.update(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketUsernames).Get([]byte(username))
		if id == nil {
			return fmt.Errorf("%w: user %q", chat.ErrNotFound, username)
		}
		accounts := tx.Bucket(bucketAccounts)
		v := accounts.Get(id)
		if v == nil {
			return fmt.Errorf("%w: username %q names a missing account", errCorrupt, username)
		}
		a, err := decodeAccount(v)
		if err != nil {
			return err
		}
		a.PasswordHash = hash
		return accounts.Put(bytes.Clone(id), encodeAccount(a))
	})
}
