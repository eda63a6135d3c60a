package cassandra

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/chatcluster/chat"
)

// ttlUntil is a row TTL in whole seconds that outlasts expires (the code
// checks expires_at itself; the TTL only clears the row away later).
func ttlUntil(expires time.Time) int {
	d := time.Until(expires)
	if d <= 0 {
		return 1
	}
	return int(math.Min(math.Ceil(d.Seconds())+1, math.MaxInt32))
}

// CreateSession writes the session with a lightweight transaction (every
// write to sessions is one, see schema 0003), then its user_sessions row.
// A replay finds the row and rewrites only the index row.
func (b *Backend) CreateSession(ctx context.Context, s chat.Session) error {
	if !validID(s.ID) || !validID(s.User) {
		return fmt.Errorf("%w: session %d of user %d", chat.ErrInvalid, s.ID, s.User)
	}
	ttl := ttlUntil(s.ExpiresAt)
	_, err := b.q(ctx, `INSERT INTO sessions (session_id, user_id, device, generation, refresh_hash, created_at, last_seen, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?`,
		int64(s.ID), int64(s.User), unsetIfEmpty(s.Device), int(s.Generation), s.RefreshHash,
		s.CreatedAt, s.LastSeen, s.ExpiresAt, ttl).MapScanCAS(map[string]any{})
	if err != nil {
		return wrap("create session", err)
	}
	if err := b.q(ctx, `INSERT INTO user_sessions (user_id, session_id) VALUES (?, ?) USING TTL ?`,
		int64(s.User), int64(s.ID), ttl).Exec(); err != nil {
		return wrap("create session", err)
	}
	return nil
}

const sessionColumns = `session_id, user_id, device, generation, refresh_hash, created_at, last_seen, expires_at`

func scanSession(scan func(...any) bool) (chat.Session, bool) {
	var (
		id, user                 int64
		device                   string
		gen                      int
		hash                     []byte
		created, seen, expiresAt gocqlTime
	)
	if !scan(&id, &user, &device, &gen, &hash, &created.t, &seen.t, &expiresAt.t) {
		return chat.Session{}, false
	}
	return chat.Session{
		ID: chat.ID(id), User: chat.ID(user), Device: device, Generation: uint32(gen), RefreshHash: hash,
		CreatedAt: created.utc(), LastSeen: seen.utc(), ExpiresAt: expiresAt.utc(),
	}, true
}

// Session reads the row at the backend's consistency. A rotation decided on
// a stale read still goes through the lightweight transaction, which
// compares the generation again.
func (b *Backend) Session(ctx context.Context, id chat.ID) (chat.Session, error) {
	if !validID(id) {
		return chat.Session{}, fmt.Errorf("%w: session %d", chat.ErrNotFound, id)
	}
	iter := b.q(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE session_id = ?`, int64(id)).Iter()
	s, ok := scanSession(iter.Scan)
	if err := iter.Close(); err != nil {
		return chat.Session{}, wrap("session", err)
	}
	if !ok || !s.Live(time.Now()) {
		return chat.Session{}, fmt.Errorf("%w: session %d", chat.ErrNotFound, id)
	}
	return s, nil
}

// RotateSession is UPDATE ... IF generation = ?: of two rotations from one
// generation Paxos lets exactly one apply.
func (b *Backend) RotateSession(ctx context.Context, id chat.ID, gen uint32, hash []byte, seen time.Time) error {
	cur, err := b.Session(ctx, id)
	if err != nil {
		return err
	}
	prev := map[string]any{}
	applied, err := b.q(ctx, `UPDATE sessions USING TTL ? SET generation = ?, refresh_hash = ?, last_seen = ?
		WHERE session_id = ? IF generation = ?`,
		ttlUntil(cur.ExpiresAt), int(gen+1), hash, seen, int64(id), int(gen)).MapScanCAS(prev)
	if err != nil {
		return wrap("rotate session", err)
	}
	if !applied {
		if prev["generation"] == nil {
			return fmt.Errorf("%w: session %d", chat.ErrNotFound, id)
		}
		return fmt.Errorf("%w: session %d moved on", chat.ErrConflict, id)
	}
	return nil
}

// DeleteSession deletes the row only if it is user's (IF user_id = ?),
// then the index row.
func (b *Backend) DeleteSession(ctx context.Context, user, id chat.ID) error {
	if !validID(id) || !validID(user) {
		return nil
	}
	if _, err := b.q(ctx, `DELETE FROM sessions WHERE session_id = ? IF user_id = ?`, int64(id), int64(user)).
		MapScanCAS(map[string]any{}); err != nil {
		return wrap("delete session", err)
	}
	if err := b.q(ctx, `DELETE FROM user_sessions WHERE user_id = ? AND session_id = ?`, int64(user), int64(id)).Exec(); err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// Sessions reads the user's index partition, then the sessions rows with
// IN, in chunks read concurrently.
func (b *Backend) Sessions(ctx context.Context, user chat.ID) ([]chat.Session, error) {
	if !validID(user) {
		return nil, nil
	}
	var ids []int64
	iter := b.q(ctx, `SELECT session_id FROM user_sessions WHERE user_id = ?`, int64(user)).Iter()
	var id int64
	for iter.Scan(&id) {
		ids = append(ids, id)
	}
	if err := iter.Close(); err != nil {
		return nil, wrap("sessions", err)
	}
	var (
		mu  sync.Mutex
		out []chat.Session
	)
	now := time.Now()
	chunks := (len(ids) + listChunk - 1) / listChunk
	err := b.each(ctx, chunks, func(ctx context.Context, i int) error {
		part := ids[i*listChunk : min((i+1)*listChunk, len(ids))]
		iter := b.q(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE session_id IN ?`, part).Iter()
		for {
			s, ok := scanSession(iter.Scan)
			if !ok {
				break
			}
			if s.User == user && s.Live(now) {
				mu.Lock()
				out = append(out, s)
				mu.Unlock()
			}
		}
		return iter.Close()
	})
	if err != nil {
		return nil, wrap("sessions", err)
	}
	slices.SortFunc(out, func(a, b chat.Session) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// SetPasswordHash updates users_by_username with a lightweight transaction
// (IF EXISTS), as the row was created with one.
func (b *Backend) SetPasswordHash(ctx context.Context, username, hash string) error {
	if hash == "" {
		return fmt.Errorf("%w: empty password hash", chat.ErrInvalid)
	}
	if username == "" {
		return fmt.Errorf("%w: username %q", chat.ErrNotFound, username)
	}
	applied, err := b.q(ctx, `UPDATE users_by_username SET password_hash = ? WHERE username = ? IF EXISTS`, hash, username).
		MapScanCAS(map[string]any{})
	if err != nil {
		return wrap("set password", err)
	}
	if !applied {
		return fmt.Errorf("%w: username %q", chat.ErrNotFound, username)
	}
	return nil
}
