package cassandra

import (
	"testing"
	"time"

	"github.com/chatcluster/chat"
)

// TestUnreadFromCounters: the list's unread count is arithmetic on the
// counters, not a scan of messages: deleting messages behind the backend's
// back does not change it; a read mark from before the counters (no
// read_pos) is counted by a scan until the next read mark.
func TestUnreadFromCounters(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	me, bob := chat.FirstID(base)+1, chat.FirstID(base)+2
	c, _, err := b.CreateConversation(ctx, chat.Conversation{ID: "77", Kind: chat.Group, CreatedBy: me, CreatedAt: base, Members: []chat.ID{me, bob}})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []chat.Message
	for i := range 30 {
		at := base.Add(time.Duration(i+1) * time.Minute)
		sender := bob
		if i%3 == 0 {
			sender = me
		}
		msgs = append(msgs, chat.Message{ID: chat.FirstID(at), Conversation: c.ID, Sender: sender, Body: "x", SentAt: at, ClientID: "c"})
	}
	if err := b.SaveMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	// A redelivery counts nothing twice.
	if err := b.SaveMessages(ctx, msgs[20:]); err != nil {
		t.Fatal(err)
	}
	unread := func() int {
		t.Helper()
		list, err := b.Conversations(ctx, me, 10)
		if err != nil || len(list) != 1 {
			t.Fatalf("list %v %v", list, err)
		}
		return list[0].Unread
	}
	if n := unread(); n != 20 {
		t.Fatalf("unread %d, want 20 (bob's)", n)
	}
	if _, _, err := b.MarkRead(ctx, c.ID, me, msgs[14].ID); err != nil {
		t.Fatal(err)
	}
	if n := unread(); n != 10 {
		t.Fatalf("unread after the mark %d, want 10", n)
	}
	for _, i := range []int{29, 28, 26} {
		// Messages are written first-wins (firstWinsTimestamp): a delete
		// must carry a later timestamp than any of them.
		if err := env.admin.Query(`DELETE FROM messages USING TIMESTAMP ? WHERE conversation_id = ? AND bucket = ? AND message_id = ?`,
			firstWinsBase, c.ID, b.bucket(msgs[i].ID), int64(msgs[i].ID)).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	if msgs, _, err := b.Messages(ctx, c.ID, chat.Page{Limit: 100}); err != nil || len(msgs) != 27 {
		t.Fatalf("after deleting 3 of 30 messages: %d left (%v)", len(msgs), err)
	}
	if n := unread(); n != 10 {
		t.Errorf("unread %d after deleting messages behind its back, want 10: it was counted by a scan", n)
	}
	// A mark from before the counters: scanned (bob's 16, 17, 19, 20, 22, 23, 25 are left).
	// (The mark's cells carry the mark as their write timestamp.)
	if err := env.admin.Query(`DELETE read_pos, own_at_read FROM user_conversations USING TIMESTAMP ? WHERE user_id = ? AND conversation_id = ?`,
		int64(msgs[14].ID)+1, int64(me), c.ID).Exec(); err != nil {
		t.Fatal(err)
	}
	if n := unread(); n != 7 {
		t.Errorf("a mark without counters: unread %d, want 7 by a scan", n)
	}
}
