package cassandra

import (
	"context"
	"errors"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// Unread counts in O(1) (issue 11, schema/migrations/0005): counters of
// stored messages per conversation and of own messages per user and
// conversation, and both as they were at the user's read mark.
//
//	unread = messages - read_pos - (sent - own_at_read)

// unstored returns the messages of one partition's batch whose IDs are not
// stored yet: only those move the counters (a redelivered message must not
// count twice). One read of the partition per batch.
func (b *Backend) unstored(ctx context.Context, k bucketKey, msgs []chat.Message) ([]chat.Message, error) {
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		ids[i] = int64(m.ID)
	}
	iter := b.q(ctx, `SELECT message_id FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id IN ?`,
		k.conv, k.bucket, ids).Iter()
	have := map[int64]bool{}
	var id int64
	for iter.Scan(&id) {
		have[id] = true
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	out := make([]chat.Message, 0, len(msgs))
	for _, m := range msgs {
		if !have[int64(m.ID)] {
			out = append(out, m)
		}
	}
	return out, nil
}

// count adds newly stored messages of conv to the counters. Counter
// updates are not idempotent, so the driver must not retry them.
func (b *Backend) count(ctx context.Context, conv string, fresh []chat.Message) error {
	if len(fresh) == 0 {
		return nil
	}
	sent := map[chat.ID]int64{}
	for _, m := range fresh {
		sent[m.Sender]++
	}
	if err := b.q(ctx, `UPDATE conversation_counts SET messages = messages + ? WHERE conversation_id = ?`,
		int64(len(fresh)), conv).Idempotent(false).Exec(); err != nil {
		return err
	}
	for u, n := range sent {
		if err := b.q(ctx, `UPDATE user_conversation_counts SET sent = sent + ? WHERE user_id = ? AND conversation_id = ?`,
			n, int64(u), conv).Idempotent(false).Exec(); err != nil {
			return err
		}
	}
	return nil
}

// counters reads conv's message count and user's own count in it.
func (b *Backend) counters(ctx context.Context, conv string, user chat.ID) (messages, sent int64, err error) {
	err = b.q(ctx, `SELECT messages FROM conversation_counts WHERE conversation_id = ?`, conv).Scan(&messages)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, 0, err
	}
	err = b.q(ctx, `SELECT sent FROM user_conversation_counts WHERE user_id = ? AND conversation_id = ?`, int64(user), conv).Scan(&sent)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, 0, err
	}
	return messages, sent, nil
}

// rebase computes read_pos and own_at_read for a new mark: the counters
// now, less the messages after the mark (counted newest first, at most
// chat.UnreadCap of others': beyond, the count is capped anyway).
func (b *Backend) rebase(ctx context.Context, conv string, user, mark chat.ID) (readPos, ownAtRead int64, err error) {
	messages, sent, err := b.counters(ctx, conv, user)
	if err != nil {
		return 0, 0, err
	}
	var last int64
	err = b.q(ctx, `SELECT last_message_id FROM conversations WHERE conversation_id = ?`, conv).Scan(&last)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, 0, err
	}
	others, own := 0, 0
	if chat.ID(last) > mark {
		if others, own, err = b.after(ctx, conv, user, mark, chat.ID(last)); err != nil {
			return 0, 0, err
		}
	}
	return max(0, messages-int64(others+own)), max(0, sent-int64(own)), nil
}

// pageCounters reads the counters of a page of user's list: conversation
// counts (IN on 50 partitions at a time) and the user's own counts (one
// slice of the user's partition per 50).
func (b *Backend) pageCounters(ctx context.Context, user chat.ID, page []*listEntry) error {
	byConv := make(map[string]*listEntry, len(page))
	for _, e := range page {
		byConv[e.conv] = e
	}
	chunks := (len(page) + listChunk - 1) / listChunk
	return b.each(ctx, 2*chunks, func(ctx context.Context, i int) error {
		part := page[(i/2)*listChunk : min((i/2+1)*listChunk, len(page))]
		ids := make([]string, len(part))
		for k, e := range part {
			ids[k] = e.conv
		}
		var iter *gocql.Iter
		if i%2 == 0 {
			iter = b.q(ctx, `SELECT conversation_id, messages FROM conversation_counts WHERE conversation_id IN ?`, ids).Iter()
		} else {
			iter = b.q(ctx, `SELECT conversation_id, sent FROM user_conversation_counts WHERE user_id = ? AND conversation_id IN ?`, int64(user), ids).Iter()
		}
		var (
			conv string
			n    int64
		)
		for iter.Scan(&conv, &n) {
			if e := byConv[conv]; e != nil {
				if i%2 == 0 {
					e.messages = n
				} else {
					e.sent = n
				}
			}
		}
		return iter.Close()
	})
}

// unreadOf is e's unread count from its counters; ok is false for a read
// mark set before the counters existed (counted by a scan until the next).
func (e *listEntry) unreadOf() (int, bool) {
	if e.readPos == nil && e.lastRead != 0 {
		return 0, false
	}
	var readPos, ownAtRead int64
	if e.readPos != nil {
		readPos = *e.readPos
	}
	if e.ownAtRead != nil {
		ownAtRead = *e.ownAtRead
	}
	n := e.messages - readPos - (e.sent - ownAtRead)
	return int(max(0, min(n, chat.UnreadCap))), true
}
