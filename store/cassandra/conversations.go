package cassandra

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gocql/gocql"

	"github.com/chatcluster/chat/store"
)

// memberBatch bounds the rows of one conversation_members batch (one
// partition, so the batch is applied as a single mutation).
const memberBatch = 200

// CreateConversation creates the conversations row, members included, with
// a lightweight transaction: of several concurrent callers exactly one wins,
// and every loser gets the winner's row (members too) from the transaction's
// answer without another read. The winner then writes the membership rows.
// A replay of the winning call (same creator and creation time) re-checks
// every membership row, which completes a call that died half-way.
func (b *Backend) CreateConversation(ctx context.Context, c store.Conversation) (store.Conversation, bool, error) {
	if c.ID == "" || (c.Kind != store.Direct && c.Kind != store.Group) || len(c.Members) == 0 {
		return store.Conversation{}, false, fmt.Errorf("%w: conversation %q kind %q with %d members", store.ErrInvalid, c.ID, c.Kind, len(c.Members))
	}
	members := slices.Clone(c.Members)
	slices.Sort(members)
	members = slices.Compact(members)
	for _, m := range members {
		if !validID(m) {
			return store.Conversation{}, false, fmt.Errorf("%w: member id %d", store.ErrInvalid, m)
		}
	}
	c.Members = members
	c.CreatedAt = c.CreatedAt.UTC()

	prev := map[string]any{}
	applied, err := b.q(ctx, `INSERT INTO conversations (conversation_id, kind, title, created_by, created_at, members)
		VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
		c.ID, string(c.Kind), unsetIfEmpty(c.Title), int64(c.CreatedBy), c.CreatedAt, toInt64s(members)).MapScanCAS(prev)
	if err != nil {
		return store.Conversation{}, false, wrap("create conversation", err)
	}
	if applied {
		if err := b.writeNewMembers(ctx, c.ID, members, c.CreatedAt); err != nil {
			return store.Conversation{}, false, wrap("create conversation", err)
		}
		return c, true, nil
	}
	existing := convFromRow(c.ID, prev)
	if existing.CreatedBy == c.CreatedBy && existing.CreatedAt.Equal(c.CreatedAt) && existing.Kind == c.Kind {
		if _, err := b.claimMembers(ctx, c.ID, existing.Members, existing.CreatedAt); err != nil {
			return store.Conversation{}, false, wrap("create conversation", err)
		}
	}
	return existing, false, nil
}

// writeNewMembers writes the membership rows of a conversation this call
// just created: nobody else can have written them, so plain inserts do.
func (b *Backend) writeNewMembers(ctx context.Context, conv string, members []store.ID, joined time.Time) error {
	chunks := (len(members) + memberBatch - 1) / memberBatch
	return b.each(ctx, chunks+len(members), func(ctx context.Context, i int) error {
		if i < chunks {
			batch := b.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
			for _, m := range members[i*memberBatch : min((i+1)*memberBatch, len(members))] {
				batch.Entries = append(batch.Entries, gocql.BatchEntry{
					Stmt:       `INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)`,
					Args:       []any{conv, int64(m), joined},
					Idempotent: true,
				})
			}
			return b.s.ExecuteBatch(batch)
		}
		m := members[i-chunks]
		return b.q(ctx, `INSERT INTO user_conversations (user_id, conversation_id, joined_at) VALUES (?, ?, ?)`,
			int64(m), conv, joined).Exec()
	})
}

// claimMembers makes users members of conv joined at at, unless they are
// already: each membership row is claimed with INSERT ... IF NOT EXISTS, so
// concurrent callers agree on who was new and a member keeps their first
// join time. The user's list row is (re)written with the join time that won
// either way, so an earlier call that died half-way is completed. It
// returns which users were new.
func (b *Backend) claimMembers(ctx context.Context, conv string, users []store.ID, at time.Time) ([]bool, error) {
	added := make([]bool, len(users))
	err := b.each(ctx, len(users), func(ctx context.Context, i int) error {
		prev := map[string]any{}
		applied, err := b.q(ctx, `INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES (?, ?, ?) IF NOT EXISTS`,
			conv, int64(users[i]), at).MapScanCAS(prev)
		if err != nil {
			return err
		}
		joined := at
		if !applied {
			if t := toTime(prev["joined_at"]); !t.IsZero() {
				joined = t
			}
		}
		added[i] = applied
		return b.q(ctx, `INSERT INTO user_conversations (user_id, conversation_id, joined_at) VALUES (?, ?, ?)`,
			int64(users[i]), conv, joined).Exec()
	})
	return added, err
}

// AddMembers claims a membership row for each user not yet in the
// conversation's member set, then adds them to the set (a set addition
// merges with concurrent ones and writes no tombstone).
func (b *Backend) AddMembers(ctx context.Context, conversation string, users []store.ID, at time.Time) (store.Conversation, []store.ID, error) {
	c, err := b.Conversation(ctx, conversation)
	if err != nil {
		return store.Conversation{}, nil, err
	}
	var cand []store.ID
	for _, u := range users {
		if !validID(u) {
			return store.Conversation{}, nil, fmt.Errorf("%w: member id %d", store.ErrInvalid, u)
		}
		if _, in := slices.BinarySearch(c.Members, u); !in && !slices.Contains(cand, u) {
			cand = append(cand, u)
		}
	}
	if len(cand) == 0 {
		return c, nil, nil
	}
	added, err := b.claimMembers(ctx, conversation, cand, at.UTC())
	if err != nil {
		return store.Conversation{}, nil, wrap("add members", err)
	}
	if err := b.q(ctx, `UPDATE conversations SET members = members + ? WHERE conversation_id = ?`,
		toInt64s(cand), conversation).Exec(); err != nil {
		return store.Conversation{}, nil, wrap("add members", err)
	}
	var newIDs []store.ID
	for i, ok := range added {
		if ok {
			newIDs = append(newIDs, cand[i])
		}
	}
	c, err = b.Conversation(ctx, conversation)
	if err != nil {
		return store.Conversation{}, nil, err
	}
	return c, newIDs, nil
}

// Conversation is one read of the conversations row.
func (b *Backend) Conversation(ctx context.Context, id string) (store.Conversation, error) {
	row := map[string]any{}
	err := b.q(ctx, `SELECT kind, title, created_by, created_at, members FROM conversations WHERE conversation_id = ?`, id).MapScan(row)
	if errors.Is(err, gocql.ErrNotFound) {
		return store.Conversation{}, fmt.Errorf("%w: conversation %q", store.ErrNotFound, id)
	}
	if err != nil {
		return store.Conversation{}, wrap("conversation", err)
	}
	c := convFromRow(id, row)
	if c.Kind == "" {
		// Cells without the row written by CreateConversation (a
		// membership change racing a failed create): not a conversation.
		return store.Conversation{}, fmt.Errorf("%w: conversation %q", store.ErrNotFound, id)
	}
	return c, nil
}

func convFromRow(id string, row map[string]any) store.Conversation {
	c := store.Conversation{
		ID:        id,
		Kind:      store.Kind(toString(row["kind"])),
		Title:     toString(row["title"]),
		CreatedBy: store.ID(toInt64(row["created_by"])),
		CreatedAt: toTime(row["created_at"]),
	}
	ms, _ := row["members"].([]int64)
	for _, m := range ms {
		c.Members = append(c.Members, store.ID(m))
	}
	slices.Sort(c.Members)
	return c
}

func toInt64s(ids []store.ID) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// listEntry is one of a user's conversations while the list is built.
type listEntry struct {
	conv     string
	joined   time.Time
	lastRead int64
	lastID   int64 // the conversation's newest message ID, 0 when none
	sortKey  time.Time
	sum      store.Summary
	ok       bool // the conversation row exists
}

// Conversations reads the user's partition of user_conversations (join times
// and read marks), then every one of those conversations' last message ID
// (tiny single-row partitions, read concurrently), orders them by activity,
// and only for the first limit reads the conversation row, the last message
// and the unread count. Cost: one slice plus one point read per
// conversation of the user, plus about three reads per listed one.
func (b *Backend) Conversations(ctx context.Context, user store.ID, limit int) ([]store.Summary, error) {
	if limit < 1 || !validID(user) {
		return nil, nil
	}
	var entries []*listEntry
	iter := b.q(ctx, `SELECT conversation_id, joined_at, last_read_id FROM user_conversations WHERE user_id = ?`, int64(user)).
		PageSize(1000).Iter()
	var (
		conv     string
		joined   time.Time
		lastRead int64
	)
	for iter.Scan(&conv, &joined, &lastRead) {
		entries = append(entries, &listEntry{conv: conv, joined: joined.UTC(), lastRead: lastRead})
	}
	if err := iter.Close(); err != nil {
		return nil, wrap("conversations", err)
	}
	err := b.each(ctx, len(entries), func(ctx context.Context, i int) error {
		e := entries[i]
		err := b.q(ctx, `SELECT message_id FROM conversation_last_message WHERE conversation_id = ?`, e.conv).Scan(&e.lastID)
		if err != nil && !errors.Is(err, gocql.ErrNotFound) {
			return err
		}
		e.sortKey = e.joined
		if e.lastID > 0 {
			e.sortKey = store.ID(e.lastID).Time()
		}
		return nil
	})
	if err != nil {
		return nil, wrap("conversations", err)
	}
	byActivity := func(a, b *listEntry) int {
		if c := b.sortKey.Compare(a.sortKey); c != 0 {
			return c
		}
		return cmp.Compare(a.conv, b.conv)
	}
	slices.SortFunc(entries, byActivity)
	// Summarize the first limit; should some rows point at a conversation
	// that is not there (a create that failed after its membership rows),
	// take the next ones.
	var out []store.Summary
	for start := 0; start < len(entries) && len(out) < limit; {
		chunk := entries[start:min(len(entries), start+limit-len(out))]
		start += len(chunk)
		err = b.each(ctx, len(chunk), func(ctx context.Context, i int) error {
			return b.summarize(ctx, user, chunk[i])
		})
		if err != nil {
			return nil, wrap("conversations", err)
		}
		for _, e := range chunk {
			if e.ok {
				out = append(out, e.sum)
			}
		}
	}
	// Activity is the last message's SentAt, which may differ a little from
	// its ID's time that the list was ordered by.
	slices.SortStableFunc(out, func(a, b store.Summary) int { return b.Activity.Compare(a.Activity) })
	return out, nil
}

// summarize fills e.sum: the conversation, its last message, the unread
// count and the activity.
func (b *Backend) summarize(ctx context.Context, user store.ID, e *listEntry) error {
	c, err := b.Conversation(ctx, e.conv)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e.sum = store.Summary{Conversation: c, LastRead: store.ID(e.lastRead), Activity: e.joined}
	e.ok = true
	if e.lastID <= 0 {
		return nil
	}
	m, err := b.message(ctx, e.conv, store.ID(e.lastID))
	if err != nil {
		return err
	}
	if m != nil {
		e.sum.LastMessage = m
		e.sum.Activity = m.SentAt
	}
	if e.lastID > e.lastRead {
		n, err := b.unread(ctx, e.conv, user, store.ID(e.lastRead))
		if err != nil {
			return err
		}
		e.sum.Unread = n
	}
	return nil
}

// maxUnreadScan bounds the rows read to count unread messages: the user's
// own messages are read but not counted, so a user who wrote very many
// since their read mark gets a count that may stop short.
const maxUnreadScan = 20 * store.UnreadCap

// unread counts messages from others after mark, up to store.UnreadCap,
// walking the non-empty buckets from the newest down to the mark's.
func (b *Backend) unread(ctx context.Context, conv string, user store.ID, mark store.ID) (int, error) {
	low := 0
	if mark > 0 {
		low = b.bucket(mark)
	}
	var buckets []int
	iter := b.q(ctx, `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket >= ?`, conv, low).PageSize(1000).Iter()
	var bk int
	for iter.Scan(&bk) {
		buckets = append(buckets, bk)
	}
	if err := iter.Close(); err != nil {
		return 0, err
	}
	count, scanned := 0, 0
	for _, bk := range buckets {
		iter := b.q(ctx, `SELECT sender_id FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id > ?`,
			conv, bk, int64(mark)).PageSize(store.UnreadCap).Iter()
		var sender int64
		for iter.Scan(&sender) {
			scanned++
			if store.ID(sender) != user {
				count++
			}
			if count >= store.UnreadCap || scanned >= maxUnreadScan {
				break
			}
		}
		if err := iter.Close(); err != nil {
			return 0, err
		}
		if count >= store.UnreadCap || scanned >= maxUnreadScan {
			break
		}
	}
	return count, nil
}

// MarkRead reads the user's mark (which also checks membership) and, when
// msg is ahead of it, writes msg USING TIMESTAMP msg into both copies of the
// mark: last-write-wins then keeps the largest mark whatever the order of
// concurrent calls, so a mark never moves back, without a transaction.
func (b *Backend) MarkRead(ctx context.Context, conversation string, user store.ID, msg store.ID) (store.ID, bool, error) {
	if !validID(user) || msg > store.ID(1<<63-1) {
		return 0, false, fmt.Errorf("%w: mark %d for user %d", store.ErrInvalid, msg, user)
	}
	var cur int64
	err := b.q(ctx, `SELECT last_read_id FROM user_conversations WHERE user_id = ? AND conversation_id = ?`,
		int64(user), conversation).Scan(&cur)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, false, fmt.Errorf("%w: user %d in conversation %q", store.ErrNotFound, user, conversation)
	}
	if err != nil {
		return 0, false, wrap("mark read", err)
	}
	if int64(msg) <= cur {
		return store.ID(cur), false, nil
	}
	ts := int64(msg)
	err = b.each(ctx, 2, func(ctx context.Context, i int) error {
		if i == 0 {
			return b.q(ctx, `UPDATE user_conversations USING TIMESTAMP ? SET last_read_id = ? WHERE user_id = ? AND conversation_id = ?`,
				ts, int64(msg), int64(user), conversation).Exec()
		}
		return b.q(ctx, `UPDATE conversation_members USING TIMESTAMP ? SET last_read_id = ? WHERE conversation_id = ? AND user_id = ?`,
			ts, int64(msg), conversation, int64(user)).Exec()
	})
	if err != nil {
		return 0, false, wrap("mark read", err)
	}
	return msg, true, nil
}
