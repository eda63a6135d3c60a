package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// CreateAccount stores a; ErrUsernameTaken if the username exists. The
// check and the writes are one transaction, so of concurrent callers
// exactly one wins. Replaying the winning call (same ID, same username)
// succeeds and changes nothing.
func (b *Backend) CreateAccount(ctx context.Context, a chat.Account) error {
	if a.ID == 0 || a.Username == "" {
		return fmt.Errorf("%w: account needs an ID and a username", chat.ErrInvalid)
	}
	return b.update(ctx, func(tx *bbolt.Tx) error {
		names := tx.Bucket(bucketUsernames)
		accounts := tx.Bucket(bucketAccounts)
		name := []byte(a.Username)
		if v := names.Get(name); v != nil {
			if len(v) == 8 && chat.ID(binary.BigEndian.Uint64(v)) == a.ID {
				return nil // a replay of the call that created it
			}
			return fmt.Errorf("%w: %q", chat.ErrUsernameTaken, a.Username)
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
