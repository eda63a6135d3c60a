package storetest

import (
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// plain leaves messages without numbers, as records published before
// numbering existed.
func plain(msgs []chat.Message) []chat.Message { return msgs }

// numbering numbers messages as the gateway's publisher does (chat.Number):
// per conversation, in the order given (which must be ID order), a run
// starting at the conversation's first message.
type numbering map[string]chat.Number

func (nb numbering) apply(msgs []chat.Message) []chat.Message {
	out := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		n := nb[m.Conversation].Next(m.ID)
		nb[m.Conversation] = n
		m.Number = n
		out[i] = m
	}
	return out
}

// restart makes conv's next message start a new run, as after the stream
// lost the conversation (it lay quiet longer than the stream's MaxAge).
func (nb numbering) restart(conv string) { delete(nb, conv) }

// testConversationsUnreadRuns: a conversation's numbers restart (a new
// run) while a reader's mark is in the old one, and a reader who never read
// sees both runs; own messages in either run never count.
func testConversationsUnreadRuns(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me, bob := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, bob))
	nb := numbering{}
	// Run 1: bob at minutes 1..6, me at 7; run 2: bob at 101..104, me at
	// 102 (seq 1), bob at 105.
	var run1, run2 []chat.Message
	for i := 1; i <= 6; i++ {
		run1 = append(run1, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), bob))
	}
	run1 = append(run1, msg(c.ID, idAt(at(7*time.Minute), 0), me))
	run1 = nb.apply(run1)
	save(t, b, run1...)
	if _, _, err := b.MarkRead(ctx, c.ID, me, run1[2].ID); err != nil {
		t.Fatal(err)
	}
	nb.restart(c.ID)
	for i := 101; i <= 105; i++ {
		run2 = append(run2, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), bob))
		if i == 102 {
			run2 = append(run2, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 1), me))
		}
	}
	run2 = nb.apply(run2)
	if run2[0].Number != (chat.Number{N: 1, Base: run2[0].ID}) {
		t.Fatalf("run 2 starts at %+v", run2[0].Number)
	}
	save(t, b, run2...)
	// me: bob's 4..6 of run 1 (3) and his 5 of run 2.
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != 8 {
		t.Errorf("mark in the old run: unread %d, want 8", e.Unread)
	}
	// bob never read: my 1 of run 1 and my 1 of run 2.
	if e := summaryOf(t, list(t, b, bob, 10), c.ID); e.Unread != 2 {
		t.Errorf("never read across runs: unread %d, want 2", e.Unread)
	}
	// A mark in the new run, on my own message and then between messages.
	for _, cs := range []struct {
		mark chat.ID
		want int
	}{
		{run2[2].ID, 3},     // bob 101, 102 and my 102 read; 103..105 left
		{run2[3].ID - 1, 3}, // a mark just before bob's 103: nothing new read
		{run2[4].ID, 1},
		{run2[5].ID, 0},
	} {
		if _, _, err := b.MarkRead(ctx, c.ID, me, cs.mark); err != nil {
			t.Fatal(err)
		}
		if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != cs.want {
			t.Errorf("after MarkRead(%d): unread %d, want %d", cs.mark, e.Unread, cs.want)
		}
	}
}

// testSaveMessagesNumberedReplays: numbered messages replayed (a JetStream
// redelivery, a batch overlapping an earlier one, out of order) count once.
func testSaveMessagesNumberedReplays(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	var all []chat.Message
	for i := range 12 {
		sender := other
		if i%4 == 3 {
			sender = me
		}
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), sender))
	}
	all = numbering{}.apply(all)
	save(t, b, all[6:]...)
	save(t, b, all[:8]...)
	save(t, b, all...)
	save(t, b, reversed(all[2:10])...)
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != 9 {
		t.Errorf("me after replays: unread %d, want 9 (other's 9)", e.Unread)
	}
	if e := summaryOf(t, list(t, b, other, 10), c.ID); e.Unread != 3 {
		t.Errorf("other after replays: unread %d, want 3 (my 3)", e.Unread)
	}
	if _, _, err := b.MarkRead(t.Context(), c.ID, me, all[5].ID); err != nil {
		t.Fatal(err)
	}
	save(t, b, all...)
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != 4 {
		t.Errorf("me after a mark and another replay: unread %d, want 4", e.Unread)
	}
}
