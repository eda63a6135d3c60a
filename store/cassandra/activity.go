package cassandra

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// The conversation list by activity (migration 0010): user_activity holds
// a row per small conversation of a user at the second of its activity
// (the newest message's time, else the join time); big groups (more than
// chat.MaxInlineMembers) are listed in user_big_groups and read whole. A
// page reads the user's rows newest first until it knows its entries, so
// it costs O(page), not O(conversations of the user).
//
// Invariant: every small conversation of a user has a row at the slot of
// its activity. Saving messages keeps it for members (moveActivity), joins
// for joiners (noteJoins), the first list read of a user from before the
// migration for all (backfill), and a reader that meets a stale row writes
// the current one (a race between a join and a message). Rows that no
// longer match are stale: a reader drops and deletes them.

// activitySlot is the granularity of user_activity rows. A conversation's
// rows move (an insert and a delete per member) at most once per slot,
// however many messages it gets; the list orders the conversations of one
// slot by their exact activity, read from their rows.
const activitySlot = time.Second

func slotOf(t time.Time) time.Time { return t.UTC().Truncate(activitySlot) }

// listScanMin is the fewest user_activity rows one read of a page asks for.
const listScanMin = 20

// noteActivity moves the activity rows of the conversations of msgs, which
// are stored and whose conversation rows have moved (SaveMessages calls it
// last). For each conversation it reads the slot its rows are at
// (conversations.activity_slot) and up to chat.MaxInlineMembers+1 members;
// when the newest message is in a later slot and the conversation is
// small, it writes each member's row at the new slot, deletes the rows at
// the old one and records the new slot. Reading the members after the
// conversation row moved, while a join writes its membership before
// reading the conversation row (noteJoins), means one of the two always
// sees the other: a member never misses a row.
func (b *Backend) noteActivity(ctx context.Context, msgs []chat.Message) error {
	newest := map[string]chat.Message{}
	for _, m := range msgs {
		// A message without a time has no activity to order by (the
		// service always sets it).
		if !m.SentAt.IsZero() && m.ID > newest[m.Conversation].ID {
			newest[m.Conversation] = m
		}
	}
	type move struct {
		conv      string
		from, to  time.Time
		members   []int64
		needsMove bool
	}
	moves := make([]*move, 0, len(newest))
	for conv, m := range newest {
		moves = append(moves, &move{conv: conv, to: slotOf(m.SentAt)})
	}
	err := b.each(ctx, 2*len(moves), func(ctx context.Context, i int) error {
		mv := moves[i/2]
		if i%2 == 0 {
			var from time.Time
			err := b.q(ctx, `SELECT activity_slot FROM conversations WHERE conversation_id = ?`, mv.conv).Scan(&from)
			if err != nil && !errors.Is(err, gocql.ErrNotFound) {
				return err
			}
			mv.from = from
			return nil
		}
		iter := b.q(ctx, `SELECT user_id FROM conversation_members WHERE conversation_id = ? LIMIT ?`,
			mv.conv, chat.MaxInlineMembers+1).Iter()
		var u int64
		for iter.Scan(&u) {
			mv.members = append(mv.members, u)
		}
		return iter.Close()
	})
	if err != nil {
		return wrap("save messages: activity", err)
	}
	type write struct {
		user int64
		mv   *move
	}
	var ins, del []write
	var upd []*move
	for _, mv := range moves {
		if len(mv.members) == 0 || len(mv.members) > chat.MaxInlineMembers || !mv.to.After(mv.from) {
			continue
		}
		for _, u := range mv.members {
			ins = append(ins, write{u, mv})
			if !mv.from.IsZero() {
				del = append(del, write{u, mv})
			}
		}
		upd = append(upd, mv)
	}
	// New rows first, then the old ones go, then the slot is recorded: a
	// call that fails half-way leaves the slot behind, so the next call
	// (or the retry) writes them all again.
	if err := b.each(ctx, len(ins), func(ctx context.Context, i int) error {
		w := ins[i]
		return b.q(ctx, `INSERT INTO user_activity (user_id, slot, conversation_id) VALUES (?, ?, ?)`, w.user, w.mv.to, w.mv.conv).Exec()
	}); err != nil {
		return wrap("save messages: activity", err)
	}
	if err := b.each(ctx, len(del), func(ctx context.Context, i int) error {
		w := del[i]
		return b.q(ctx, `DELETE FROM user_activity WHERE user_id = ? AND slot = ? AND conversation_id = ?`, w.user, w.mv.from, w.mv.conv).Exec()
	}); err != nil {
		return wrap("save messages: activity", err)
	}
	// USING TIMESTAMP <slot>: the recorded slot only moves forward.
	if err := b.each(ctx, len(upd), func(ctx context.Context, i int) error {
		mv := upd[i]
		return b.q(ctx, `UPDATE conversations USING TIMESTAMP ? SET activity_slot = ? WHERE conversation_id = ?`,
			mv.to.UnixMicro(), mv.to, mv.conv).Exec()
	}); err != nil {
		return wrap("save messages: activity", err)
	}
	return nil
}

// noteJoins gives users, who just joined conv (their membership rows are
// written), their place in the list: a row at the conversation's activity
// (its last message's time, else their join time) when it is small, a
// user_big_groups row when it is big.
func (b *Backend) noteJoins(ctx context.Context, conv string, users []chat.ID, joined []time.Time) error {
	var last time.Time
	var n int
	err := b.each(ctx, 2, func(ctx context.Context, i int) error {
		if i == 0 {
			err := b.q(ctx, `SELECT last_sent_at FROM conversations WHERE conversation_id = ?`, conv).Scan(&last)
			if errors.Is(err, gocql.ErrNotFound) {
				return nil
			}
			return err
		}
		iter := b.q(ctx, `SELECT user_id FROM conversation_members WHERE conversation_id = ? LIMIT ?`,
			conv, chat.MaxInlineMembers+1).Iter()
		var u int64
		for iter.Scan(&u) {
			n++
		}
		return iter.Close()
	})
	if err != nil {
		return err
	}
	if n > chat.MaxInlineMembers {
		return b.noteBig(ctx, conv, users)
	}
	return b.each(ctx, len(users), func(ctx context.Context, i int) error {
		at := last
		if at.IsZero() {
			at = joined[i]
		}
		return b.q(ctx, `INSERT INTO user_activity (user_id, slot, conversation_id) VALUES (?, ?, ?)`,
			int64(users[i]), slotOf(at), conv).Exec()
	})
}

// noteBig lists conv among the big groups of users.
func (b *Backend) noteBig(ctx context.Context, conv string, users []chat.ID) error {
	return b.each(ctx, len(users), func(ctx context.Context, i int) error {
		return b.q(ctx, `INSERT INTO user_big_groups (user_id, conversation_id) VALUES (?, ?)`, int64(users[i]), conv).Exec()
	})
}

// resolve reads, for the conversations convs of user, the user's list rows
// and the conversations' rows (IN on listChunk keys at a time). A
// conversation the user is not in, or that does not exist, is left out.
func (b *Backend) resolve(ctx context.Context, user chat.ID, convs []string) (map[string]*listEntry, error) {
	got := make(map[string]*listEntry, len(convs))
	rows := make([]map[string]map[string]any, (len(convs)+listChunk-1)/listChunk)
	chunks := len(rows)
	mine := make([][]*listEntry, chunks)
	err := b.each(ctx, 2*chunks, func(ctx context.Context, i int) error {
		part := convs[i/2*listChunk : min((i/2+1)*listChunk, len(convs))]
		if i%2 == 0 {
			iter := b.q(ctx, `SELECT conversation_id, joined_at, last_read_id, read_n, read_n_base FROM user_conversations
				WHERE user_id = ? AND conversation_id IN ?`, int64(user), part).Iter()
			var (
				conv            string
				joined          time.Time
				lastRead        int64
				readN, readBase int64
			)
			for iter.Scan(&conv, &joined, &lastRead, &readN, &readBase) {
				mine[i/2] = append(mine[i/2], &listEntry{conv: conv, joined: joined.UTC(), lastRead: lastRead,
					readNum: rowNumber(readN, readBase)})
			}
			return iter.Close()
		}
		out := map[string]map[string]any{}
		iter := b.q(ctx, `SELECT conversation_id, `+listColumns+` FROM conversations WHERE conversation_id IN ?`, part).Iter()
		for {
			row := map[string]any{}
			if !iter.MapScan(row) {
				break
			}
			out[toString(row["conversation_id"])] = row
		}
		rows[i/2] = out
		return iter.Close()
	})
	if err != nil {
		return nil, err
	}
	for i := range chunks {
		for _, e := range mine[i] {
			row := rows[i][e.conv]
			if row == nil {
				continue
			}
			fillEntry(e, row)
			if e.ok {
				got[e.conv] = e
			}
		}
	}
	return got, nil
}

// listOrder is the list's order: activity newest first, then conversation
// ID ascending.
func listOrder(a, b *listEntry) int {
	if c := b.sum.Activity.Compare(a.sum.Activity); c != 0 {
		return c
	}
	return cmp.Compare(a.conv, b.conv)
}

// activityPage finds the entries of one page of user's list after p's
// cursor (at most p.Limit) and whether more follow. It reads the user's
// big groups (all of them), then user_activity rows from the cursor's slot
// down, in reads of about 1.25 p.Limit rows, resolving each new
// conversation (resolve); it stops once p.Limit+1 entries are known to be
// final, that is, above the slot of the last row read (every row of a
// higher slot has been seen). Stale rows met on the way are deleted, and
// the current row written where it was missing.
func (b *Backend) activityPage(ctx context.Context, user chat.ID, p chat.ListPage) ([]*listEntry, bool, error) {
	if err := b.ensureActivity(ctx, user); err != nil {
		return nil, false, err
	}
	var big []string
	iter := b.q(ctx, `SELECT conversation_id FROM user_big_groups WHERE user_id = ?`, int64(user)).PageSize(1000).Iter()
	var conv string
	for iter.Scan(&conv) {
		big = append(big, conv)
	}
	if err := iter.Close(); err != nil {
		return nil, false, err
	}
	resolved := map[string]*listEntry{} // nil: not a conversation of the user
	isBig := map[string]bool{}
	cands := map[string]*listEntry{}
	add := func(got map[string]*listEntry, ids []string) {
		for _, id := range ids {
			e := got[id]
			resolved[id] = e
			if e != nil && p.After(e.sum.Activity, id) {
				cands[id] = e
			}
		}
	}
	if len(big) > 0 {
		got, err := b.resolve(ctx, user, big)
		if err != nil {
			return nil, false, err
		}
		add(got, big)
		for _, id := range big {
			isBig[id] = true
		}
	}

	type row = activityRow
	var stale, heal []row
	// limit+1 rows would do with one conversation per second and none
	// stale; a quarter more saves a second read for a few ties or stale
	// rows.
	scanSize := max(p.Limit+p.Limit/4+2, listScanMin)
	q := b.q(ctx, `SELECT slot, conversation_id FROM user_activity WHERE user_id = ?`, int64(user))
	if p.Conversation != "" {
		q = b.q(ctx, `SELECT slot, conversation_id FROM user_activity WHERE user_id = ? AND slot <= ?`, int64(user), slotOf(p.Activity))
	}
	// A page one row longer than a batch, and no prefetch: the next page
	// is fetched only when a batch needs it, never ahead of a read that
	// stops.
	iter = q.PageSize(scanSize + 1).Prefetch(0).Iter()
	var (
		r        row
		floor    time.Time // the slot of the last row read
		done     bool
		finalCnt func() int
	)
	finalCnt = func() int {
		n := 0
		for _, e := range cands {
			if done || slotOf(e.sum.Activity).After(floor) {
				n++
			}
		}
		return n
	}
	for !done {
		var batch []row
		for len(batch) < scanSize {
			if !iter.Scan(&r.slot, &r.conv) {
				done = true
				break
			}
			r.slot = r.slot.UTC()
			batch = append(batch, r)
		}
		var fresh []string
		for _, x := range batch {
			if _, seen := resolved[x.conv]; !seen && !slices.Contains(fresh, x.conv) {
				fresh = append(fresh, x.conv)
			}
		}
		if len(fresh) > 0 {
			got, err := b.resolve(ctx, user, fresh)
			if err != nil {
				_ = iter.Close()
				return nil, false, err
			}
			add(got, fresh)
		}
		for _, x := range batch {
			e := resolved[x.conv]
			if e != nil && slotOf(e.sum.Activity).Equal(x.slot) {
				continue
			}
			stale = append(stale, x)
			if e != nil && !isBig[x.conv] {
				heal = append(heal, row{slotOf(e.sum.Activity), x.conv})
			}
		}
		if len(batch) > 0 {
			floor = batch[len(batch)-1].slot
		}
		if !done && finalCnt() > p.Limit {
			break
		}
	}
	if err := iter.Close(); err != nil {
		return nil, false, err
	}
	if err := b.tidy(ctx, user, stale, heal); err != nil {
		return nil, false, err
	}
	var page []*listEntry
	for _, e := range cands {
		if done || slotOf(e.sum.Activity).After(floor) {
			page = append(page, e)
		}
	}
	slices.SortFunc(page, listOrder)
	more := len(page) > p.Limit
	return page[:min(len(page), p.Limit)], more, nil
}

// activityRow is one row of user_activity.
type activityRow struct {
	slot time.Time
	conv string
}

// tidy deletes stale rows and writes missing current ones (idempotent
// writes; a concurrent reader may do the same).
func (b *Backend) tidy(ctx context.Context, user chat.ID, stale, heal []activityRow) error {
	return b.each(ctx, len(stale)+len(heal), func(ctx context.Context, i int) error {
		if i < len(stale) {
			return b.q(ctx, `DELETE FROM user_activity WHERE user_id = ? AND slot = ? AND conversation_id = ?`,
				int64(user), stale[i].slot, stale[i].conv).Exec()
		}
		h := heal[i-len(stale)]
		return b.q(ctx, `INSERT INTO user_activity (user_id, slot, conversation_id) VALUES (?, ?, ?)`,
			int64(user), h.slot, h.conv).Exec()
	})
}

// ensureActivity makes user's activity rows complete: a user without a
// user_activity_ready row (one whose list was last read before migration
// 0008) gets a row per small conversation and a user_big_groups row per
// big one from a read of their whole list, once; then the mark.
func (b *Backend) ensureActivity(ctx context.Context, user chat.ID) error {
	var at time.Time
	err := b.q(ctx, `SELECT at FROM user_activity_ready WHERE user_id = ?`, int64(user)).Scan(&at)
	if err == nil {
		return nil
	}
	if !errors.Is(err, gocql.ErrNotFound) {
		return err
	}
	var convs []string
	iter := b.q(ctx, `SELECT conversation_id FROM user_conversations WHERE user_id = ?`, int64(user)).PageSize(1000).Iter()
	var conv string
	for iter.Scan(&conv) {
		convs = append(convs, conv)
	}
	if err := iter.Close(); err != nil {
		return err
	}
	got, err := b.resolve(ctx, user, convs)
	if err != nil {
		return err
	}
	entries := make([]*listEntry, 0, len(got))
	for _, e := range got {
		entries = append(entries, e)
	}
	if err := b.pageMembers(ctx, entries); err != nil {
		return err
	}
	err = b.each(ctx, len(entries), func(ctx context.Context, i int) error {
		e := entries[i]
		if e.sum.MemberCount > chat.MaxInlineMembers {
			return b.q(ctx, `INSERT INTO user_big_groups (user_id, conversation_id) VALUES (?, ?)`, int64(user), e.conv).Exec()
		}
		return b.q(ctx, `INSERT INTO user_activity (user_id, slot, conversation_id) VALUES (?, ?, ?)`,
			int64(user), slotOf(e.sum.Activity), e.conv).Exec()
	})
	if err != nil {
		return err
	}
	return b.q(ctx, `INSERT INTO user_activity_ready (user_id, at) VALUES (?, ?)`, int64(user), time.Now().UTC()).Exec()
}
