package bolt

import (
	"testing"
	"time"

	"github.com/chatcluster/chat"
	bbolt "go.etcd.io/bbolt"
)

func unreadIn(t *testing.T, b *Backend, user chat.ID, conv string) int {
	t.Helper()
	list, err := b.Conversations(t.Context(), user, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.ID == conv {
			return s.Unread
		}
	}
	t.Fatalf("conversation %s not listed", conv)
	return 0
}

// TestUnreadIsArithmetic: the list's unread count comes from the counters,
// not from the messages: deleting messages behind the backend's back does
// not change it (a scan would), and a membership kept from before the
// counters is counted by a scan until its next read mark rebases it.
func TestUnreadIsArithmetic(t *testing.T) {
	b := openTemp(t)
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
	if n := unreadIn(t, b, me, c.ID); n != 20 {
		t.Fatalf("unread %d, want 20 (bob's)", n)
	}
	if _, _, err := b.MarkRead(ctx, c.ID, me, msgs[14].ID); err != nil {
		t.Fatal(err)
	}
	// After message 14: 15..29, of which 15, 18, 21, 24, 27 are mine.
	if n := unreadIn(t, b, me, c.ID); n != 10 {
		t.Fatalf("unread after the mark %d, want 10", n)
	}
	// Remove five of bob's newest messages without telling the counters.
	err = b.db.Update(func(tx *bbolt.Tx) error {
		for _, m := range []int{29, 28, 26, 25, 23} {
			if err := tx.Bucket(bucketMessages).Delete(convKey(c.ID, msgs[m].ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := unreadIn(t, b, me, c.ID); n != 10 {
		t.Errorf("unread %d after deleting messages behind its back, want 10: it was counted by a scan", n)
	}
	// A membership from before the counters: counted by a scan (5 of bob's
	// left after the mark), then rebased by a read mark.
	err = b.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMembers).Put(convKey(c.ID, me), encodeMembership(membership{lastRead: msgs[14].ID, joinedAt: base}))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := unreadIn(t, b, me, c.ID); n != 5 {
		t.Errorf("legacy membership: unread %d, want 5 by a scan", n)
	}
	if _, _, err := b.MarkRead(ctx, c.ID, me, msgs[16].ID); err != nil {
		t.Fatal(err)
	}
	if n := unreadIn(t, b, me, c.ID); n != 4 { // 17, 19, 20, 22 (23 and up but 24, 27 deleted or mine)
		t.Errorf("rebased membership: unread %d, want 4", n)
	}
}
