package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// Write timestamps of changes. A message's insert is written with a
// first-wins timestamp below firstWinsBase, so that a redelivered insert
// never overwrites the first; an edit must beat that whatever order the
// store sees them in, and a newer edit must beat an older one. So an edit's
// cells are written USING TIMESTAMP firstWinsBase + change ID: above every
// insert, and growing with the change ID (IDs are time-ordered and unique
// per conversation). A deletion's cells use deleteTimestamp, above every
// edit's, so neither an older nor a racing newer edit can bring a deleted
// body back. Change IDs stay below 2^62 - 2 until 2059 (41 bits of
// milliseconds since 2025 shifted by 22); a later ID is refused rather than
// overflowing.
const (
	deleteTimestamp = math.MaxInt64 - 1
	maxChangeID     = chat.ID(deleteTimestamp - firstWinsBase - 1)
)

func changeTimestamp(id chat.ID) int64 { return firstWinsBase + int64(id) }

// maxReactionRows bounds the rows one message's reactions are counted from:
// members times chat.MaxReactionEmojis for the largest group.
const maxReactionRows = chat.MaxGroupMembers * chat.MaxReactionEmojis

func validChange(c *chat.Change) error {
	switch {
	case c.Conversation == "" || c.ID == 0 || c.ID > maxChangeID || !validID(c.MessageID) || c.User > math.MaxInt64:
		return fmt.Errorf("%w: change %d of message %d in %q", chat.ErrInvalid, c.ID, c.MessageID, c.Conversation)
	case !c.Kind.IsChange():
		return fmt.Errorf("%w: change kind %q", chat.ErrInvalid, c.Kind)
	case c.Kind == chat.EventEdit && !chat.ValidBody(c.Body):
		return fmt.Errorf("%w: edit %d with an invalid body", chat.ErrInvalid, c.ID)
	case c.Kind == chat.EventReact && !chat.ValidEmoji(c.Emoji):
		return fmt.Errorf("%w: reaction %d with an invalid emoji", chat.ErrInvalid, c.ID)
	}
	return nil
}

// ApplyChanges writes each change's effect on its message row (and
// reaction row) and its entry in the change log, concurrently, bounded by
// MaxInFlight. Every write is an upsert with a chosen timestamp, so order
// and replays do not matter.
func (b *Backend) ApplyChanges(ctx context.Context, changes []chat.Change) error {
	for i := range changes {
		if err := validChange(&changes[i]); err != nil {
			return err
		}
	}
	err := b.each(ctx, len(changes), func(ctx context.Context, i int) error {
		return b.applyChange(ctx, &changes[i])
	})
	return wrap("apply changes", err)
}

func (b *Backend) applyChange(ctx context.Context, c *chat.Change) error {
	ck := bucketKey{c.Conversation, b.bucket(c.ID)}
	// The bucket before the entry, as for messages: an empty recorded
	// bucket costs a skip, an unrecorded one would hide the change.
	if !b.changeBuckets.has(ck) {
		if err := b.q(ctx, `INSERT INTO change_buckets (conversation_id, bucket) VALUES (?, ?)`, ck.conv, ck.bucket).Exec(); err != nil {
			return err
		}
		b.changeBuckets.add(ck)
	}
	emoji, active := any(gocql.UnsetValue), any(gocql.UnsetValue)
	if c.Kind == chat.EventReact {
		emoji, active = c.Emoji, c.On
	}
	if err := b.q(ctx, `INSERT INTO message_changes (conversation_id, bucket, change_id, message_id, kind, user_id, at, emoji, active)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Conversation, ck.bucket, int64(c.ID), int64(c.MessageID), string(c.Kind), int64(c.User), c.At, emoji, active).Exec(); err != nil {
		return err
	}
	// The message's bucket is claimed as its save would: a change may be
	// applied before the message is stored, into the row it will fill.
	mb, err := b.msgBucket(ctx, c.Conversation, c.MessageID, true)
	if err != nil {
		return err
	}
	conv, mid := c.Conversation, int64(c.MessageID)
	switch c.Kind {
	case chat.EventEdit:
		return b.q(ctx, `UPDATE messages USING TIMESTAMP ? SET body = ?, edited_at = ?, version = ?
			WHERE conversation_id = ? AND bucket = ? AND message_id = ?`,
			changeTimestamp(c.ID), c.Body, c.At, int64(c.ID), conv, mb, mid).Exec()
	case chat.EventDelete:
		// The body is overwritten, not deleted: no tombstone in the
		// partition history pages scan.
		if err := b.q(ctx, `UPDATE messages USING TIMESTAMP ? SET body = '', deleted = true, version = ?
			WHERE conversation_id = ? AND bucket = ? AND message_id = ?`,
			deleteTimestamp, int64(c.ID), conv, mb, mid).Exec(); err != nil {
			return err
		}
		return b.forgetLastBody(ctx, conv, c.MessageID)
	default: // react
		if err := b.q(ctx, `UPDATE message_reactions USING TIMESTAMP ? SET active = ?
			WHERE conversation_id = ? AND message_id = ? AND emoji = ? AND user_id = ?`,
			changeTimestamp(c.ID), c.On, conv, mid, c.Emoji, int64(c.User)).Exec(); err != nil {
			return err
		}
		return b.q(ctx, `UPDATE messages USING TIMESTAMP ? SET reacted = true, version = ?
			WHERE conversation_id = ? AND bucket = ? AND message_id = ?`,
			changeTimestamp(c.ID), int64(c.ID), conv, mb, mid).Exec()
	}
}

// forgetLastBody blanks the conversation list's copy of a deleted message's
// body when it is the conversation's last message. The last_* cells are
// written USING TIMESTAMP <message ID>; the blank is written at ID+1, so it
// beats the deleted message's own write, while any newer message (ID+1 or
// more) still wins: on a tie at ID+1, Cassandra keeps the larger value, and
// every real body is larger than "".
func (b *Backend) forgetLastBody(ctx context.Context, conv string, id chat.ID) error {
	var last int64
	err := b.q(ctx, `SELECT last_message_id FROM conversations WHERE conversation_id = ?`, conv).Scan(&last)
	if err == gocql.ErrNotFound || err == nil && chat.ID(last) != id {
		return nil
	}
	if err != nil {
		return err
	}
	return b.q(ctx, `UPDATE conversations USING TIMESTAMP ? SET last_body = '' WHERE conversation_id = ?`,
		int64(id)+1, conv).Exec()
}

// dress completes messages read from rows: reactions (for viewer) of those
// that may have some, and the quote of replies. One query per such message,
// concurrently.
func (b *Backend) dress(ctx context.Context, conv string, msgs []chat.Message, viewer chat.ID) error {
	return b.each(ctx, len(msgs), func(ctx context.Context, i int) error {
		m := &msgs[i]
		if m.Reactions != nil {
			rs, err := b.reactions(ctx, conv, m.ID, viewer)
			if err != nil {
				return err
			}
			m.Reactions = rs
		}
		if m.ReplyTo != 0 && validID(m.ReplyTo) {
			orig, ok, err := b.row(ctx, conv, m.ReplyTo)
			if err != nil {
				return err
			}
			if ok {
				m.Reply = chat.QuoteOf(orig)
			}
		}
		return nil
	})
}

// reactions counts one message's active reactions by emoji (in emoji
// order), marking viewer's; nil when there are none.
func (b *Backend) reactions(ctx context.Context, conv string, msg, viewer chat.ID) ([]chat.Reaction, error) {
	iter := b.q(ctx, `SELECT emoji, user_id, active FROM message_reactions WHERE conversation_id = ? AND message_id = ? LIMIT ?`,
		conv, int64(msg), maxReactionRows).PageSize(1000).Iter()
	var (
		out    []chat.Reaction
		emoji  string
		user   int64
		active bool
	)
	for iter.Scan(&emoji, &user, &active) {
		if !active {
			continue
		}
		if n := len(out); n == 0 || out[n-1].Emoji != emoji {
			out = append(out, chat.Reaction{Emoji: emoji})
		}
		r := &out[len(out)-1]
		r.Count++
		r.Me = r.Me || viewer != 0 && chat.ID(user) == viewer
	}
	return out, iter.Close()
}

// row reads one message row, undressed; ok is false when it is not stored.
func (b *Backend) row(ctx context.Context, conv string, id chat.ID) (chat.Message, bool, error) {
	bk, err := b.msgBucket(ctx, conv, id, false)
	if err != nil {
		return chat.Message{}, false, err
	}
	iter := b.q(ctx, `SELECT `+messageColumns+` FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id = ?`,
		conv, bk, int64(id)).Iter()
	got := scanMessages(iter, conv, nil, 1)
	if err := iter.Close(); err != nil {
		return chat.Message{}, false, err
	}
	if len(got) == 0 {
		return chat.Message{}, false, nil
	}
	return got[0], true, nil
}

// Message reads one message and dresses it for viewer.
func (b *Backend) Message(ctx context.Context, conversation string, id, viewer chat.ID) (chat.Message, error) {
	if conversation == "" || !validID(id) {
		return chat.Message{}, fmt.Errorf("%w: message %d in %q", chat.ErrNotFound, id, conversation)
	}
	m, ok, err := b.row(ctx, conversation, id)
	if err != nil {
		return chat.Message{}, wrap("message", err)
	}
	if !ok {
		return chat.Message{}, fmt.Errorf("%w: message %d in %s", chat.ErrNotFound, id, conversation)
	}
	ms := []chat.Message{m}
	if err := b.dress(ctx, conversation, ms, viewer); err != nil {
		return chat.Message{}, wrap("message", err)
	}
	return ms[0], nil
}

// Changes walks the conversation's change buckets from the cursor's,
// oldest first, reading from each partition only as many entries as the
// page still needs (plus one, to learn whether more exist); then it keeps
// each message's newest change and reads those messages, concurrently.
func (b *Backend) Changes(ctx context.Context, conversation string, p chat.Page) ([]chat.Change, bool, error) {
	if p.Limit < 1 || p.Before != 0 {
		return nil, false, fmt.Errorf("%w: changes page %+v", chat.ErrInvalid, p)
	}
	if p.After >= math.MaxInt64 {
		return nil, false, nil
	}
	want := min(p.Limit, maxPage) + 1
	buckets := b.q(ctx, `SELECT bucket FROM change_buckets WHERE conversation_id = ? AND bucket >= ?`,
		conversation, b.bucket(p.After)).PageSize(100).Iter()
	var (
		page []chat.Change
		bk   int
	)
	for len(page) < want && buckets.Scan(&bk) {
		iter := b.q(ctx, `SELECT change_id, message_id, kind, user_id, at, emoji, active FROM message_changes
			WHERE conversation_id = ? AND bucket = ? AND change_id > ? LIMIT ?`,
			conversation, bk, int64(p.After), want-len(page)).PageSize(min(want, 1000)).Iter()
		var (
			id, msg, user int64
			kind, emoji   string
			c             chat.Change
			active        bool
		)
		for len(page) < want && iter.Scan(&id, &msg, &kind, &user, &c.At, &emoji, &active) {
			page = append(page, chat.Change{ID: chat.ID(id), Conversation: conversation, Kind: chat.EventKind(kind),
				MessageID: chat.ID(msg), User: chat.ID(user), At: c.At.UTC(), Emoji: emoji, On: active})
		}
		if err := iter.Close(); err != nil {
			_ = buckets.Close()
			return nil, false, wrap("changes", err)
		}
	}
	if err := buckets.Close(); err != nil {
		return nil, false, wrap("changes", err)
	}
	more := len(page) > p.Limit
	if more {
		page = page[:p.Limit]
	}
	out := newestPerMessage(page)
	err := b.each(ctx, len(out), func(ctx context.Context, i int) error {
		m, err := b.Message(ctx, conversation, out[i].MessageID, p.Viewer)
		if err == nil {
			out[i].Message = &m
		} else if !errors.Is(err, chat.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, false, wrap("changes", err)
	}
	return out, more, nil
}

// newestPerMessage keeps, in change order, each message's newest change of
// page.
func newestPerMessage(page []chat.Change) []chat.Change {
	newest := make(map[chat.ID]chat.ID, len(page))
	for _, c := range page {
		newest[c.MessageID] = c.ID
	}
	out := make([]chat.Change, 0, len(newest))
	for _, c := range page {
		if newest[c.MessageID] == c.ID {
			out = append(out, c)
		}
	}
	return out
}
