package cassandra

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/chatcluster/chat"
)

// reads counts the queries and rows a backend reads (SELECTs), through
// gocql's query observer; those that count unread messages (unread.go,
// a bounded read or two per listed entry) apart.
type reads struct {
	queries, rows atomic.Int64
	unread        atomic.Int64
	mu            sync.Mutex
	stmts         []string
}

func (r *reads) ObserveQuery(_ context.Context, q gocql.ObservedQuery) {
	if !strings.HasPrefix(strings.TrimSpace(q.Statement), "SELECT") {
		return
	}
	for _, t := range []string{"FROM messages ", "FROM own_messages ", "FROM conversation_buckets "} {
		if strings.Contains(q.Statement, t) {
			r.unread.Add(1)
			return
		}
	}
	r.queries.Add(1)
	r.rows.Add(int64(q.Rows))
	r.mu.Lock()
	r.stmts = append(r.stmts, q.Statement)
	r.mu.Unlock()
}

var listBase = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

// manyConversations makes n groups of me and other, the i-th with one
// message at listBase+i seconds (the last is the newest), and returns
// their IDs newest first.
func manyConversations(t *testing.T, b *Backend, me, other chat.ID, n int) []string {
	t.Helper()
	ctx := t.Context()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%d", chat.FirstID(listBase.Add(-time.Hour))+chat.ID(i))
	}
	err := b.each(ctx, n, func(ctx context.Context, i int) error {
		_, _, err := b.CreateConversation(ctx, chat.Conversation{ID: ids[i], Kind: chat.Group, Title: "g", CreatedBy: me,
			CreatedAt: listBase.Add(-time.Hour), Members: []chat.ID{me, other}})
		return err
	})
	if err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	var msgs []chat.Message
	for i, c := range ids {
		id := chat.FirstID(listBase.Add(time.Duration(i)*time.Second)) + 1
		msgs = append(msgs, chat.Message{ID: id, Conversation: c, Sender: other, Body: "b", SentAt: id.Time(), ClientID: "c" + c})
	}
	for len(msgs) > 0 {
		k := min(200, len(msgs))
		if err := b.SaveMessages(ctx, msgs[:k]); err != nil {
			t.Fatalf("SaveMessages: %v", err)
		}
		msgs = msgs[k:]
	}
	slices.Reverse(ids)
	return ids
}

// TestConversationPageBoundedReads: for a user in 2,000 conversations, a
// page of 20 (the top, and one from a cursor in the middle) reads a
// bounded number of queries and rows, not the user's whole list.
func TestConversationPageBoundedReads(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	me, other := chat.ID(7001), chat.ID(7002)
	want := manyConversations(t, b, me, other, 2000)
	// The user's first read marks their rows complete (a new user's list
	// is written as it grows; see TestConversationListBeforeMigration).
	if _, _, err := b.ConversationPage(ctx, me, chat.ListPage{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	r := &reads{}
	b.observer = r
	top, more, err := b.ConversationPage(ctx, me, chat.ListPage{Limit: 20})
	b.observer = nil
	if err != nil || !more {
		t.Fatalf("ConversationPage: more %v, %v", more, err)
	}
	if got := summaryIDsOf(top); !slices.Equal(got, want[:20]) {
		t.Fatalf("top page = %v, want %v", got, want[:20])
	}
	// The mark, big groups, activity rows (one read of 27), the list
	// rows and conversation rows of those, members of 20: 6 queries and
	// 103 rows; the old list read 46 and 4,040. Unread counts: at most
	// two bounded reads per entry, whatever the list's size.
	const maxQueries, maxRows, maxUnread = 12, 200, 2 * 20
	t.Logf("the top page: %d queries, %d rows; %d for unread counts", r.queries.Load(), r.rows.Load(), r.unread.Load())
	if n := r.unread.Load(); n > maxUnread {
		t.Errorf("the top page read %d queries for unread counts, want at most %d", n, maxUnread)
	}
	if q, n := r.queries.Load(), r.rows.Load(); q > maxQueries || n > maxRows {
		t.Errorf("the top page read %d queries and %d rows, want at most %d and %d: %q", q, n, maxQueries, maxRows, r.stmts)
	}

	mid := top[len(top)-1]
	for range 50 { // to the middle of the list
		s, _, err := b.ConversationPage(ctx, me, chat.ListPage{Activity: mid.Activity, Conversation: mid.ID, Limit: 20})
		if err != nil || len(s) != 20 {
			t.Fatalf("ConversationPage: %d entries, %v", len(s), err)
		}
		mid = s[len(s)-1]
	}
	r = &reads{}
	b.observer = r
	s, more, err := b.ConversationPage(ctx, me, chat.ListPage{Activity: mid.Activity, Conversation: mid.ID, Limit: 20})
	b.observer = nil
	if err != nil || !more {
		t.Fatalf("ConversationPage: more %v, %v", more, err)
	}
	if got := summaryIDsOf(s); !slices.Equal(got, want[1020:1040]) {
		t.Fatalf("page from the middle = %v, want %v", got, want[1020:1040])
	}
	if q, n := r.queries.Load(), r.rows.Load(); q > maxQueries || n > maxRows {
		t.Errorf("a page from the middle read %d queries and %d rows, want at most %d and %d: %q", q, n, maxQueries, maxRows, r.stmts)
	}
}

func summaryIDsOf(s []chat.Summary) []string {
	out := make([]string, len(s))
	for i, e := range s {
		out[i] = e.ID
	}
	return out
}

// TestConversationListBeforeMigration: a user whose conversations have no
// activity rows (made before migration 0010) still gets their whole list,
// in order, big groups included; the first read writes the rows and the
// mark, so the next reads are bounded.
func TestConversationListBeforeMigration(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	me, other := chat.ID(7001), chat.ID(7002)
	want := manyConversations(t, b, me, other, 30)
	members := []chat.ID{me}
	for i := range chat.MaxInlineMembers + 1 {
		members = append(members, chat.ID(9000+i))
	}
	bigID := fmt.Sprintf("%d", chat.FirstID(listBase.Add(-2*time.Hour)))
	if _, _, err := b.CreateConversation(ctx, chat.Conversation{ID: bigID, Kind: chat.Group, Title: "big", CreatedBy: me,
		CreatedAt: listBase.Add(15*time.Second + time.Millisecond), Members: members}); err != nil {
		t.Fatal(err)
	}
	want = slices.Insert(want, 30-16, bigID) // after the message at 15 s
	// Forget what 0010 wrote, as for a user from before it.
	for _, stmt := range []string{"TRUNCATE user_activity", "TRUNCATE user_big_groups", "TRUNCATE user_activity_ready"} {
		if err := env.admin.Query(stmt).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	p := chat.ListPage{Limit: 7}
	for {
		s, more, err := b.ConversationPage(ctx, me, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, summaryIDsOf(s)...)
		if !more {
			break
		}
		p = chat.ListPage{Activity: s[len(s)-1].Activity, Conversation: s[len(s)-1].ID, Limit: 7}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	var rows int
	if err := env.admin.Query(`SELECT COUNT(*) FROM user_activity WHERE user_id = ?`, int64(me)).Scan(&rows); err != nil || rows != 30 {
		t.Errorf("%d activity rows after the first read (%v), want 30", rows, err)
	}
	if err := env.admin.Query(`SELECT COUNT(*) FROM user_big_groups WHERE user_id = ?`, int64(me)).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d big group rows after the first read (%v), want 1", rows, err)
	}
}

// TestConversationListStaleRows: rows that no longer match (a member who
// left, an activity that moved without the row) are left out of the list
// and deleted by the read that meets them; a conversation whose current
// row is missing still appears when the read reaches an older row of it,
// and gets its row back.
func TestConversationListStaleRows(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	me, other := chat.ID(7001), chat.ID(7002)
	want := manyConversations(t, b, me, other, 10)
	if _, _, err := b.ConversationPage(ctx, me, chat.ListPage{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	// A row of a conversation me is not in, a stale row above the
	// current one, and a conversation whose current row is gone, with
	// only its join row left (a message racing a join: the message read
	// the members before the join, the join the conversation row before
	// the message).
	stale := []struct {
		slot time.Time
		conv string
	}{
		{listBase.Add(time.Hour), "12345"},
		{listBase.Add(time.Hour), want[5]},
		{listBase.Add(-time.Hour), want[3]},
	}
	for _, s := range stale {
		if err := env.admin.Query(`INSERT INTO user_activity (user_id, slot, conversation_id) VALUES (?, ?, ?)`, int64(me), s.slot, s.conv).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	missing := listBase.Add(time.Duration(9-3) * time.Second) // want[3]'s slot
	if err := env.admin.Query(`DELETE FROM user_activity WHERE user_id = ? AND slot = ? AND conversation_id = ?`, int64(me), missing, want[3]).Exec(); err != nil {
		t.Fatal(err)
	}
	s, more, err := b.ConversationPage(ctx, me, chat.ListPage{Limit: 100})
	if err != nil || more {
		t.Fatalf("ConversationPage: more %v, %v", more, err)
	}
	if got := summaryIDsOf(s); !slices.Equal(got, want) {
		t.Fatalf("list = %v, want %v", got, want)
	}
	var rows int
	if err := env.admin.Query(`SELECT COUNT(*) FROM user_activity WHERE user_id = ? AND slot = ?`, int64(me), listBase.Add(time.Hour)).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d stale rows left (%v), want 0", rows, err)
	}
	if err := env.admin.Query(`SELECT COUNT(*) FROM user_activity WHERE user_id = ? AND slot = ? AND conversation_id = ?`, int64(me), missing, want[3]).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("the missing row: %d rows (%v), want it written again", rows, err)
	}
}
