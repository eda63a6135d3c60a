package cassandra

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// PutDevice registers d for d.User. The token's owner row is read first: a
// token held by another user moves (its old user_devices row is deleted).
// Two concurrent registrations of one token for two users may leave it
// listed under both until the next registration; the push service sends to
// what user_devices lists, so such a token is notified for both users at
// worst, which is the state before the move.
func (b *Backend) PutDevice(ctx context.Context, d chat.Device) error {
	if err := chat.ValidateDevice(d); err != nil {
		return err
	}
	var owner int64
	err := b.q(ctx, `SELECT user_id FROM devices WHERE push_token = ?`, d.Token).Scan(&owner)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
	case err != nil:
		return wrap("put device", err)
	case owner != int64(d.User):
		if err := b.q(ctx, `DELETE FROM user_devices WHERE user_id = ? AND push_token = ?`, owner, d.Token).Exec(); err != nil {
			return wrap("put device", err)
		}
	}
	if owner != int64(d.User) {
		var n int
		if err := b.q(ctx, `SELECT COUNT(*) FROM user_devices WHERE user_id = ?`, int64(d.User)).Scan(&n); err != nil {
			return wrap("put device", err)
		}
		if n >= chat.MaxDevices {
			return fmt.Errorf("%w: user %d has %d devices", chat.ErrTooMany, d.User, n)
		}
	}
	if err := b.q(ctx, `INSERT INTO user_devices (user_id, push_token, kind, app_id, p256dh, auth, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		int64(d.User), d.Token, string(d.Kind), unsetIfEmpty(d.AppID), unsetIfEmpty(d.P256DH), unsetIfEmpty(d.Auth), d.CreatedAt).Exec(); err != nil {
		return wrap("put device", err)
	}
	if err := b.q(ctx, `INSERT INTO devices (push_token, user_id) VALUES (?, ?)`, d.Token, int64(d.User)).Exec(); err != nil {
		return wrap("put device", err)
	}
	return nil
}

// Devices lists user's devices: one partition, clustered by token.
func (b *Backend) Devices(ctx context.Context, user chat.ID) ([]chat.Device, error) {
	iter := b.q(ctx, `SELECT push_token, kind, app_id, p256dh, auth, created_at FROM user_devices WHERE user_id = ?`, int64(user)).Iter()
	out := []chat.Device{}
	row := map[string]any{}
	for iter.MapScan(row) {
		out = append(out, chat.Device{
			User:      user,
			Token:     toString(row["push_token"]),
			Kind:      chat.DeviceKind(toString(row["kind"])),
			AppID:     toString(row["app_id"]),
			P256DH:    toString(row["p256dh"]),
			Auth:      toString(row["auth"]),
			CreatedAt: toTime(row["created_at"]),
		})
		row = map[string]any{}
	}
	if err := iter.Close(); err != nil {
		return nil, wrap("devices", err)
	}
	return out, nil
}

// DeleteDevice removes user's device with token, and the token's owner row
// if user still owns it.
func (b *Backend) DeleteDevice(ctx context.Context, user chat.ID, token string) error {
	var t string
	err := b.q(ctx, `SELECT push_token FROM user_devices WHERE user_id = ? AND push_token = ?`, int64(user), token).Scan(&t)
	if errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("%w: device of user %d", chat.ErrNotFound, user)
	}
	if err != nil {
		return wrap("delete device", err)
	}
	if err := b.q(ctx, `DELETE FROM user_devices WHERE user_id = ? AND push_token = ?`, int64(user), token).Exec(); err != nil {
		return wrap("delete device", err)
	}
	var owner int64
	err = b.q(ctx, `SELECT user_id FROM devices WHERE push_token = ?`, token).Scan(&owner)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return nil
	case err != nil:
		return wrap("delete device", err)
	case owner == int64(user):
		if err := b.q(ctx, `DELETE FROM devices WHERE push_token = ?`, token).Exec(); err != nil {
			return wrap("delete device", err)
		}
	}
	return nil
}

// SetMuted writes the mute (false to unmute: no tombstone) after checking
// that user is a member.
func (b *Backend) SetMuted(ctx context.Context, conversation string, user chat.ID, muted bool) error {
	var u int64
	err := b.q(ctx, `SELECT user_id FROM conversation_members WHERE conversation_id = ? AND user_id = ?`, conversation, int64(user)).Scan(&u)
	if errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("%w: user %d in conversation %s", chat.ErrNotFound, user, conversation)
	}
	if err != nil {
		return wrap("mute", err)
	}
	if err := b.q(ctx, `INSERT INTO conversation_mutes (conversation_id, user_id, muted) VALUES (?, ?, ?)`, conversation, int64(user), muted).Exec(); err != nil {
		return wrap("mute", err)
	}
	return nil
}

// MemberStates reads the conversation's member rows (read marks) and its
// mutes: two single-partition queries, run together.
func (b *Backend) MemberStates(ctx context.Context, conversation string) ([]chat.MemberState, error) {
	var out []chat.MemberState
	muted := map[int64]bool{}
	err := b.each(ctx, 2, func(ctx context.Context, i int) error {
		if i == 0 {
			iter := b.q(ctx, `SELECT user_id, last_read_id FROM conversation_members WHERE conversation_id = ?`, conversation).Iter()
			var u, mark int64
			for iter.Scan(&u, &mark) {
				out = append(out, chat.MemberState{User: chat.ID(u), LastRead: chat.ID(mark)})
				mark = 0
			}
			return iter.Close()
		}
		iter := b.q(ctx, `SELECT user_id, muted FROM conversation_mutes WHERE conversation_id = ?`, conversation).Iter()
		var u int64
		var m bool
		for iter.Scan(&u, &m) {
			muted[u] = m
		}
		return iter.Close()
	})
	if err != nil {
		return nil, wrap("member states", err)
	}
	if len(out) == 0 {
		// Every conversation has members: none means no conversation.
		return nil, fmt.Errorf("%w: conversation %q", chat.ErrNotFound, conversation)
	}
	for i := range out {
		out[i].Muted = muted[int64(out[i].User)]
	}
	return out, nil
}
