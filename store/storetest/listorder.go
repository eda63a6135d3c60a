package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// The conversation list across many conversations: newest activity first
// while messages move conversations, with ties within one second and one
// millisecond, joins to conversations with older messages, a member who
// left and a group past chat.MaxInlineMembers.

// listModel is what the list must say: each conversation's activity.
type listModel map[string]time.Time

// order is the list the model expects: activity newest first, ties by ID.
func (m listModel) order() []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := m[b].Compare(m[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return ids
}

// walkList pages through me's list with limit, checking each page's size.
func walkList(t *testing.T, b store.Backend, me chat.ID, limit int) []chat.Summary {
	t.Helper()
	var got []chat.Summary
	p := chat.ListPage{Limit: limit}
	for pages := 0; ; pages++ {
		if pages > 500 {
			t.Fatalf("limit %d: the walk does not end", limit)
		}
		s, more, err := b.ConversationPage(t.Context(), me, p)
		if err != nil {
			t.Fatalf("ConversationPage(%+v): %v", p, err)
		}
		if len(s) > limit {
			t.Fatalf("ConversationPage(%+v): %d entries", p, len(s))
		}
		got = append(got, s...)
		if !more {
			return got
		}
		if len(s) == 0 {
			t.Fatalf("ConversationPage(%+v): more without entries", p)
		}
		last := s[len(s)-1]
		p = chat.ListPage{Activity: last.Activity, Conversation: last.ID, Limit: limit}
	}
}

// checkList compares the whole list and walks with several page sizes
// against the model, activities included.
func checkList(t *testing.T, b store.Backend, me chat.ID, m listModel, what string) {
	t.Helper()
	want := m.order()
	for _, limit := range []int{1, 3, 7, len(want) - 1, len(want), 1000} {
		if limit < 1 {
			continue
		}
		got := walkList(t, b, me, limit)
		if !slices.Equal(summaryIDs(got), want) {
			t.Fatalf("%s, limit %d: walk = %v, want %v", what, limit, summaryIDs(got), want)
		}
		for _, s := range got {
			if !s.Activity.Equal(m[s.ID]) {
				t.Fatalf("%s, limit %d: %s has activity %v, want %v", what, limit, s.ID, s.Activity, m[s.ID])
			}
		}
	}
}

func testConversationListManyOrder(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	m := listModel{}
	const n = 40
	var convs []string
	for i := range n {
		// Created over a day, in an order unlike their IDs.
		created := at(-24*time.Hour + time.Duration((i*17)%n)*time.Minute)
		c := mkConv(t, b, group(groupID(100+i), me, created, me, other))
		convs = append(convs, c.ID)
		m[c.ID] = created
	}
	checkList(t, b, me, m, "created only")

	// Messages in rounds, several conversations per call, some in the same
	// second (different milliseconds) and some in the same millisecond.
	seq := 0
	send := func(tm time.Time, cs ...string) {
		var msgs []chat.Message
		for _, c := range cs {
			seq++
			msgs = append(msgs, msg(c, idAt(tm, seq), other))
			m[c] = tm
		}
		save(t, b, msgs...)
	}
	for i := 0; i < n; i += 3 {
		send(at(time.Duration(i)*time.Second), convs[i])
	}
	send(at(time.Hour), convs[1], convs[4], convs[7])             // one millisecond
	send(at(time.Hour+300*time.Millisecond), convs[10], convs[2]) // the same second
	send(at(time.Hour+700*time.Millisecond), convs[11])           //
	checkList(t, b, me, m, "after the first messages")

	// Conversations move to the top, one from the bottom; then an older
	// message arrives late and moves nothing.
	send(at(2*time.Hour), convs[39])
	send(at(2*time.Hour+time.Second), convs[0], convs[5])
	save(t, b, msg(convs[6], idAt(at(-48*time.Hour), 999), other))
	checkList(t, b, me, m, "after moves")

	// Joining a conversation with older messages: its place is its last
	// message; joining one without: the join time.
	old := mkConv(t, b, group(groupID(200), other, at(-72*time.Hour), other))
	save(t, b, msg(old.ID, idAt(at(-70*time.Hour), 1), other))
	empty := mkConv(t, b, group(groupID(201), other, at(-72*time.Hour), other))
	for _, c := range []string{old.ID, empty.ID} {
		if _, _, err := b.AddMembers(t.Context(), c, []chat.ID{me}, at(3*time.Hour)); err != nil {
			t.Fatalf("AddMembers: %v", err)
		}
	}
	m[old.ID] = at(-70 * time.Hour)
	m[empty.ID] = at(3 * time.Hour)
	checkList(t, b, me, m, "after joins")

	// Leaving: gone from the list, for good, also after new messages.
	if _, _, err := b.RemoveMember(t.Context(), convs[5], me); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	delete(m, convs[5])
	send(at(4*time.Hour), convs[5])
	delete(m, convs[5])
	checkList(t, b, me, m, "after leaving")

	// A group growing past chat.MaxInlineMembers keeps its place and
	// moves with its messages.
	var many []chat.ID
	for i := range chat.MaxInlineMembers + 5 {
		many = append(many, userID(1000+i))
	}
	if _, _, err := b.AddMembers(t.Context(), convs[20], many, at(5*time.Hour)); err != nil {
		t.Fatalf("AddMembers: %v", err)
	}
	checkList(t, b, me, m, "after a group grew big")
	send(at(6*time.Hour), convs[20])
	send(at(6*time.Hour+time.Second), convs[21])
	checkList(t, b, me, m, "after messages to the big group")

	// The other member sees the same conversations (but not the ones
	// only me joined).
	mo := listModel{}
	for id, tm := range m {
		if id != old.ID && id != empty.ID {
			mo[id] = tm
		}
	}
	mo[convs[5]] = at(4 * time.Hour)
	mo[old.ID] = at(-70 * time.Hour)
	mo[empty.ID] = at(-72 * time.Hour)
	checkList(t, b, other, mo, "the other member")
}
