package cassandra

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/gocql/gocql"
)

// Batches of one partition are applied as one mutation; these bound one
// batch's statements and bytes so a mutation stays far below Cassandra's
// limit (half a commit log segment, 16 MiB by default).
const (
	maxBatchStatements = 100
	maxBatchBytes      = 1 << 20
)

// firstWinsBase is the write timestamp of a message written at Unix time 0;
// later writes get smaller timestamps (see firstWinsTimestamp).
const firstWinsBase = int64(1) << 62

// firstWinsTimestamp decreases as wall-clock time goes on, so that a message
// saved again later (a redelivery, possibly with other content) loses to the
// first save under last-write-wins: "a message whose ID is already stored is
// left as it is" without reading before writing. Two saves of one ID within
// the clock skew between store pods could still go the other way; they
// carry the same message in practice.
func firstWinsTimestamp() int64 { return firstWinsBase - time.Now().UnixMicro() }

type partition struct {
	conv   string
	bucket int
	msgs   []chat.Message
}

// SaveMessages groups messages by partition (conversation, bucket); for each
// it records the bucket in conversation_buckets (unless this process
// already did) and then writes the messages in unlogged single-partition
// batches, with their numbers and, for numbered ones, their sender's
// own_messages rows (unread.go). Nothing is read: every write is
// idempotent, so a redelivered message changes nothing. Once every message of a conversation is stored it moves the
// conversation's last message (the last_* columns of its row, written USING
// TIMESTAMP <id>, so they only move forward): one update per conversation
// per call, however many of its messages the call holds. Batches are
// written concurrently, bounded by MaxWritesInFlight across the backend.
func (b *Backend) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	return b.SaveMessagesReporting(ctx, msgs, nil)
}

var _ store.ReportingSaver = (*Backend)(nil)

// SaveMessagesReporting is SaveMessages that calls stored (unless nil) with
// each conversation once its messages are stored and its row moved.
func (b *Backend) SaveMessagesReporting(ctx context.Context, msgs []chat.Message, stored func(conversation string)) error {
	if len(msgs) == 0 {
		return nil
	}
	parts := map[bucketKey]*partition{}
	var order []*partition
	newest := map[string]chat.Message{}
	seen := map[chat.ID]map[string]bool{}
	for _, m := range msgs {
		if m.Conversation == "" || !validID(m.ID) || m.Sender > math.MaxInt64 {
			return fmt.Errorf("%w: message %d in %q from %d", chat.ErrInvalid, m.ID, m.Conversation, m.Sender)
		}
		// A message repeated in one batch is written once: the first copy.
		if seen[m.ID][m.Conversation] {
			continue
		}
		if seen[m.ID] == nil {
			seen[m.ID] = map[string]bool{}
		}
		seen[m.ID][m.Conversation] = true
		bk, err := b.msgBucket(ctx, m.Conversation, m.ID, true)
		if err != nil {
			return wrap("save messages", err)
		}
		k := bucketKey{m.Conversation, bk}
		p := parts[k]
		if p == nil {
			p = &partition{conv: k.conv, bucket: k.bucket}
			parts[k] = p
			order = append(order, p)
		}
		p.msgs = append(p.msgs, m)
		if m.ID > newest[m.Conversation].ID {
			newest[m.Conversation] = m
		}
	}

	// Split partitions into batches of bounded size.
	type batchJob struct {
		p    *partition
		msgs []chat.Message
	}
	var jobs []batchJob
	for _, p := range order {
		start, bytes := 0, 0
		for i, m := range p.msgs {
			size := len(m.Body) + len(m.ClientID) + 64
			if i > start && (i-start >= maxBatchStatements || bytes+size > maxBatchBytes) {
				jobs = append(jobs, batchJob{p, p.msgs[start:i]})
				start, bytes = i, 0
			}
			bytes += size
		}
		jobs = append(jobs, batchJob{p, p.msgs[start:]})
	}
	// Each conversation's row moves as soon as its own batches are all
	// stored, not after the slowest batch of the whole call: the update
	// runs in the slot of the conversation's last batch to finish.
	left := make(map[string]*atomic.Int32, len(newest))
	for _, j := range jobs {
		c := left[j.p.conv]
		if c == nil {
			c = new(atomic.Int32)
			left[j.p.conv] = c
		}
		c.Add(1)
	}
	ts := firstWinsTimestamp()
	err := b.eachWrite(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		k := bucketKey{j.p.conv, j.p.bucket}
		// The bucket is recorded before its messages: a bucket without
		// messages only costs history a skip, while messages in an
		// unrecorded bucket would be invisible.
		if !b.buckets.has(k) {
			if err := b.q(ctx, `INSERT INTO conversation_buckets (conversation_id, bucket) VALUES (?, ?)`, k.conv, k.bucket).Exec(); err != nil {
				return err
			}
			b.buckets.add(k)
		}
		// A numbered message's row in own_messages has the same partition
		// key as its messages row: one mutation, no extra request.
		batch := b.s.NewBatch(gocql.UnloggedBatch).WithContext(ctx).WithTimestamp(ts)
		for _, m := range j.msgs {
			n, base := number(m.Number)
			batch.Entries = append(batch.Entries, gocql.BatchEntry{
				Stmt: `INSERT INTO messages (conversation_id, bucket, message_id, sender_id, body, client_id, sent_at, reply_to, n, n_base)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				Args: []any{m.Conversation, k.bucket, int64(m.ID), int64(m.Sender), m.Body, unsetIfEmpty(m.ClientID), sentAt(m),
					unsetIfZero(m.ReplyTo), n, base},
				Idempotent: true,
			})
			if m.Number.Numbered() {
				batch.Entries = append(batch.Entries, gocql.BatchEntry{
					Stmt:       `INSERT INTO own_messages (conversation_id, bucket, sender_id, message_id) VALUES (?, ?, ?, ?)`,
					Args:       []any{m.Conversation, k.bucket, int64(m.Sender), int64(m.ID)},
					Idempotent: true,
				})
			}
		}
		if err := b.s.ExecuteBatch(batch); err != nil {
			return err
		}
		if left[j.p.conv].Add(-1) > 0 {
			return nil // another batch of this conversation is still running
		}
		// Only after every message of the conversation is stored does its
		// last message move, so that a listed last message is always in
		// history too. Every column is written (an empty string is a
		// value, not a null), so no column of an older last message
		// survives.
		// last_n moves with them (left alone by a message without one).
		m := newest[j.p.conv]
		n, base := number(m.Number)
		err := b.q(ctx, `UPDATE conversations USING TIMESTAMP ?
			SET last_message_id = ?, last_sender_id = ?, last_body = ?, last_client_id = ?, last_sent_at = ?,
			last_n = ?, last_n_base = ?
			WHERE conversation_id = ?`,
			int64(m.ID), int64(m.ID), int64(m.Sender), m.Body, m.ClientID, m.SentAt, n, base, m.Conversation).Exec()
		if err == nil && stored != nil {
			stored(m.Conversation)
		}
		return err
	})
	if err != nil {
		return wrap("save messages", err)
	}
	return b.noteActivity(ctx, msgs)
}

// number is the n and n_base columns of a message's number: unset (not
// written) for a message without one.
func number(n chat.Number) (any, any) {
	if !n.Numbered() || n.N > math.MaxInt64 || n.Base > math.MaxInt64 {
		return gocql.UnsetValue, gocql.UnsetValue
	}
	return int64(n.N), int64(n.Base)
}

func sentAt(m chat.Message) any {
	if m.SentAt.IsZero() {
		return gocql.UnsetValue
	}
	return m.SentAt
}

const messageColumns = `message_id, sender_id, body, client_id, sent_at, reply_to, edited_at, deleted, reacted, version`

// scanMessages appends up to want messages of iter. A row without a sender
// holds only changes whose message is not stored yet: it is not a message.
// A message that may have reactions (the reacted hint) gets a non-nil,
// empty Reactions, which dress fills (or sets back to nil).
func scanMessages(iter *gocql.Iter, conv string, into []chat.Message, want int) []chat.Message {
	var (
		id, sender, replyTo, version int64
		body, clientID               string
		sent, edited                 time.Time
		deleted, hasReactions        bool
	)
	for len(into) < want && iter.Scan(&id, &sender, &body, &clientID, &sent, &replyTo, &edited, &deleted, &hasReactions, &version) {
		if sender == 0 {
			continue
		}
		m := chat.Message{ID: chat.ID(id), Conversation: conv, Sender: chat.ID(sender), Body: body, ClientID: clientID,
			ReplyTo: chat.ID(replyTo), Deleted: deleted, Version: chat.ID(version)}
		if !sent.IsZero() {
			m.SentAt = sent.UTC()
		}
		if deleted {
			m.Body, hasReactions = "", false
		} else if !edited.IsZero() {
			m.EditedAt = edited.UTC()
		}
		if hasReactions {
			m.Reactions = []chat.Reaction{}
		}
		into = append(into, m)
	}
	return into
}

// maxPage keeps Limit+1 from overflowing the CQL int of LIMIT.
const maxPage = math.MaxInt32 - 1

// Messages walks the conversation's non-empty buckets (conversation_buckets)
// from the cursor's bucket, newest first (or oldest first for After),
// reading from each partition only as many rows as the page still needs,
// plus one to learn whether more exist.
func (b *Backend) Messages(ctx context.Context, conversation string, p chat.Page) ([]chat.Message, bool, error) {
	if p.Limit < 1 || (p.Before != 0 && p.After != 0) {
		return nil, false, fmt.Errorf("%w: page %+v", chat.ErrInvalid, p)
	}
	want := min(p.Limit, maxPage) + 1
	var (
		got []chat.Message
		err error
	)
	if p.After != 0 {
		if p.After >= math.MaxInt64 {
			return nil, false, nil
		}
		got, err = b.walk(ctx, conversation, p.After, want, true)
	} else {
		// Before 0 means the newest: everything below the largest ID.
		upper := chat.ID(math.MaxInt64)
		if p.Before != 0 && p.Before <= math.MaxInt64 {
			upper = p.Before - 1
		}
		got, err = b.walk(ctx, conversation, upper, want, false)
	}
	if err != nil {
		return nil, false, wrap("messages", err)
	}
	more := len(got) > p.Limit
	if more {
		got = got[:p.Limit]
	}
	if err := b.dress(ctx, conversation, got, p.Viewer); err != nil {
		return nil, false, wrap("messages", err)
	}
	return got, more, nil
}

// historyParallel bounds the buckets one history page reads at once.
const historyParallel = 8

// walk collects up to want messages: newer than cursor oldest first when
// forward, else at most cursor newest first. It reads the recorded buckets
// in order in waves: one bucket first (a busy conversation's page is
// usually in its newest bucket), then twice as many each wave up to
// historyParallel, read concurrently (within the backend's MaxInFlight).
// Every bucket of a wave is asked for all the page still lacks, and the
// results are taken in bucket order, so the page is exactly what reading
// the buckets one after another would give; a quiet conversation's page
// of 50 one-message buckets costs 8 rounds, not 50.
//
// Buckets are keyed by their first unit and never overlap (buckets.go), so
// going back, every bucket that starts at or before the cursor's unit may
// hold it; going forward, the walk starts at the cursor's own bucket.
func (b *Backend) walk(ctx context.Context, conv string, cursor chat.ID, want int, forward bool) ([]chat.Message, error) {
	var bucketQ, msgQ string
	var from int
	if forward {
		bucketQ = `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket >= ? ORDER BY bucket ASC`
		msgQ = `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id > ? ORDER BY message_id ASC LIMIT ?`
		bk, err := b.msgBucket(ctx, conv, cursor, false)
		if err != nil {
			return nil, err
		}
		from = bk
	} else {
		bucketQ = `SELECT bucket FROM conversation_buckets WHERE conversation_id = ? AND bucket <= ?`
		msgQ = `SELECT ` + messageColumns + ` FROM messages WHERE conversation_id = ? AND bucket = ? AND message_id <= ? LIMIT ?`
		from = int(b.unit(cursor))
	}
	buckets := b.q(ctx, bucketQ, conv, from).PageSize(100).Iter()
	var got []chat.Message
	wave := 1
	var bk int
	for len(got) < want {
		var keys []int
		for len(keys) < wave && buckets.Scan(&bk) {
			keys = append(keys, bk)
		}
		if len(keys) == 0 {
			break
		}
		if b.wave != nil {
			b.wave(len(keys))
		}
		need := want - len(got)
		res := make([][]chat.Message, len(keys))
		err := b.each(ctx, len(keys), func(ctx context.Context, i int) error {
			iter := b.q(ctx, msgQ, conv, keys[i], int64(cursor), need).PageSize(min(need, 1000)).Iter()
			res[i] = scanMessages(iter, conv, nil, need)
			return iter.Close()
		})
		if err != nil {
			_ = buckets.Close()
			return nil, err
		}
		for _, r := range res {
			got = append(got, r[:min(len(r), want-len(got))]...)
		}
		wave = min(2*wave, historyParallel)
	}
	if err := buckets.Close(); err != nil {
		return nil, err
	}
	return got, nil
}
