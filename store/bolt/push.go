package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

// userDevKey is user ID then token: a user's devices are one range, by token.
func userDevKey(user chat.ID, token string) []byte { return append(idKey(user), token...) }

// PutDevice registers d for d.User, moving the token from another user who
// held it, in one transaction.
func (b *Backend) PutDevice(ctx context.Context, d chat.Device) error {
	if err := chat.ValidateDevice(d); err != nil {
		return err
	}
	val, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("bolt: encode device: %w", err)
	}
	return b.update(ctx, func(tx *bbolt.Tx) error {
		owners, devs := tx.Bucket(bucketDevices), tx.Bucket(bucketUserDevs)
		if v := owners.Get([]byte(d.Token)); len(v) == 8 {
			if prev := keyID(v); prev != d.User {
				if err := devs.Delete(userDevKey(prev, d.Token)); err != nil {
					return err
				}
			}
		}
		key := userDevKey(d.User, d.Token)
		if devs.Get(key) == nil {
			n := 0
			prefix := idKey(d.User)
			cur := devs.Cursor()
			for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
				n++
			}
			if n >= chat.MaxDevices {
				return fmt.Errorf("%w: user %d has %d devices", chat.ErrTooMany, d.User, n)
			}
		}
		if err := owners.Put([]byte(d.Token), idKey(d.User)); err != nil {
			return err
		}
		return devs.Put(key, val)
	})
}

// Devices lists user's devices, by token.
func (b *Backend) Devices(ctx context.Context, user chat.ID) ([]chat.Device, error) {
	out := []chat.Device{}
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		prefix := idKey(user)
		cur := tx.Bucket(bucketUserDevs).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			var d chat.Device
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("device %x: %w", k, errCorrupt)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// DeleteDevice removes user's device with token.
func (b *Backend) DeleteDevice(ctx context.Context, user chat.ID, token string) error {
	return b.update(ctx, func(tx *bbolt.Tx) error {
		devs := tx.Bucket(bucketUserDevs)
		key := userDevKey(user, token)
		if devs.Get(key) == nil {
			return fmt.Errorf("%w: device of user %d", chat.ErrNotFound, user)
		}
		if err := devs.Delete(key); err != nil {
			return err
		}
		return tx.Bucket(bucketDevices).Delete([]byte(token))
	})
}

// SetMuted mutes or unmutes conversation for user, a member.
func (b *Backend) SetMuted(ctx context.Context, conversation string, user chat.ID, muted bool) error {
	if err := validConv(conversation); err != nil {
		return err
	}
	key := convKey(conversation, user)
	return b.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMembers).Get(key) == nil {
			return fmt.Errorf("%w: user %d in conversation %s", chat.ErrNotFound, user, conversation)
		}
		if muted {
			return tx.Bucket(bucketMutes).Put(key, nil)
		}
		return tx.Bucket(bucketMutes).Delete(key)
	})
}

// MemberStates reads the conversation's members (one range scan) and their
// mutes.
func (b *Backend) MemberStates(ctx context.Context, conversation string) ([]chat.MemberState, error) {
	if err := validConv(conversation); err != nil {
		return nil, err
	}
	var out []chat.MemberState
	err := b.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketConvs).Get([]byte(conversation)) == nil {
			return fmt.Errorf("%w: conversation %s", chat.ErrNotFound, conversation)
		}
		mutes := tx.Bucket(bucketMutes)
		prefix := convPrefix(conversation)
		cur := tx.Bucket(bucketMembers).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			if len(k) != len(prefix)+8 {
				return fmt.Errorf("conversation %s: member key %x: %w", conversation, k, errCorrupt)
			}
			m, err := decodeMembership(v)
			if err != nil {
				return err
			}
			out = append(out, chat.MemberState{User: keyID(k), LastRead: m.lastRead, Muted: mutes.Get(k) != nil})
		}
		return nil
	})
	return out, err
}
