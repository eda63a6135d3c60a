package cassandra

import (
	"context"
	"errors"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// Unread counts by message numbers (issue 12, schema/migrations/0009): the
// gateway numbers each conversation's messages 1, 2, 3, ... (chat.Number);
// the store keeps the last message's number on the conversation row and
// the number at each read mark, so that
//
//	unread = last_n - read_n - (the reader's own messages after the mark)
//
// The writes are plain idempotent columns and rows: nothing on the write
// path reads, and a redelivered message writes what it wrote before. The
// own messages are a slice of own_messages, usually empty (a reader who
// writes has mostly read), bounded by maxUnreadScan.

// numberAt returns the number of the newest stored message at or before
// mark (the zero Number when it has none, or when there is no such
// message). It reads mark's bucket first, then older non-empty buckets.
func (b *Backend) numberAt(ctx context.Context, conv string, mark chat.ID) (chat.Number, error) {
	if mark == 0 {
		return chat.Number{}, nil
	}
	top, err := b.msgBucket(ctx, conv, mark, false)
	if err != nil {
		return chat.Number{}, err
	}
	at := func(bk int) (chat.Number, bool, error) {
		// A row without a sender holds only changes: skip it.
		iter := b.q(ctx, `SELECT sender_id, n, n_base FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id <= ?`,
			conv, bk, int64(mark)).PageSize(100).Iter()
		var sender, n, base int64
		for iter.Scan(&sender, &n, &base) {
			if sender != 0 {
				_ = iter.Close()
				return rowNumber(n, base), true, nil
			}
		}
		return chat.Number{}, false, iter.Close()
	}
	num, found, err := at(top)
	if err != nil || found {
		return num, err
	}
	iter := b.q(ctx, `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket < ?`, conv, top).PageSize(10).Iter()
	var bk int
	for iter.Scan(&bk) {
		if num, found, err = at(bk); err != nil || found {
			_ = iter.Close()
			return num, err
		}
	}
	return chat.Number{}, iter.Close()
}

// ownAfter counts user's numbered messages in (from, last], at most
// maxUnreadScan, walking the non-empty buckets from last's down to from's.
func (b *Backend) ownAfter(ctx context.Context, conv string, user, from, last chat.ID) (int, error) {
	top, err := b.msgBucket(ctx, conv, last, false)
	if err != nil {
		return 0, err
	}
	low := 0
	if from > 0 {
		if low, err = b.msgBucket(ctx, conv, from, false); err != nil {
			return 0, err
		}
	}
	count := 0
	countBucket := func(bk int) error {
		iter := b.q(ctx, `SELECT message_id FROM own_messages WHERE conversation_id = ? AND bucket = ? AND sender_id = ? AND message_id > ? AND message_id <= ?`,
			conv, bk, int64(user), int64(from), int64(last)).PageSize(chat.UnreadCap).Iter()
		var id int64
		for count < maxUnreadScan && iter.Scan(&id) {
			count++
		}
		return iter.Close()
	}
	if err := countBucket(top); err != nil || low >= top {
		return count, err
	}
	iter := b.q(ctx, `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket >= ? AND bucket < ?`,
		conv, low, top).PageSize(1000).Iter()
	var buckets []int
	var bk int
	for iter.Scan(&bk) {
		buckets = append(buckets, bk)
	}
	if err := iter.Close(); err != nil {
		return 0, err
	}
	for _, bk := range buckets {
		if err := countBucket(bk); err != nil || count >= maxUnreadScan {
			return count, err
		}
	}
	return count, nil
}

// unread counts e's unread messages (capped at chat.UnreadCap) for user,
// whose last message is past the mark.
//
//   - The mark in the last message's run: last_n - read_n - own after the
//     mark.
//   - The mark before the run began (including no mark, and a mark whose
//     number the store did not know): the run's messages from others,
//     last_n - own in the run, plus the others' messages between the mark
//     and the run, counted by reading them (none, usually: a run starts
//     where the conversation's stream began or resumed after it lay quiet).
//   - No number on the last message (published before numbering): the
//     messages after the mark, read and counted.
func (b *Backend) unread(ctx context.Context, e *listEntry, user chat.ID) (int, error) {
	mark, last := chat.ID(e.lastRead), e.sum.LastMessage.ID
	run := e.lastNum
	switch {
	case !run.Numbered():
		n, _, err := b.after(ctx, e.conv, user, mark, last)
		return min(n, chat.UnreadCap), err
	case e.readNum.Numbered() && e.readNum.Base == run.Base && mark >= run.Base:
		own, err := b.ownAfter(ctx, e.conv, user, mark, last)
		return capUnread(int64(run.N) - int64(e.readNum.N) - int64(own)), err
	case mark < run.Base:
		before := 0
		if mark < run.Base-1 {
			var err error
			if before, _, err = b.after(ctx, e.conv, user, mark, run.Base-1); err != nil {
				return 0, err
			}
		}
		own, err := b.ownAfter(ctx, e.conv, user, run.Base-1, last)
		return capUnread(int64(before) + int64(run.N) - int64(own)), err
	default:
		// A mark inside the run whose number is not known (set before
		// numbering, or on a message not stored yet): counted by reading.
		n, _, err := b.after(ctx, e.conv, user, mark, last)
		return min(n, chat.UnreadCap), err
	}
}

func capUnread(n int64) int { return int(max(0, min(n, chat.UnreadCap))) }

// markNumber is the read_n and read_n_base to write with a new mark: the
// number at the mark, or nulls when it is not known.
func (b *Backend) markNumber(ctx context.Context, conv string, mark chat.ID) (n, base any, err error) {
	num, err := b.numberAt(ctx, conv, mark)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return nil, nil, err
	}
	if !num.Numbered() {
		return nil, nil, nil
	}
	return int64(num.N), int64(num.Base), nil
}

// rowNumber is the Number of an n and n_base pair of columns (bigint,
// null as 0): the zero Number unless both are set.
func rowNumber(n, base any) chat.Number {
	num := chat.Number{N: uint64(max(toInt64(n), 0)), Base: chat.ID(max(toInt64(base), 0))}
	if !num.Numbered() {
		return chat.Number{}
	}
	return num
}
