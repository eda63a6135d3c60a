package cassandra

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// CreateAccount makes an account in three steps, so that a claimed
// username always has its users row and a retried sign-up finds its own:
//
//  1. the users row under a's ID. Nobody knows that ID yet, so a row whose
//     claim then fails is invisible, and is deleted;
//  2. the claim: a lightweight transaction on users_by_username, which
//     holds the whole account. Not applied, it returns the row there: the
//     same ID, or the same salted password hash (a request whose outcome its
//     caller did not learn, retried under a new ID), is this sign-up, whose
//     stored account is completed and returned; anything else is
//     ErrUsernameTaken;
//  3. the prefix-search rows, from the stored account. A process that dies
//     before them leaves an account that search does not find until the
//     sign-up is retried.
func (b *Backend) CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error) {
	if a.Username == "" || !validID(a.ID) {
		return chat.Account{}, fmt.Errorf("%w: account %q id %d", chat.ErrInvalid, a.Username, a.ID)
	}
	if err := b.writeUser(ctx, a); err != nil {
		return chat.Account{}, wrap("create account", err)
	}
	prev := map[string]any{}
	applied, err := b.q(ctx, `INSERT INTO users_by_username (username, user_id, display_name, password_hash, created_at)
		VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`,
		a.Username, int64(a.ID), unsetIfEmpty(a.DisplayName), unsetIfEmpty(a.PasswordHash), createdAt(a)).MapScanCAS(prev)
	if err != nil {
		// Unknown outcome (a CAS timeout): the users row stays, as the claim
		// may have been applied; a retry completes the account.
		return chat.Account{}, wrap("create account", err)
	}
	if b.claimed != nil {
		if err := b.claimed(); err != nil {
			return chat.Account{}, err
		}
	}
	stored := a
	if !applied {
		stored = chat.Account{
			User: chat.User{ID: chat.ID(toInt64(prev["user_id"])), Username: a.Username,
				DisplayName: toString(prev["display_name"])},
			PasswordHash: toString(prev["password_hash"]),
			CreatedAt:    toTime(prev["created_at"]),
		}
		same := stored.ID == a.ID || (a.PasswordHash != "" && stored.PasswordHash == a.PasswordHash)
		if stored.ID != a.ID {
			// Our users row names a user that will never exist.
			if err := b.q(ctx, `DELETE FROM users WHERE user_id = ?`, int64(a.ID)).Exec(); err != nil {
				return chat.Account{}, wrap("create account", err)
			}
		}
		if !same {
			return chat.Account{}, fmt.Errorf("%w: %q", chat.ErrUsernameTaken, a.Username)
		}
	}
	stmts := []func(ctx context.Context) error{
		func(ctx context.Context) error {
			if applied {
				return nil // written in step 1
			}
			// A retry: the users row agrees with the stored account even if
			// the retry carries other values.
			return b.writeUser(ctx, stored)
		},
		func(ctx context.Context) error {
			return b.writeSearchRows(ctx, chat.User{ID: stored.ID, Username: stored.Username, DisplayName: stored.DisplayName})
		},
	}
	if err := b.each(ctx, len(stmts), func(ctx context.Context, i int) error { return stmts[i](ctx) }); err != nil {
		return chat.Account{}, wrap("create account", err)
	}
	return stored, nil
}

func (b *Backend) writeUser(ctx context.Context, a chat.Account) error {
	return b.q(ctx, `INSERT INTO users (user_id, username, display_name, created_at) VALUES (?, ?, ?, ?)`,
		int64(a.ID), a.Username, unsetIfEmpty(a.DisplayName), createdAt(a)).Exec()
}

// createdAt leaves a zero time unwritten.
func createdAt(a chat.Account) any {
	if a.CreatedAt.IsZero() {
		return gocql.UnsetValue
	}
	return a.CreatedAt
}

func firstRune(s string) string {
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// AccountByUsername is one partition read of users_by_username.
func (b *Backend) AccountByUsername(ctx context.Context, username string) (chat.Account, error) {
	if username == "" {
		return chat.Account{}, fmt.Errorf("%w: username %q", chat.ErrNotFound, username)
	}
	var (
		id                int64
		display, password string
		created           gocqlTime
	)
	err := b.q(ctx, `SELECT user_id, display_name, password_hash, created_at FROM users_by_username WHERE username = ?`, username).
		Scan(&id, &display, &password, &created.t)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.Account{}, fmt.Errorf("%w: username %q", chat.ErrNotFound, username)
	}
	if err != nil {
		return chat.Account{}, wrap("account by username", err)
	}
	return chat.Account{
		User:         chat.User{ID: chat.ID(id), Username: username, DisplayName: display},
		PasswordHash: password,
		CreatedAt:    created.utc(),
	}, nil
}

// gocqlTime holds a scanned timestamp; a null one scans as the zero time.
type gocqlTime struct{ t time.Time }

func (g gocqlTime) utc() time.Time {
	if g.t.IsZero() {
		return time.Time{}
	}
	return g.t.UTC()
}

// Users reads users rows with IN on up to 50 partition keys per query,
// queries running concurrently: the coordinator fetches the rows of one
// query in parallel, far cheaper than a round trip per user (see
// schema/README.md, the conversation list).
func (b *Backend) Users(ctx context.Context, ids []chat.ID) ([]chat.User, error) {
	var keys []int64
	seen := map[chat.ID]bool{}
	for _, id := range ids {
		if validID(id) && !seen[id] {
			seen[id] = true
			keys = append(keys, int64(id))
		}
	}
	found := make(map[chat.ID]chat.User, len(keys))
	var mu sync.Mutex
	chunks := (len(keys) + listChunk - 1) / listChunk
	err := b.each(ctx, chunks, func(ctx context.Context, i int) error {
		part := keys[i*listChunk : min((i+1)*listChunk, len(keys))]
		iter := b.q(ctx, `SELECT user_id, username, display_name FROM users WHERE user_id IN ?`, part).Iter()
		var (
			id            int64
			name, display string
		)
		for iter.Scan(&id, &name, &display) {
			mu.Lock()
			found[chat.ID(id)] = chat.User{ID: chat.ID(id), Username: name, DisplayName: display}
			mu.Unlock()
		}
		return iter.Close()
	})
	if err != nil {
		return nil, wrap("users", err)
	}
	var users []chat.User
	for _, id := range ids {
		if u, ok := found[id]; ok {
			users = append(users, u)
		}
	}
	return users, nil
}

// SearchUsers reads the bounded partitions of users_by_prefix
// (usersearch.go) and, for accounts made before them, users_by_initial:
// from the prefix on, within the partition of the prefix's first
// character, stopping at the first username without the prefix (an empty
// prefix walks every initial in order); the two name-ordered lists are
// merged.
func (b *Backend) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	if limit < 1 {
		return nil, nil
	}
	users, err := b.searchPrefix(ctx, prefix, limit)
	if err != nil {
		return nil, wrap("search users", err)
	}
	old, err := b.searchInitials(ctx, prefix, limit)
	if err != nil {
		return nil, wrap("search users", err)
	}
	return mergeUsers(users, old, limit), nil
}

// searchInitials is the search of accounts made before migration 0008.
func (b *Backend) searchInitials(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	var initials []string
	if prefix != "" {
		initials = []string{firstRune(prefix)}
	} else {
		iter := b.q(ctx, `SELECT initial FROM username_initials WHERE shard = 0`).Iter()
		var in string
		for iter.Scan(&in) {
			initials = append(initials, in)
		}
		if err := iter.Close(); err != nil {
			return nil, err
		}
	}
	var users []chat.User
	for _, in := range initials {
		got, err := b.sliceUsers(ctx, `users_by_initial WHERE initial = ?`, in, prefix, limit-len(users))
		if err != nil {
			return nil, err
		}
		users = append(users, got...)
		if len(users) == limit {
			break
		}
	}
	return users, nil
}
