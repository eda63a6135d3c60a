package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// Big groups: paged members, a paged conversation list whose entries carry
// members only when small.

// testConversationPageWalk walks the list a page at a time, with the last
// entry of each page as the cursor, and must meet every conversation once,
// in the order of the whole list.
func testConversationPageWalk(t *testing.T, b store.Backend) {
	me := userID(1)
	var want []string // newest activity first
	for i := range 9 {
		// Activity i hours (creation or a message), two pairs tied on
		// activity to exercise the conversation-ID tie break.
		h := time.Duration(i/2*2) * time.Hour
		c := mkConv(t, b, group(groupID(i), me, at(-100*time.Hour), me))
		save(t, b, msg(c.ID, idAt(at(h), i), me))
		want = append(want, c.ID)
	}
	all := list(t, b, me, 100)
	if len(all) != len(want) {
		t.Fatalf("list has %d entries, want %d", len(all), len(want))
	}
	for _, limit := range []int{1, 2, 4, 9, 10} {
		var got []string
		p := chat.ListPage{Limit: limit}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: the walk does not end", limit)
			}
			s, more, err := b.ConversationPage(t.Context(), me, p)
			if err != nil {
				t.Fatalf("ConversationPage(%+v): %v", p, err)
			}
			if len(s) > limit {
				t.Fatalf("ConversationPage(%+v): %d entries", p, len(s))
			}
			got = append(got, summaryIDs(s)...)
			if !more {
				break
			}
			if len(s) == 0 {
				t.Fatalf("ConversationPage(%+v): more without entries", p)
			}
			last := s[len(s)-1]
			p = chat.ListPage{Activity: last.Activity, Conversation: last.ID, Limit: limit}
		}
		if !slices.Equal(got, summaryIDs(all)) {
			t.Errorf("limit %d: walk = %v, want %v", limit, got, summaryIDs(all))
		}
	}
	if _, _, err := b.ConversationPage(t.Context(), me, chat.ListPage{}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("ConversationPage(limit 0) = %v, want ErrInvalid", err)
	}
}

// testConversationPageInlineMembers: entries of conversations up to
// chat.MaxInlineMembers carry their members, bigger ones only a count.
func testConversationPageInlineMembers(t *testing.T, b store.Backend) {
	me := userID(1)
	small := []chat.ID{me}
	for i := 2; len(small) < chat.MaxInlineMembers; i++ {
		small = append(small, userID(i))
	}
	big := append(slices.Clone(small), userID(5000))
	cs := mkConv(t, b, group(groupID(1), me, at(time.Hour), small...))
	cb := mkConv(t, b, group(groupID(2), me, at(2*time.Hour), big...))
	s, more, err := b.ConversationPage(t.Context(), me, chat.ListPage{Limit: 10})
	if err != nil || more {
		t.Fatalf("ConversationPage: more %v, %v", more, err)
	}
	es, eb := summaryOf(t, s, cs.ID), summaryOf(t, s, cb.ID)
	if es.MemberCount != len(small) || !slices.Equal(es.Members, sortedCopy(small)) {
		t.Errorf("a conversation of %d: count %d, %d members", len(small), es.MemberCount, len(es.Members))
	}
	if eb.MemberCount != len(big) || eb.Members != nil {
		t.Errorf("a conversation of %d: count %d, %d members inline, want none", len(big), eb.MemberCount, len(eb.Members))
	}
	if c := getConv(t, b, cb.ID); c.MemberCount != len(big) || len(c.Members) != len(big) {
		t.Errorf("Conversation of %d: count %d, %d members", len(big), c.MemberCount, len(c.Members))
	}
}

// testMembersPaging pages through a group's members in ascending order.
func testMembersPaging(t *testing.T, b store.Backend) {
	me := userID(1)
	members := []chat.ID{me}
	for i := 2; i <= 250; i++ {
		members = append(members, userID(i*7))
	}
	c := mkConv(t, b, group(groupID(1), me, at(0), members...))
	want := sortedCopy(members)
	for _, limit := range []int{1, 100, 249, 250, 1000} {
		var got []chat.ID
		after := chat.ID(0)
		for pages := 0; ; pages++ {
			if pages > 300 {
				t.Fatalf("limit %d: the walk does not end", limit)
			}
			ids, more, err := b.Members(t.Context(), c.ID, after, limit)
			if err != nil {
				t.Fatalf("Members(after %d, %d): %v", after, limit, err)
			}
			if len(ids) > limit || (more && len(ids) == 0) {
				t.Fatalf("Members(after %d, %d): %d ids, more %v", after, limit, len(ids), more)
			}
			got = append(got, ids...)
			if !more {
				break
			}
			after = ids[len(ids)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: %d members walked, want %d in order", limit, len(got), len(want))
		}
	}
	if ids, more, err := b.Members(t.Context(), c.ID, want[len(want)-1], 10); err != nil || more || len(ids) != 0 {
		t.Errorf("Members after the last = %v %v %v", ids, more, err)
	}
	if _, _, err := b.Members(t.Context(), groupID(99), 0, 10); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("Members(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := b.Members(t.Context(), c.ID, 0, 0); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Members(limit 0) = %v, want ErrInvalid", err)
	}
}

func sortedCopy(ids []chat.ID) []chat.ID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// testRemoveMember: a member leaves; the conversation, its pages and the
// user's list no longer hold them; leaving again changes nothing; they may
// be added again.
func testRemoveMember(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me, bob, eve := userID(1), userID(2), userID(3)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, bob, eve))
	got, was, err := b.RemoveMember(ctx, c.ID, bob)
	if err != nil || !was {
		t.Fatalf("RemoveMember(bob) = %v, %v", was, err)
	}
	want := sortedCopy([]chat.ID{me, eve})
	if !slices.Equal(got.Members, want) || got.MemberCount != 2 {
		t.Errorf("after leaving: members %v, count %d; want %v", got.Members, got.MemberCount, want)
	}
	if c := getConv(t, b, c.ID); !slices.Equal(c.Members, want) {
		t.Errorf("Conversation after leaving: %v", c.Members)
	}
	if ids, _, err := b.Members(ctx, c.ID, 0, 10); err != nil || !slices.Equal(ids, want) {
		t.Errorf("Members after leaving: %v %v", ids, err)
	}
	if s := list(t, b, bob, 10); len(s) != 0 {
		t.Errorf("the leaver still lists %v", summaryIDs(s))
	}
	if _, was, err := b.RemoveMember(ctx, c.ID, bob); err != nil || was {
		t.Errorf("leaving again = %v, %v; want false, nil", was, err)
	}
	if _, _, err := b.RemoveMember(ctx, groupID(99), bob); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("RemoveMember(unknown) = %v, want ErrNotFound", err)
	}
	if _, added, err := b.AddMembers(ctx, c.ID, []chat.ID{bob}, at(time.Hour)); err != nil || !slices.Equal(added, []chat.ID{bob}) {
		t.Errorf("adding the leaver again: added %v, %v", added, err)
	}
	if s := list(t, b, bob, 10); len(s) != 1 {
		t.Errorf("added again: lists %v", summaryIDs(s))
	}
}
