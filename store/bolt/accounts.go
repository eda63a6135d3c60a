package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// CreateAccount stores a and returns it; ErrUsernameTaken if the username
// belongs to another sign-up. The check and the writes are one
// transaction, so of concurrent callers exactly one wins and no account is
// ever half-made. A retry of the winning sign-up (the same ID, or the same
// salted password hash under a new ID) changes nothing and returns the
// stored account.
func (b *Backend) CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error) {
	if a.ID == 0 || a.Username == "" {
		return chat.Account{}, fmt.Errorf("%w: account needs an ID and a username", chat.ErrInvalid)
	}
	stored := a
	err := b.update(ctx, func(tx *bbolt.Tx) error {
		names := tx.Bucket(bucketUsernames)
		accounts := tx.Bucket(bucketAccounts)
		name := []byte(a.Username)
		if v := names.Get(name); v != nil {
			prev, err := decodeAccount(accounts.Get(v))
			if err != nil {
				return fmt.Errorf("%w: username %q names a missing account: %w", errCorrupt, a.Username, err)
			}
			if prev.ID != a.ID && (a.PasswordHash == "" || prev.PasswordHash != a.PasswordHash) {
				return fmt.Errorf("%w: %q", chat.ErrUsernameTaken, a.Username)
			}
			stored = prev // a retry of the sign-up that created it
			return nil
		}
		id := idKey(a.ID)
		if accounts.Get(id) != nil {
			return fmt.Errorf("%w: user ID %d already has another username", chat.ErrInvalid, a.ID)
		}
		if err := names.Put(name, id); err != nil {
			return err
		}
		return accounts.Put(id, encodeAccount(a))
	})
	if err != nil {
		return chat.Account{}, err
	}
	return stored, nil
}

// AccountByUsername returns the account or ErrNotFound.
func (b *Backend) AccountByUsername(ctx context.Context, username string) (chat.Account, error) {
	var a chat.Account
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketUsernames).Get([]byte(username))
		if id == nil {
			return fmt.Errorf("%w: user %q", chat.ErrNotFound, username)
		}
		v := tx.Bucket(bucketAccounts).Get(id)
		if v == nil {
			return fmt.Errorf("%w: username %q names a missing account", errCorrupt, username)
		}
		var err error
		a, err = decodeAccount(v)
		return err
	})
	return a, err
}

// Users returns the users with these IDs that exist, in the order asked.
func (b *Backend) Users(ctx context.Context, ids []chat.ID) ([]chat.User, error) {
	users := make([]chat.User, 0, len(ids))
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		accounts := tx.Bucket(bucketAccounts)
		var key [8]byte
		for _, id := range ids {
			binary.BigEndian.PutUint64(key[:], uint64(id))
			v := accounts.Get(key[:])
			if v == nil {
				continue
			}
			u, err := decodeUser(v)
			if err != nil {
				return err
			}
			users = append(users, u)
		}
		return nil
	})
	return users, err
}

// SearchUsers returns up to limit users whose username starts with prefix,
// ordered by username: one range scan of the usernames bucket.
func (b *Backend) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	var users []chat.User
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		accounts := tx.Bucket(bucketAccounts)
		c := tx.Bucket(bucketUsernames).Cursor()
		p := []byte(prefix)
		for k, id := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(users) < limit; k, id = c.Next() {
			v := accounts.Get(id)
			if v == nil {
				return fmt.Errorf("%w: username %q names a missing account", errCorrupt, k)
			}
			u, err := decodeUser(v)
			if err != nil {
				return err
			}
			users = append(users, u)
		}
		return nil
	})
	return users, err
}
