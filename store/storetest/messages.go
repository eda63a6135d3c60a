package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

func testSaveMessagesRoundTrip(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := []chat.Message{
		msg(c.ID, idAt(at(time.Second), 0), me),
		msg(c.ID, idAt(at(time.Second), 1), me),
		msg(c.ID, idAt(at(time.Second+time.Millisecond), 0), me),
	}
	m[0].Body = "héllo 👋 wörld\nsecond line\t\"quoted\" \\ <b>&amp;</b>"
	m[0].ClientID = "client-id_with.chars~!"
	m[1].Body = strings.Repeat("ж", 4096) // the longest body, in 2-byte runes
	m[1].ClientID = strings.Repeat("x", 64)
	// SentAt need not be the ID's time (a clock may run ahead).
	m[2].SentAt = at(time.Second + 5*time.Millisecond)
	save(t, b, m...)
	checkMessages(t, "newest first", must(page(t, b, c.ID, chat.Page{Limit: 10})), reversed(m))
	checkMessages(t, "oldest first", must(page(t, b, c.ID, chat.Page{After: 1, Limit: 10})), m)
}

func must(m []chat.Message, _ bool) []chat.Message { return m }

func testSaveMessagesEmpty(t *testing.T, b store.Backend) {
	ctx := t.Context()
	if err := b.SaveMessages(ctx, nil); err != nil {
		t.Errorf("SaveMessages(nil): %v", err)
	}
	if err := b.SaveMessages(ctx, []chat.Message{}); err != nil {
		t.Errorf("SaveMessages(empty): %v", err)
	}
}

func testSaveMessagesIdempotent(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	var all []chat.Message
	for i := range 10 {
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), other))
	}
	// The same message twice in one batch, then again alone, then the whole
	// batch replayed (a JetStream redelivery), then a batch overlapping it.
	save(t, b, all[0], all[0], all[1])
	save(t, b, all[0])
	save(t, b, all[:5]...)
	save(t, b, all[:5]...)
	save(t, b, all[3:]...)
	save(t, b, all...)
	checkMessages(t, "history after replays", must(page(t, b, c.ID, chat.Page{Limit: 100})), reversed(all))
	checkMessages(t, "forward history after replays", must(page(t, b, c.ID, chat.Page{After: 1, Limit: 100})), all)
	e := summaryOf(t, list(t, b, me, 10), c.ID)
	if e.Unread != len(all) {
		t.Errorf("unread after replays %d, want %d: replays counted twice?", e.Unread, len(all))
	}
	if e.LastMessage == nil || e.LastMessage.ID != all[len(all)-1].ID {
		t.Errorf("last message after replays %+v, want ID %d", e.LastMessage, all[len(all)-1].ID)
	}
}

// testSaveMessagesKeepsFirst checks "a message whose ID is already stored is
// left as it is", even when a later save carries a different body.
func testSaveMessagesKeepsFirst(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	first := msg(c.ID, idAt(at(time.Minute), 0), me)
	first.Body = "the first"
	save(t, b, first)
	second := first
	second.Body = "a different body"
	second.ClientID = "another"
	save(t, b, second)
	checkMessages(t, "after a second save of one ID", must(page(t, b, c.ID, chat.Page{Limit: 10})), []chat.Message{first})
}

func testSaveMessagesManyConversations(t *testing.T, b store.Backend) {
	me := userID(1)
	// IDs that are prefixes of each other must not see each other's messages.
	ids := []string{"1", "12", "123", "1-2", "1-23", groupID(1)}
	viewer := map[string]chat.ID{} // a member who lists the conversation
	for _, id := range ids {
		c := group(id, me, at(0), me)
		if a, bb, ok := chat.DirectMembers(id); ok {
			c = direct(a, bb, at(0))
		}
		viewer[id] = mkConv(t, b, c).Members[0]
	}
	want := map[string][]chat.Message{}
	var batch []chat.Message
	for i := range 60 {
		conv := ids[(i*7)%len(ids)]
		m := msg(conv, idAt(at(time.Duration(i)*time.Hour*5), i%3), me)
		want[conv] = append(want[conv], m)
		batch = append(batch, m)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	save(t, b, batch...) // one batch across every conversation
	for _, id := range ids {
		checkMessages(t, "conversation "+id, must(page(t, b, id, chat.Page{Limit: 100})), reversed(want[id]))
		e := summaryOf(t, list(t, b, viewer[id], 100), id)
		last := want[id][len(want[id])-1]
		if e.LastMessage == nil || diffMessage(*e.LastMessage, last) != "" {
			t.Errorf("conversation %s: last message %+v, want %+v", id, e.LastMessage, last)
		}
	}
}

func testSaveMessagesOutOfOrder(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	var all []chat.Message
	for i := range 90 {
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*97*time.Minute), i%2), other))
	}
	// The newest batch first, then the oldest, then the middle, each batch
	// itself reversed.
	batches := [][]chat.Message{all[60:], all[:30], all[30:60]}
	for i, batch := range batches {
		save(t, b, reversed(batch)...)
		e := summaryOf(t, list(t, b, me, 10), c.ID)
		if e.LastMessage == nil || e.LastMessage.ID != all[len(all)-1].ID {
			t.Errorf("after batch %d, last message %+v, want ID %d", i, e.LastMessage, all[len(all)-1].ID)
		}
		if !e.Activity.Equal(all[len(all)-1].SentAt) {
			t.Errorf("after batch %d, activity %v, want %v", i, e.Activity, all[len(all)-1].SentAt)
		}
	}
	checkMessages(t, "newest first", walkBackward(t, b, c.ID, 7), reversed(all))
	checkMessages(t, "oldest first", walkForward(t, b, c.ID, 1, 7), all)
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != len(all) {
		t.Errorf("unread %d, want %d", e.Unread, len(all))
	}
}

func testSaveMessagesConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	c2 := mkConv(t, b, group(groupID(2), me, at(0), me))
	const writers, each = 8, 15
	var all, all2 []chat.Message
	for i := range writers * each {
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*time.Hour), 0), me))
		all2 = append(all2, msg(c2.ID, idAt(at(time.Duration(i)*time.Hour), 1), me))
	}
	const readers = 2
	errs := make([]error, writers+readers)
	var writing atomic.Int32
	writing.Store(writers)
	runConcurrently(writers+readers, func(w int) {
		if w >= writers {
			// Readers page while the writers write: every page they see
			// must be well formed, whatever it holds yet.
			errs[w] = readWhileWriting(ctx, b, c.ID, me, &writing)
			return
		}
		defer writing.Add(-1)
		// Writer w saves every writers-th message, newest first, each once
		// alone and once in a batch with a message of c2.
		for i := writers*each - 1 - w; i >= 0; i -= writers {
			if err := b.SaveMessages(ctx, []chat.Message{all[i]}); err != nil {
				errs[w] = err
				return
			}
			if err := b.SaveMessages(ctx, []chat.Message{all2[i], all[i]}); err != nil {
				errs[w] = err
				return
			}
		}
	})
	for w, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", w, err)
		}
	}
	checkMessages(t, c.ID, walkBackward(t, b, c.ID, 50), reversed(all))
	checkMessages(t, c2.ID, walkForward(t, b, c2.ID, 1, 50), all2)
	for _, e := range list(t, b, me, 10) {
		want := all[len(all)-1].ID
		if e.ID == c2.ID {
			want = all2[len(all2)-1].ID
		}
		if e.LastMessage == nil || e.LastMessage.ID != want {
			t.Errorf("%s: last message %+v, want ID %d", e.ID, e.LastMessage, want)
		}
	}
}

// readWhileWriting reads conv's history and user's list a few times while
// writing is above zero, checking the shape of each answer. The count is
// bounded so that readers do not starve the writers on a small machine.
func readWhileWriting(ctx context.Context, b store.Backend, conv string, user chat.ID, writing *atomic.Int32) error {
	for i := 0; i < 5 && (writing.Load() > 0 || i < 2); i++ {
		for _, p := range []chat.Page{{Limit: 20}, {After: 1, Limit: 20}} {
			msgs, more, err := b.Messages(ctx, conv, p)
			if err != nil {
				return fmt.Errorf("Messages during writes: %w", err)
			}
			if len(msgs) > p.Limit || (more && len(msgs) < p.Limit) {
				return fmt.Errorf("Messages(%+v) during writes: %d messages, more %v", p, len(msgs), more)
			}
			for k := 1; k < len(msgs); k++ {
				if (p.After == 0) != (msgs[k].ID < msgs[k-1].ID) || msgs[k].ID == msgs[k-1].ID {
					return fmt.Errorf("Messages(%+v) during writes: out of order: %v", p, msgIDs(msgs))
				}
			}
		}
		if _, err := b.Conversations(ctx, user, 10); err != nil {
			return fmt.Errorf("Conversations during writes: %w", err)
		}
	}
	return nil
}

func testMessagesEmptyConversation(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	for _, p := range []chat.Page{{Limit: 1}, {Limit: 50}, {Before: 12345, Limit: 5}, {After: 12345, Limit: 5}} {
		if m, more := page(t, b, c.ID, p); len(m) != 0 || more {
			t.Errorf("Messages(empty, %+v) = %v, %v; want none, false", p, msgIDs(m), more)
		}
	}
	// An unknown conversation has no messages: a backend may say so with an
	// empty page or with ErrNotFound, never with anything else.
	m, more, err := b.Messages(ctx, groupID(2), chat.Page{Limit: 5})
	if err != nil && !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Messages(unknown): err = %v, want nil or ErrNotFound", err)
	}
	if len(m) != 0 || more {
		t.Errorf("Messages(unknown) = %v, %v; want none, false", msgIDs(m), more)
	}
}

// testMessagesPagingBoundaries checks every page, in both directions, with
// cursors at, next to and beyond every message, against a model, for
// conversations of 0, 1, limit-1, limit, limit+1 and 2*limit+1 messages.
func testMessagesPagingBoundaries(t *testing.T, b store.Backend) {
	me := userID(1)
	const limit = 4
	for i, n := range []int{0, 1, limit - 1, limit, limit + 1, 2*limit + 1} {
		c := mkConv(t, b, group(groupID(i), me, at(0), me))
		var all []chat.Message
		for k := range n {
			// Two messages in one millisecond, then a gap of hours.
			all = append(all, msg(c.ID, idAt(at(time.Duration(k/2)*5*time.Hour), k%2), me))
		}
		if n > 0 {
			save(t, b, all...)
		}
		// Cursors at every position make every count of remaining messages
		// (0..n) meet each limit, so a few limits cover the boundaries.
		for _, l := range []int{1, limit, 200} {
			checkPage(t, b, c.ID, all, chat.Page{Limit: l})
			for _, cur := range cursors(all) {
				checkPage(t, b, c.ID, all, chat.Page{Before: cur, Limit: l})
				checkPage(t, b, c.ID, all, chat.Page{After: cur, Limit: l})
			}
		}
		if t.Failed() {
			return // one conversation's failures are enough to read
		}
	}
}

// testMessagesPagingWalk pages through 500 messages spread over many days
// with long empty gaps (so over many time buckets, most of them empty), in
// both directions and with several page sizes: each message exactly once,
// in order, no hole.
func testMessagesPagingWalk(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	noise := mkConv(t, b, group(groupID(2), me, at(0), me))
	// Clusters of messages: (start offset, count, spacing).
	clusters := []struct {
		start   time.Duration
		n       int
		spacing time.Duration
	}{
		{0, 120, 37 * time.Second},                 // busy first day
		{20 * time.Hour, 60, 3 * time.Minute},      // crosses midnight into day 2
		{17 * 24 * time.Hour, 1, 0},                // a lone message after a 2-week gap
		{17*24*time.Hour + time.Millisecond, 1, 0}, // and its neighbour
		{45 * 24 * time.Hour, 100, 7 * time.Hour},  // one a few hours for a month
		{400 * 24 * time.Hour, 98, time.Millisecond},
		{3 * 365 * 24 * time.Hour, 120, 13 * time.Minute}, // years later
	}
	var all []chat.Message
	for ci, cl := range clusters {
		for k := range cl.n {
			sender := me
			if k%3 == 0 {
				sender = other
			}
			all = append(all, msg(c.ID, idAt(at(cl.start+time.Duration(k)*cl.spacing), ci), sender))
		}
	}
	if len(all) != 500 {
		t.Fatalf("fixture has %d messages, want 500", len(all))
	}
	// Messages in another conversation, in the same times, must not leak in.
	var others []chat.Message
	for i := 0; i < len(all); i += 5 {
		others = append(others, msg(noise.ID, all[i].ID+100, me))
	}
	shuffled := append(slices.Clone(all), others...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	saveBatches(t, b, shuffled, 100)

	// Small pages put a cursor on nearly every message and bucket edge;
	// every cursor position is also checked by MessagesPagingBoundaries.
	for _, limit := range []int{3, 7, 50, 200, 499, 500, 501} {
		checkMessages(t, fmt.Sprintf("walk backward, limit %d", limit), walkBackward(t, b, c.ID, limit), reversed(all))
		checkMessages(t, fmt.Sprintf("walk forward, limit %d", limit), walkForward(t, b, c.ID, 1, limit), all)
	}
	// Cursors inside the gaps and at their edges.
	gapCursors := []chat.ID{
		chat.FirstID(at(10 * 24 * time.Hour)),      // inside the 2-week gap
		chat.FirstID(at(17 * 24 * time.Hour)),      // just before the lone message
		chat.FirstID(at(17*24*time.Hour)) + 3,      // just after it
		chat.FirstID(at(200 * 24 * time.Hour)),     // inside a long gap
		chat.FirstID(at(2 * 365 * 24 * time.Hour)), // a year before the last cluster
		chat.FirstID(at(10 * 365 * 24 * time.Hour)),
		chat.FirstID(at(-24 * time.Hour)),
	}
	for _, cur := range gapCursors {
		for _, limit := range []int{1, 3, 100} {
			checkPage(t, b, c.ID, all, chat.Page{Before: cur, Limit: limit})
			checkPage(t, b, c.ID, all, chat.Page{After: cur, Limit: limit})
		}
	}
	// Walks that start from the middle of history.
	mid := all[250].ID
	var older, newer []chat.Message
	for _, m := range all {
		if m.ID < mid {
			older = append(older, m)
		} else if m.ID > mid {
			newer = append(newer, m)
		}
	}
	p := chat.Page{Before: mid, Limit: 33}
	var seen []chat.Message
	for {
		m, more := page(t, b, c.ID, p)
		seen = append(seen, m...)
		if !more || len(m) == 0 {
			break
		}
		p.Before = m[len(m)-1].ID
	}
	checkMessages(t, "walk backward from the middle", seen, reversed(older))
	checkMessages(t, "walk forward from the middle", walkForward(t, b, c.ID, mid, 33), newer)
}

// testMessagesBucketBoundaries stores messages on both sides of day, month
// and year boundaries and years apart, then checks every page against the
// model. Backends that partition history by time must find them all.
func testMessagesBucketBoundaries(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, chat.Epoch, me))
	midnight := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	times := []time.Time{
		chat.Epoch.Add(time.Millisecond),                 // the first millisecond of IDs
		chat.Epoch.Add(24*time.Hour - time.Millisecond),  // the end of the first day
		chat.Epoch.Add(24 * time.Hour),                   // the start of the second
		midnight.Add(-time.Millisecond),                  // the last of 2025
		midnight,                                         // the first of 2026
		midnight.Add(time.Millisecond),                   //
		midnight.Add(10*24*time.Hour - time.Millisecond), // either side of a 10-day multiple
		midnight.Add(10 * 24 * time.Hour),                //
		time.Date(2026, 2, 28, 23, 59, 59, 999e6, time.UTC),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), // a leap day
		time.Date(2031, 7, 15, 8, 30, 0, 0, time.UTC),
		time.Date(2049, 12, 31, 23, 59, 59, 999e6, time.UTC),
		time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2090, 6, 1, 0, 0, 0, 0, time.UTC), // near the end of the ID range
	}
	var all []chat.Message
	for i, tm := range times {
		all = append(all, msg(c.ID, idAt(tm, 0), me))
		if i%3 == 0 {
			all = append(all, msg(c.ID, idAt(tm, 4095), me)) // the same millisecond
		}
	}
	for _, m := range all {
		if !m.SentAt.Equal(m.ID.Time()) || m.ID.Time().Before(chat.Epoch) {
			t.Fatalf("fixture: ID %d has time %v", m.ID, m.ID.Time())
		}
	}
	// Oldest and newest first, then the rest in two batches.
	save(t, b, all[0], all[len(all)-1])
	save(t, b, all[1:len(all)/2]...)
	save(t, b, all[len(all)/2:len(all)-1]...)

	for _, limit := range []int{1, 2, 5, 100} {
		checkMessages(t, fmt.Sprintf("walk backward, limit %d", limit), walkBackward(t, b, c.ID, limit), reversed(all))
		checkMessages(t, fmt.Sprintf("walk forward, limit %d", limit), walkForward(t, b, c.ID, 1, limit), all)
	}
	for _, limit := range []int{1, 3} {
		for _, cur := range cursors(all) {
			checkPage(t, b, c.ID, all, chat.Page{Before: cur, Limit: limit})
			checkPage(t, b, c.ID, all, chat.Page{After: cur, Limit: limit})
		}
	}
	e := summaryOf(t, list(t, b, me, 10), c.ID)
	if e.LastMessage == nil || e.LastMessage.ID != all[len(all)-1].ID {
		t.Errorf("last message %+v, want ID %d", e.LastMessage, all[len(all)-1].ID)
	}
}

// testMessagesInvalidPage relies on an assumption store.go does not spell
// out: a Page that breaks its documented rules (both cursors set, or a
// Limit under 1) is refused with ErrInvalid rather than guessed at.
func testMessagesInvalidPage(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	save(t, b, msg(c.ID, idAt(at(time.Minute), 0), me))
	for _, p := range []chat.Page{
		{Before: idAt(at(time.Hour), 0), After: 1, Limit: 10},
		{Limit: 0},
		{Limit: -1},
		{Before: idAt(at(time.Hour), 0), Limit: 0},
	} {
		if m, _, err := b.Messages(ctx, c.ID, p); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("Messages(%+v) = %v, %v; want ErrInvalid", p, msgIDs(m), err)
		}
	}
}

func testMarkRead(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	var all []chat.Message
	for i := range 5 {
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), other))
	}
	save(t, b, all...)
	steps := []struct {
		to        chat.ID
		wantMark  chat.ID
		wantMoved bool
	}{
		{all[1].ID, all[1].ID, true},
		{all[1].ID, all[1].ID, false}, // the same again
		{all[0].ID, all[1].ID, false}, // backward
		{all[3].ID, all[3].ID, true},
		{all[2].ID + 1, all[3].ID, false},
		{all[3].ID + 1, all[3].ID + 1, true}, // a mark need not be a message ID
		{all[4].ID, all[4].ID, true},
		{1, all[4].ID, false},
	}
	for _, s := range steps {
		mark, moved, err := b.MarkRead(ctx, c.ID, me, s.to)
		if err != nil {
			t.Fatalf("MarkRead(%d): %v", s.to, err)
		}
		if mark != s.wantMark || moved != s.wantMoved {
			t.Errorf("MarkRead(%d) = %d, %v; want %d, %v", s.to, mark, moved, s.wantMark, s.wantMoved)
		}
		if e := summaryOf(t, list(t, b, me, 10), c.ID); e.LastRead != s.wantMark {
			t.Errorf("after MarkRead(%d), last read %d, want %d", s.to, e.LastRead, s.wantMark)
		}
	}
	// Marks are per user.
	if e := summaryOf(t, list(t, b, other, 10), c.ID); e.LastRead != 0 {
		t.Errorf("other's last read %d, want 0", e.LastRead)
	}
	mark, moved, err := b.MarkRead(ctx, c.ID, other, all[0].ID)
	if err != nil || mark != all[0].ID || !moved {
		t.Errorf("other's MarkRead = %d, %v, %v; want %d, true", mark, moved, err, all[0].ID)
	}
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.LastRead != all[4].ID {
		t.Errorf("my last read became %d after other's MarkRead, want %d", e.LastRead, all[4].ID)
	}
	// Marks survive members being added and the conversation being asked
	// for again.
	if _, _, err := b.AddMembers(ctx, c.ID, []chat.ID{me, userID(3)}, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.CreateConversation(ctx, group(groupID(1), me, at(0), me, other)); err != nil {
		t.Fatal(err)
	}
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.LastRead != all[4].ID {
		t.Errorf("last read %d after AddMembers and CreateConversation again, want %d", e.LastRead, all[4].ID)
	}
}

func testMarkReadConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	var all []chat.Message
	for i := range 40 {
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), other))
	}
	save(t, b, all...)
	const n = 20
	type result struct {
		mark  chat.ID
		moved bool
		err   error
	}
	res := make([]result, n)
	runConcurrently(n, func(i int) {
		// Goroutines mark different messages, in no particular order.
		to := all[(i*13)%len(all)].ID
		res[i].mark, res[i].moved, res[i].err = b.MarkRead(ctx, c.ID, me, to)
	})
	var maxMark chat.ID
	for i, r := range res {
		to := all[(i*13)%len(all)].ID
		maxMark = max(maxMark, to)
		if r.err != nil {
			t.Fatalf("goroutine %d: %v", i, r.err)
		}
		if r.mark < to {
			t.Errorf("goroutine %d: MarkRead(%d) returned the mark %d, behind the message", i, to, r.mark)
		}
		if r.moved && r.mark != to {
			t.Errorf("goroutine %d: MarkRead(%d) moved the mark to %d", i, to, r.mark)
		}
	}
	e := summaryOf(t, list(t, b, me, 10), c.ID)
	if e.LastRead != maxMark {
		t.Errorf("last read after concurrent marks %d, want the largest, %d", e.LastRead, maxMark)
	}
	mark, moved, err := b.MarkRead(ctx, c.ID, me, all[0].ID)
	if err != nil || mark != maxMark || moved {
		t.Errorf("MarkRead(oldest) = %d, %v, %v; want %d, false", mark, moved, err, maxMark)
	}
}

func testCloseTwice(t *testing.T, b store.Backend) {
	mkUser(t, b, 1, "billy")
	if err := b.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
