package cassandra

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
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
func (b *Backend) CreateConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	if c.ID == "" || (c.Kind != chat.Direct && c.Kind != chat.Group) || len(c.Members) == 0 {
		return chat.Conversation{}, false, fmt.Errorf("%w: conversation %q kind %q with %d members", chat.ErrInvalid, c.ID, c.Kind, len(c.Members))
	}
	members := slices.Clone(c.Members)
	slices.Sort(members)
	members = slices.Compact(members)
	for _, m := range members {
		if !validID(m) {
			return chat.Conversation{}, false, fmt.Errorf("%w: member id %d", chat.ErrInvalid, m)
		}
	}
	c.Members = members
	c.CreatedAt = c.CreatedAt.UTC()

	prev := map[string]any{}
	applied, err := b.q(ctx, `INSERT INTO conversations (conversation_id, kind, title, created_by, created_at, members)
		VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
		c.ID, string(c.Kind), unsetIfEmpty(c.Title), int64(c.CreatedBy), c.CreatedAt, toInt64s(members)).MapScanCAS(prev)
	if err != nil {
		return chat.Conversation{}, false, wrap("create conversation", err)
	}
	if applied {
		if err := b.writeNewMembers(ctx, c.ID, members, c.CreatedAt); err != nil {
			return chat.Conversation{}, false, wrap("create conversation", err)
		}
		return c, true, nil
	}
	existing := convFromRow(c.ID, prev)
	if existing.Kind == "" {
		// The row exists only through last-message cells (messages saved
		// before the conversation was created): claim it on its kind.
		return b.claimGhost(ctx, c)
	}
	if existing.CreatedBy == c.CreatedBy && existing.CreatedAt.Equal(c.CreatedAt) && existing.Kind == c.Kind {
		if _, err := b.claimMembers(ctx, c.ID, existing.Members, existing.CreatedAt); err != nil {
			return chat.Conversation{}, false, wrap("create conversation", err)
		}
	}
	return existing, false, nil
}

// claimGhost creates conversation c in a row that holds only last-message
// cells, with a lightweight transaction on its kind being null.
func (b *Backend) claimGhost(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	prev := map[string]any{}
	applied, err := b.q(ctx, `UPDATE conversations SET kind = ?, title = ?, created_by = ?, created_at = ?, members = ?
		WHERE conversation_id = ? IF kind = null`,
		string(c.Kind), unsetIfEmpty(c.Title), int64(c.CreatedBy), c.CreatedAt, toInt64s(c.Members), c.ID).MapScanCAS(prev)
	if err != nil {
		return chat.Conversation{}, false, wrap("create conversation", err)
	}
	if !applied {
		// Another caller claimed it first.
		existing, err := b.Conversation(ctx, c.ID)
		return existing, false, err
	}
	if err := b.writeNewMembers(ctx, c.ID, c.Members, c.CreatedAt); err != nil {
		return chat.Conversation{}, false, wrap("create conversation", err)
	}
	return c, true, nil
}

// writeNewMembers writes the membership rows of a conversation this call
// just created: nobody else can have written them, so plain inserts do.
func (b *Backend) writeNewMembers(ctx context.Context, conv string, members []chat.ID, joined time.Time) error {
	chunks := (len(members) + memberBatch - 1) / memberBatch
	err := b.each(ctx, chunks+len(members), func(ctx context.Context, i int) error {
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
	if err != nil {
		return err
	}
	at := make([]time.Time, len(members))
	for i := range at {
		at[i] = joined
	}
	return b.noteJoins(ctx, conv, members, at)
}

// claimBatch bounds the rows of one conditional batch (one partition, one
// Paxos round).
const claimBatch = 200

// maxClaimRounds bounds the rounds of claimMembers: each round either
// claims every remaining user or learns that some were claimed by others.
const maxClaimRounds = 10

// claimMembers makes users members of conv joined at at, unless they are
// already. The membership rows are claimed with INSERT ... IF NOT EXISTS in
// a conditional batch (all rows of one conversation share a partition, so
// one Paxos round claims them all; a transaction per user would make them
// contend with each other). A batch applies only if none of its rows exists:
// when one does (another caller got there first), a serial read tells which,
// and the rest are claimed again. So concurrent callers agree on who was new
// and a member keeps their first join time. The users' list rows are then
// (re)written with the join time that won, completing an earlier call that
// died half-way. It returns which users were new.
func (b *Backend) claimMembers(ctx context.Context, conv string, users []chat.ID, at time.Time) ([]bool, error) {
	added := make([]bool, len(users))
	joined := make([]time.Time, len(users))
	pending := make([]int, len(users))
	for i := range users {
		pending[i] = i
		joined[i] = at
	}
	for round := 0; len(pending) > 0; round++ {
		if round == maxClaimRounds {
			return nil, fmt.Errorf("%w: claiming members of %q: still contended after %d rounds", chat.ErrUnavailable, conv, round)
		}
		var retry []int
		for start := 0; start < len(pending); start += claimBatch {
			chunk := pending[start:min(start+claimBatch, len(pending))]
			batch := b.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
			for _, i := range chunk {
				batch.Entries = append(batch.Entries, gocql.BatchEntry{
					Stmt:       `INSERT INTO conversation_members (conversation_id, user_id, joined_at) VALUES (?, ?, ?) IF NOT EXISTS`,
					Args:       []any{conv, int64(users[i]), at},
					Idempotent: true,
				})
			}
			applied, iter, err := b.s.MapExecuteBatchCAS(batch, map[string]any{})
			if err != nil {
				return nil, err
			}
			if err := iter.Close(); err != nil {
				return nil, err
			}
			if applied {
				for _, i := range chunk {
					added[i] = true
				}
				continue
			}
			existing, err := b.memberJoins(ctx, conv, users, chunk)
			if err != nil {
				return nil, err
			}
			for _, i := range chunk {
				if t, ok := existing[users[i]]; ok {
					if !t.IsZero() {
						joined[i] = t
					}
				} else {
					retry = append(retry, i)
				}
			}
		}
		pending = retry
	}
	err := b.each(ctx, len(users), func(ctx context.Context, i int) error {
		return b.q(ctx, `INSERT INTO user_conversations (user_id, conversation_id, joined_at) VALUES (?, ?, ?)`,
			int64(users[i]), conv, joined[i]).Exec()
	})
	if err == nil {
		err = b.noteJoins(ctx, conv, users, joined)
	}
	return added, err
}

// memberJoins reads, at serial consistency (so it sees every committed
// transaction), which of users[idx] have a membership row and their join
// times.
func (b *Backend) memberJoins(ctx context.Context, conv string, users []chat.ID, idx []int) (map[chat.ID]time.Time, error) {
	keys := make([]int64, len(idx))
	for k, i := range idx {
		keys[k] = int64(users[i])
	}
	iter := b.q(ctx, `SELECT user_id, joined_at FROM conversation_members WHERE conversation_id = ? AND user_id IN ?`, conv, keys).
		Consistency(gocql.Consistency(b.cfg.SerialConsistency)).Iter()
	out := map[chat.ID]time.Time{}
	var (
		id int64
		t  time.Time
	)
	for iter.Scan(&id, &t) {
		out[chat.ID(id)] = t.UTC()
	}
	return out, iter.Close()
}

// AddMembers claims a membership row for each user not yet in the
// conversation's member set, then adds them to the set (a set addition
// merges with concurrent ones and writes no tombstone).
func (b *Backend) AddMembers(ctx context.Context, conversation string, users []chat.ID, at time.Time) (chat.Conversation, []chat.ID, error) {
	c, err := b.Conversation(ctx, conversation)
	if err != nil {
		return chat.Conversation{}, nil, err
	}
	var cand []chat.ID
	for _, u := range users {
		if !validID(u) {
			return chat.Conversation{}, nil, fmt.Errorf("%w: member id %d", chat.ErrInvalid, u)
		}
		if _, in := slices.BinarySearch(c.Members, u); !in && !slices.Contains(cand, u) {
			cand = append(cand, u)
		}
	}
	if len(cand) == 0 {
		return c, nil, nil
	}
	// Growing past chat.MaxInlineMembers: the members so far move to
	// user_big_groups (the joiners get there through claimMembers).
	if len(c.Members) <= chat.MaxInlineMembers && len(c.Members)+len(cand) > chat.MaxInlineMembers {
		if err := b.noteBig(ctx, conversation, c.Members); err != nil {
			return chat.Conversation{}, nil, wrap("add members", err)
		}
	}
	added, err := b.claimMembers(ctx, conversation, cand, at.UTC())
	if err != nil {
		return chat.Conversation{}, nil, wrap("add members", err)
	}
	if err := b.q(ctx, `UPDATE conversations SET members = members + ? WHERE conversation_id = ?`,
		toInt64s(cand), conversation).Exec(); err != nil {
		return chat.Conversation{}, nil, wrap("add members", err)
	}
	var newIDs []chat.ID
	for i, ok := range added {
		if ok {
			newIDs = append(newIDs, cand[i])
		}
	}
	c, err = b.Conversation(ctx, conversation)
	if err != nil {
		return chat.Conversation{}, nil, err
	}
	return c, newIDs, nil
}

// Conversation is one read of the conversations row.
func (b *Backend) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	row := map[string]any{}
	err := b.q(ctx, `SELECT kind, title, created_by, created_at, members FROM conversations WHERE conversation_id = ?`, id).MapScan(row)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %q", chat.ErrNotFound, id)
	}
	if err != nil {
		return chat.Conversation{}, wrap("conversation", err)
	}
	c := convFromRow(id, row)
	if c.Kind == "" {
		// Cells without the row written by CreateConversation (a
		// membership change racing a failed create): not a conversation.
		return chat.Conversation{}, fmt.Errorf("%w: conversation %q", chat.ErrNotFound, id)
	}
	return c, nil
}

func convFromRow(id string, row map[string]any) chat.Conversation {
	c := chat.Conversation{
		ID:        id,
		Kind:      chat.Kind(toString(row["kind"])),
		Title:     toString(row["title"]),
		CreatedBy: chat.ID(toInt64(row["created_by"])),
		CreatedAt: toTime(row["created_at"]),
	}
	ms, _ := row["members"].([]int64)
	for _, m := range ms {
		c.Members = append(c.Members, chat.ID(m))
	}
	slices.Sort(c.Members)
	c.MemberCount = len(c.Members)
	return c
}

func toInt64s(ids []chat.ID) []int64 {
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
	sum      chat.Summary
	ok       bool // the conversation row exists
	// The numbers (unread.go) at the read mark (zero when not known) and
	// of the last message.
	readNum, lastNum chat.Number
}

// listChunk is how many conversation rows one query of the list reads (IN
// on the partition key: the coordinator fetches them in parallel).
const listChunk = 50

const listColumns = `kind, title, created_by, created_at,
	last_message_id, last_sender_id, last_body, last_client_id, last_sent_at, last_n, last_n_base`

// fillEntry completes e from its conversations row.
func fillEntry(e *listEntry, row map[string]any) {
	c := convFromRow(e.conv, row)
	if c.Kind == "" {
		return
	}
	e.ok = true
	e.sum = chat.Summary{Conversation: c, LastRead: chat.ID(e.lastRead), Activity: e.joined}
	if id := toInt64(row["last_message_id"]); id > 0 {
		m := &chat.Message{
			ID:           chat.ID(id),
			Conversation: e.conv,
			Sender:       chat.ID(toInt64(row["last_sender_id"])),
			Body:         toString(row["last_body"]),
			ClientID:     toString(row["last_client_id"]),
			SentAt:       toTime(row["last_sent_at"]),
		}
		// No valid body is empty: an empty one was blanked by a deletion.
		m.Deleted = m.Body == ""
		e.sum.LastMessage = m
		e.sum.Activity = m.SentAt
		e.lastNum = rowNumber(row["last_n"], row["last_n_base"])
	}
}

// Conversations is the first page of the user's list (ConversationPage).
func (b *Backend) Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error) {
	if limit < 1 || !validID(user) {
		return nil, nil
	}
	list, _, err := b.ConversationPage(ctx, user, chat.ListPage{Limit: limit})
	return list, err
}

// ConversationPage is one page of the list, after p's cursor: its entries
// come from the user's activity rows (activityPage, activity.go), which
// costs O(page) reads plus the user's big groups, not a read of every
// conversation of the user. Only the page's entries then read their members
// (IN on 50 keys at a time), and keep them when there are at most
// chat.MaxInlineMembers, and their unread counts.
func (b *Backend) ConversationPage(ctx context.Context, user chat.ID, p chat.ListPage) ([]chat.Summary, bool, error) {
	if p.Limit < 1 {
		return nil, false, fmt.Errorf("%w: limit %d", chat.ErrInvalid, p.Limit)
	}
	if !validID(user) {
		return nil, false, nil
	}
	top, more, err := b.activityPage(ctx, user, p)
	if err != nil {
		return nil, false, wrap("conversations", err)
	}
	if err := b.pageMembers(ctx, top); err != nil {
		return nil, false, wrap("conversations", err)
	}
	err = b.each(ctx, len(top), func(ctx context.Context, i int) error {
		e := top[i]
		if e.sum.LastMessage == nil || int64(e.sum.LastMessage.ID) <= e.lastRead {
			return nil
		}
		n, err := b.unread(ctx, e, user)
		e.sum.Unread = n
		return err
	})
	if err != nil {
		return nil, false, wrap("conversations", err)
	}
	out := make([]chat.Summary, len(top))
	for i, e := range top {
		out[i] = e.sum
	}
	return out, more, nil
}

// pageMembers reads the member sets of a page's entries and keeps them
// where they are small enough to travel inline.
func (b *Backend) pageMembers(ctx context.Context, page []*listEntry) error {
	byConv := make(map[string]*listEntry, len(page))
	for _, e := range page {
		byConv[e.conv] = e
	}
	chunks := (len(page) + listChunk - 1) / listChunk
	return b.each(ctx, chunks, func(ctx context.Context, i int) error {
		part := page[i*listChunk : min((i+1)*listChunk, len(page))]
		ids := make([]string, len(part))
		for k, e := range part {
			ids[k] = e.conv
		}
		iter := b.q(ctx, `SELECT conversation_id, members FROM conversations WHERE conversation_id IN ?`, ids).Iter()
		var (
			conv    string
			members []int64
		)
		for iter.Scan(&conv, &members) {
			e := byConv[conv]
			if e == nil {
				continue
			}
			e.sum.MemberCount = len(members)
			e.sum.Members = nil
			if len(members) <= chat.MaxInlineMembers {
				e.sum.Members = make([]chat.ID, len(members))
				for k, m := range members {
					e.sum.Members[k] = chat.ID(m)
				}
				slices.Sort(e.sum.Members)
			}
			members = nil
		}
		return iter.Close()
	})
}

// RemoveMember deletes the membership row with a lightweight transaction
// (the rows are claimed with one, and mixing the two on a row is unsafe),
// which also says whether user was a member; then the user's list row and
// the set element.
func (b *Backend) RemoveMember(ctx context.Context, conversation string, user chat.ID) (chat.Conversation, bool, error) {
	if !validID(user) {
		return chat.Conversation{}, false, fmt.Errorf("%w: user id %d", chat.ErrInvalid, user)
	}
	if _, err := b.head(ctx, conversation); err != nil {
		return chat.Conversation{}, false, err
	}
	was, err := b.q(ctx, `DELETE FROM conversation_members WHERE conversation_id = ? AND user_id = ? IF EXISTS`,
		conversation, int64(user)).MapScanCAS(map[string]any{})
	if err != nil {
		return chat.Conversation{}, false, wrap("remove member", err)
	}
	err = b.each(ctx, 3, func(ctx context.Context, i int) error {
		if i == 0 {
			return b.q(ctx, `DELETE FROM user_conversations WHERE user_id = ? AND conversation_id = ?`, int64(user), conversation).Exec()
		}
		if i == 2 {
			// Its user_activity rows are stale now; readers delete them.
			return b.q(ctx, `DELETE FROM user_big_groups WHERE user_id = ? AND conversation_id = ?`, int64(user), conversation).Exec()
		}
		return b.q(ctx, `UPDATE conversations SET members = members - ? WHERE conversation_id = ?`,
			[]int64{int64(user)}, conversation).Exec()
	})
	if err != nil {
		return chat.Conversation{}, false, wrap("remove member", err)
	}
	c, err := b.Conversation(ctx, conversation)
	return c, was, err
}

// Members pages a conversation's member IDs in clustering order (one
// slice of conversation_members).
func (b *Backend) Members(ctx context.Context, conversation string, after chat.ID, limit int) ([]chat.ID, bool, error) {
	if limit < 1 || after > chat.ID(1<<63-1) {
		return nil, false, fmt.Errorf("%w: members page after %d limit %d", chat.ErrInvalid, after, limit)
	}
	if _, err := b.head(ctx, conversation); err != nil {
		return nil, false, err
	}
	iter := b.q(ctx, `SELECT user_id FROM conversation_members WHERE conversation_id = ? AND user_id > ? LIMIT ?`,
		conversation, int64(after), limit+1).PageSize(limit + 1).Iter()
	out := []chat.ID{}
	var id int64
	for iter.Scan(&id) {
		out = append(out, chat.ID(id))
	}
	if err := iter.Close(); err != nil {
		return nil, false, wrap("members", err)
	}
	more := len(out) > limit
	return out[:min(len(out), limit)], more, nil
}

// head reads a conversation's row without its members; ErrNotFound.
func (b *Backend) head(ctx context.Context, id string) (chat.Conversation, error) {
	row := map[string]any{}
	err := b.q(ctx, `SELECT kind, title, created_by, created_at FROM conversations WHERE conversation_id = ?`, id).MapScan(row)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %q", chat.ErrNotFound, id)
	}
	if err != nil {
		return chat.Conversation{}, wrap("conversation", err)
	}
	c := convFromRow(id, row)
	if c.Kind == "" {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %q", chat.ErrNotFound, id)
	}
	return c, nil
}

// maxUnreadScan bounds the rows read to count unread messages: the user's
// own messages are read but not counted, so a user who wrote very many
// since their read mark gets a count that may stop short.
const maxUnreadScan = 20 * chat.UnreadCap

// after counts the messages after mark, from others (up to
// chat.UnreadCap) and user's own. It reads the last message's bucket first,
// directly; only when the mark lies in an older bucket does it list the
// non-empty buckets in between (conversation_buckets) and walk them, newest
// first. Rows without a sender (changes of a message not stored yet) are
// not messages. The list pays this only for marks and messages without
// numbers (unread.go).
func (b *Backend) after(ctx context.Context, conv string, user, mark, last chat.ID) (others, own int, err error) {
	top, err := b.msgBucket(ctx, conv, last, false)
	if err != nil {
		return 0, 0, err
	}
	low := 0
	if mark > 0 {
		if low, err = b.msgBucket(ctx, conv, mark, false); err != nil {
			return 0, 0, err
		}
	}
	count, scanned := 0, 0
	done := func() bool { return count >= chat.UnreadCap || scanned >= maxUnreadScan }
	// Whatever path returns, the results are the counts so far.
	defer func() { others, own = count, scanned-count }()
	countBucket := func(bk int) error {
		iter := b.q(ctx, `SELECT sender_id FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id > ? AND message_id <= ?`,
			conv, bk, int64(mark), int64(last)).PageSize(chat.UnreadCap).Iter()
		var sender int64
		for !done() && iter.Scan(&sender) {
			if sender == 0 {
				continue
			}
			scanned++
			if chat.ID(sender) != user {
				count++
			}
		}
		return iter.Close()
	}
	if err := countBucket(top); err != nil || done() || low >= top {
		return 0, 0, err
	}
	var buckets []int
	iter := b.q(ctx, `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket >= ? AND bucket < ?`,
		conv, low, top).PageSize(1000).Iter()
	var bk int
	for iter.Scan(&bk) {
		buckets = append(buckets, bk)
	}
	if err := iter.Close(); err != nil {
		return 0, 0, err
	}
	for _, bk := range buckets {
		if err := countBucket(bk); err != nil || done() {
			return 0, 0, err
		}
	}
	return 0, 0, nil
}

// MarkRead reads the user's mark (which also checks membership) and, when
// msg is ahead of it, writes msg USING TIMESTAMP msg into both copies of the
// mark: last-write-wins then keeps the largest mark whatever the order of
// concurrent calls, so a mark never moves back, without a transaction.
func (b *Backend) MarkRead(ctx context.Context, conversation string, user chat.ID, msg chat.ID) (chat.ID, bool, error) {
	if !validID(user) || msg > chat.ID(1<<63-1) {
		return 0, false, fmt.Errorf("%w: mark %d for user %d", chat.ErrInvalid, msg, user)
	}
	var cur int64
	err := b.q(ctx, `SELECT last_read_id FROM user_conversations WHERE user_id = ? AND conversation_id = ?`,
		int64(user), conversation).Scan(&cur)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, false, fmt.Errorf("%w: user %d in conversation %q", chat.ErrNotFound, user, conversation)
	}
	if err != nil {
		return 0, false, wrap("mark read", err)
	}
	if int64(msg) <= cur {
		return chat.ID(cur), false, nil
	}
	readN, readBase, err := b.markNumber(ctx, conversation, msg)
	if err != nil {
		return 0, false, wrap("mark read", err)
	}
	ts := int64(msg)
	err = b.each(ctx, 2, func(ctx context.Context, i int) error {
		if i == 0 {
			return b.q(ctx, `UPDATE user_conversations USING TIMESTAMP ?
				SET last_read_id = ?, read_n = ?, read_n_base = ? WHERE user_id = ? AND conversation_id = ?`,
				ts, int64(msg), readN, readBase, int64(user), conversation).Exec()
		}
		return b.q(ctx, `UPDATE conversation_members USING TIMESTAMP ? SET last_read_id = ? WHERE conversation_id = ? AND user_id = ?`,
			ts, int64(msg), conversation, int64(user)).Exec()
	})
	if err != nil {
		return 0, false, wrap("mark read", err)
	}
	return msg, true, nil
}
