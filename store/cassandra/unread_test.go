package cassandra

import (
	"testing"
	"time"

	"github.com/chatcluster/chat"
)

// TestUnreadFromNumbers: the list's unread count is arithmetic on message
// numbers, not a scan of messages: deleting messages behind the backend's
// back does not change it; a read mark from before numbering (no read_n)
// is counted by a scan until the next read mark, and so are messages
// without numbers.
func TestUnreadFromNumbers(t *testing.T) {
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
		msgs = append(msgs, chat.Message{ID: chat.FirstID(at), Conversation: c.ID, Sender: sender, Body: "x", SentAt: at, ClientID: "c",
			Number: chat.Number{N: uint64(i + 1), Base: chat.FirstID(base.Add(time.Minute))}})
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
	// A mark from before numbering: scanned (bob's 16, 17, 19, 20, 22, 23, 25 are left).
	// (The mark's cells carry the mark as their write timestamp.)
	if err := env.admin.Query(`DELETE read_n, read_n_base FROM user_conversations USING TIMESTAMP ? WHERE user_id = ? AND conversation_id = ?`,
		int64(msgs[14].ID)+1, int64(me), c.ID).Exec(); err != nil {
		t.Fatal(err)
	}
	if n := unread(); n != 7 {
		t.Errorf("a mark without a number: unread %d, want 7 by a scan", n)
	}
	// The next mark has its number again: arithmetic (bob's 16, 17, 19,
	// 20, 22, 23, 25, 26, 28, 29 are after it, 26, 28 and 29 deleted but
	// counted).
	if _, _, err := b.MarkRead(ctx, c.ID, me, msgs[15].ID); err != nil {
		t.Fatal(err)
	}
	if n := unread(); n != 10 {
		t.Errorf("unread after a new mark %d, want 10 from the numbers", n)
	}
	// A last message without a number (published before numbering): the
	// messages after the mark are read and counted (the three deleted ones
	// gone).
	if err := env.admin.Query(`DELETE last_n, last_n_base FROM conversations USING TIMESTAMP ? WHERE conversation_id = ?`,
		int64(msgs[29].ID)+1, c.ID).Exec(); err != nil {
		t.Fatal(err)
	}
	if n := unread(); n != 7 {
		t.Errorf("a last message without a number: unread %d, want 7 by a scan", n)
	}
}
