package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

func testCreateConversation(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := []chat.ID{userID(5), userID(1), userID(3), userID(2)}

	// Members come back ascending and without duplicates.
	g := group(groupID(1), u[0], at(time.Minute), u[0], u[1], u[2], u[1], u[3])
	got, created, err := b.CreateConversation(ctx, g)
	if err != nil || !created {
		t.Fatalf("CreateConversation(group) = %v, %v; want created", created, err)
	}
	want := g
	want.Members = []chat.ID{userID(1), userID(2), userID(3), userID(5)}
	if d := diffConv(got, want); d != "" {
		t.Errorf("CreateConversation(group) returned: %s", d)
	}
	if d := diffConv(getConv(t, b, g.ID), want); d != "" {
		t.Errorf("Conversation(group): %s", d)
	}

	// A direct conversation, asked for by the member with the larger ID.
	d := direct(u[0], u[1], at(2*time.Minute))
	d.CreatedBy = u[0]
	wantD := d
	wantD.Members = []chat.ID{userID(1), userID(5)}
	gotD := mkConv(t, b, d)
	if diff := diffConv(gotD, wantD); diff != "" {
		t.Errorf("CreateConversation(direct) returned: %s", diff)
	}
	if diff := diffConv(getConv(t, b, d.ID), wantD); diff != "" {
		t.Errorf("Conversation(direct): %s", diff)
	}

	// Conversation IDs that are prefixes of each other stay apart.
	for _, id := range []string{"1", "12", "123", "1-2", "1-23"} {
		c := group(id, u[2], at(3*time.Minute), u[2])
		if id == "1-2" || id == "1-23" {
			a, bb, _ := chat.DirectMembers(id)
			c = direct(a, bb, at(3*time.Minute))
		}
		mkConv(t, b, c)
	}
	for _, id := range []string{"1", "12", "123"} {
		c := getConv(t, b, id)
		if c.ID != id || !slices.Equal(c.Members, []chat.ID{u[2]}) || c.Title != "group "+id {
			t.Errorf("Conversation(%s) = %+v", id, c)
		}
	}
	if c := getConv(t, b, "1-2"); !slices.Equal(c.Members, []chat.ID{1, 2}) || c.Kind != chat.Direct {
		t.Errorf("Conversation(1-2) = %+v", c)
	}
	if c := getConv(t, b, "1-23"); !slices.Equal(c.Members, []chat.ID{1, 23}) {
		t.Errorf("Conversation(1-23) = %+v", c)
	}
}

func testCreateConversationIdempotent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	a, c, e := userID(1), userID(2), userID(3)
	first := mkConv(t, b, group(groupID(1), a, at(0), a, c))

	// Same ID, different everything else: the first stays and comes back.
	second := group(groupID(1), e, at(time.Hour), e)
	second.Title = "another title"
	got, created, err := b.CreateConversation(ctx, second)
	if err != nil {
		t.Fatalf("second CreateConversation: %v", err)
	}
	if created {
		t.Errorf("second CreateConversation: created = true")
	}
	if d := diffConv(got, first); d != "" {
		t.Errorf("second CreateConversation returned: %s", d)
	}
	if d := diffConv(getConv(t, b, first.ID), first); d != "" {
		t.Errorf("Conversation after the second create: %s", d)
	}
	// The second call's would-be member was not added.
	if s := list(t, b, e, 10); len(s) != 0 {
		t.Errorf("Conversations(%d) = %v, want none", e, summaryIDs(s))
	}

	// The same for a direct conversation, asked for from either side.
	d1 := mkConv(t, b, direct(a, c, at(time.Minute)))
	other := direct(c, a, at(2*time.Minute))
	other.CreatedBy = c
	got, created, err = b.CreateConversation(ctx, other)
	if err != nil || created {
		t.Fatalf("CreateConversation(direct) from the other side = %v, %v; want not created", created, err)
	}
	if d := diffConv(got, d1); d != "" {
		t.Errorf("CreateConversation(direct) from the other side returned: %s", d)
	}

	// An existing conversation with members added since comes back as it is now.
	if _, _, err := b.AddMembers(ctx, first.ID, []chat.ID{e}, at(3*time.Minute)); err != nil {
		t.Fatalf("AddMembers: %v", err)
	}
	got, created, err = b.CreateConversation(ctx, group(groupID(1), a, at(0), a, c))
	if err != nil || created {
		t.Fatalf("third CreateConversation = %v, %v; want not created", created, err)
	}
	if !slices.Equal(got.Members, []chat.ID{a, c, e}) {
		t.Errorf("third CreateConversation: members %v, want %v", got.Members, []chat.ID{a, c, e})
	}
}

func testCreateConversationConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	const n = 20
	type result struct {
		c       chat.Conversation
		created bool
		err     error
	}
	res := make([]result, n)
	runConcurrently(n, func(i int) {
		// Every caller proposes a different conversation under one ID.
		c := group(groupID(7), userID(i), at(time.Duration(i)*time.Second), userID(i), userID(100))
		c.Title = fmt.Sprintf("title %d", i)
		res[i].c, res[i].created, res[i].err = b.CreateConversation(ctx, c)
	})
	winner := -1
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("goroutine %d: %v", i, r.err)
		}
		if r.created {
			if winner >= 0 {
				t.Errorf("goroutines %d and %d both created the conversation", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no goroutine created the conversation")
	}
	want := group(groupID(7), userID(winner), at(time.Duration(winner)*time.Second), sortedIDs([]chat.ID{userID(winner), userID(100)})...)
	want.Title = fmt.Sprintf("title %d", winner)
	for i, r := range res {
		if d := diffConv(r.c, want); d != "" {
			t.Errorf("goroutine %d got a conversation other than the winner's (%d): %s", i, winner, d)
		}
	}
	if d := diffConv(getConv(t, b, want.ID), want); d != "" {
		t.Errorf("stored conversation is not the winner's (%d): %s", winner, d)
	}
	// Only the winner's members joined.
	for i := range n {
		s := list(t, b, userID(i), 10)
		if member := i == winner; member != (len(s) == 1) {
			t.Errorf("user %d (winner %d) has conversations %v", i, winner, summaryIDs(s))
		}
	}
}

func testConversationNotFound(t *testing.T, b store.Backend) {
	ctx := t.Context()
	mkConv(t, b, group(groupID(1), userID(1), at(0), userID(1)))
	for _, id := range []string{groupID(2), "1", chat.DirectID(userID(1), userID(2))} {
		if c, err := b.Conversation(ctx, id); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Conversation(%s) = %+v, %v; want ErrNotFound", id, c, err)
		}
		if _, _, err := b.AddMembers(ctx, id, []chat.ID{userID(1)}, at(time.Minute)); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("AddMembers(%s): err = %v, want ErrNotFound", id, err)
		}
		// A refused AddMembers adds nothing.
		if _, err := b.Conversation(ctx, id); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Conversation(%s) after a refused AddMembers: err = %v, want ErrNotFound", id, err)
		}
	}
	if s := list(t, b, userID(1), 10); len(s) != 1 || s[0].ID != groupID(1) {
		t.Errorf("Conversations after refused AddMembers = %v, want [%s]", summaryIDs(s), groupID(1))
	}
}

func testAddMembers(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := func(i int) chat.ID { return userID(i) }
	c := mkConv(t, b, group(groupID(1), u(5), at(0), u(5), u(3)))

	check := func(what string, add []chat.ID, wantAdded, wantMembers []chat.ID) {
		t.Helper()
		got, added, err := b.AddMembers(ctx, c.ID, add, at(time.Hour))
		if err != nil {
			t.Fatalf("%s: AddMembers(%v): %v", what, add, err)
		}
		if !slices.Equal(sortedIDs(added), wantAdded) {
			t.Errorf("%s: AddMembers(%v) added %v, want %v", what, add, added, wantAdded)
		}
		want := c
		want.Members = wantMembers
		if d := diffConv(got, want); d != "" {
			t.Errorf("%s: AddMembers(%v) returned: %s", what, add, d)
		}
		if d := diffConv(getConv(t, b, c.ID), want); d != "" {
			t.Errorf("%s: Conversation after AddMembers(%v): %s", what, add, d)
		}
	}
	check("new members", []chat.ID{u(9), u(1)}, []chat.ID{u(1), u(9)}, []chat.ID{u(1), u(3), u(5), u(9)})
	check("again", []chat.ID{u(9), u(1)}, nil, []chat.ID{u(1), u(3), u(5), u(9)})
	check("existing and new", []chat.ID{u(3), u(4), u(5), u(4)}, []chat.ID{u(4)}, []chat.ID{u(1), u(3), u(4), u(5), u(9)})
	check("only existing", []chat.ID{u(5)}, nil, []chat.ID{u(1), u(3), u(4), u(5), u(9)})
	check("nobody", nil, nil, []chat.ID{u(1), u(3), u(4), u(5), u(9)})

	// An added member sees the conversation, joined when it was added; adding
	// again does not move the join time.
	if _, _, err := b.AddMembers(ctx, c.ID, []chat.ID{u(4)}, at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	s := list(t, b, u(4), 10)
	if len(s) != 1 || s[0].ID != c.ID {
		t.Fatalf("Conversations(new member) = %v, want [%s]", summaryIDs(s), c.ID)
	}
	if !s[0].Activity.Equal(at(time.Hour)) {
		t.Errorf("new member's activity %v, want its join time %v", s[0].Activity, at(time.Hour))
	}
	// The creator joined when the conversation was created.
	if s := list(t, b, u(5), 10); len(s) != 1 || !s[0].Activity.Equal(at(0)) {
		t.Errorf("creator's list = %+v, want one entry with activity %v", s, at(0))
	}
}

func testAddMembersConcurrent(t *testing.T, b store.Backend) {
	ctx := t.Context()
	c := mkConv(t, b, group(groupID(1), userID(0), at(0), userID(0)))
	const n = 10
	added := make([][]chat.ID, n)
	errs := make([]error, n)
	runConcurrently(n, func(i int) {
		_, added[i], errs[i] = b.AddMembers(ctx, c.ID, []chat.ID{userID(i + 1)}, at(time.Minute))
	})
	want := []chat.ID{userID(0)}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !slices.Equal(added[i], []chat.ID{userID(i + 1)}) {
			t.Errorf("goroutine %d added %v, want [%d]", i, added[i], userID(i+1))
		}
		want = append(want, userID(i+1))
	}
	if got := getConv(t, b, c.ID); !slices.Equal(got.Members, want) {
		t.Errorf("members after concurrent adds %v, want %v", got.Members, want)
	}
}

// testLargeGroup creates a group of 1,000 members (the protocol's default
// cap) in one call, adds 200 more in one call, and saves 1,000 messages in
// one call: backends that split writes into batches must do so right.
func testLargeGroup(t *testing.T, b store.Backend) {
	ctx := t.Context()
	const n, more = 1000, 200
	order := rand.New(rand.NewPCG(5, 6)).Perm(n + more)
	ids := make([]chat.ID, len(order))
	for i, k := range order {
		ids[i] = userID(k)
	}
	g := group(groupID(1), ids[0], at(0), ids[:n]...)
	got := mkConv(t, b, g)
	want := sortedIDs(ids[:n])
	if !slices.Equal(got.Members, want) {
		t.Fatalf("CreateConversation returned %d members, want the %d given, ascending", len(got.Members), n)
	}
	c, added, err := b.AddMembers(ctx, g.ID, ids[n:], at(time.Hour))
	if err != nil {
		t.Fatalf("AddMembers(%d users): %v", more, err)
	}
	if !slices.Equal(sortedIDs(added), sortedIDs(ids[n:])) {
		t.Errorf("AddMembers added %d users, want %d", len(added), more)
	}
	want = sortedIDs(ids)
	if !slices.Equal(c.Members, want) {
		t.Errorf("AddMembers returned %d members, want %d ascending", len(c.Members), len(want))
	}
	if c := getConv(t, b, g.ID); !slices.Equal(c.Members, want) {
		t.Errorf("Conversation has %d members, want %d ascending", len(c.Members), len(want))
	}
	var msgs []chat.Message
	for i := range n {
		msgs = append(msgs, msg(g.ID, idAt(at(time.Duration(i)*time.Minute), 0), ids[i%len(ids)]))
	}
	save(t, b, msgs...)
	checkMessages(t, "1,000 messages saved in one call", walkBackward(t, b, g.ID, 200), reversed(msgs))
	// A few members, from both calls, see the group with its last message
	// and its member count (a group this big lists no members inline:
	// store.go's ConversationPage).
	for _, u := range []chat.ID{ids[0], ids[n-1], ids[n], ids[n+more-1], want[0], want[len(want)-1]} {
		e := summaryOf(t, list(t, b, u, 10), g.ID)
		if e.LastMessage == nil || e.LastMessage.ID != msgs[n-1].ID || e.MemberCount != len(want) || e.Members != nil {
			t.Errorf("user %d: last message %v, count %d, %d members inline", u, e.LastMessage, e.MemberCount, len(e.Members))
		}
	}
}

func testConversationsEmpty(t *testing.T, b store.Backend) {
	if s := list(t, b, userID(1), 10); len(s) != 0 {
		t.Errorf("Conversations on an empty store = %v", summaryIDs(s))
	}
	mkConv(t, b, group(groupID(1), userID(2), at(0), userID(2), userID(3)))
	if s := list(t, b, userID(1), 10); len(s) != 0 {
		t.Errorf("Conversations(non-member) = %v, want none", summaryIDs(s))
	}
}

func testConversationsActivityOrder(t *testing.T, b store.Backend) {
	ctx := t.Context()
	me, other := userID(1), userID(2)
	// Activity is the newest message's time, else when the user joined.
	//   c1: created at 0, a message at 5h          -> 5h
	//   c2: created at 1h, no messages             -> 1h
	//   c3: created at 0 without me, I join at 4h  -> 4h
	//   c4: created at 2h, messages at 3h and 6h   -> 6h
	//   c5: direct, created at 30m, a message at 7h from me -> 7h
	//   c6: created at 3h30m, no messages          -> 3h30m
	c1 := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	c2 := mkConv(t, b, group(groupID(2), other, at(time.Hour), other, me))
	c3 := mkConv(t, b, group(groupID(3), other, at(0), other))
	c4 := mkConv(t, b, group(groupID(4), me, at(2*time.Hour), me, other))
	c5 := mkConv(t, b, direct(me, other, at(30*time.Minute)))
	c6 := mkConv(t, b, group(groupID(6), me, at(3*time.Hour+30*time.Minute), me))
	if _, _, err := b.AddMembers(ctx, c3.ID, []chat.ID{me}, at(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	save(t, b,
		msg(c4.ID, idAt(at(6*time.Hour), 0), other),
		msg(c1.ID, idAt(at(5*time.Hour), 0), other),
	)
	save(t, b,
		msg(c4.ID, idAt(at(3*time.Hour), 0), other),
		msg(c5.ID, idAt(at(7*time.Hour), 0), me),
	)
	s := list(t, b, me, 100)
	wantOrder := []string{c5.ID, c4.ID, c1.ID, c3.ID, c6.ID, c2.ID}
	wantActivity := []time.Time{at(7 * time.Hour), at(6 * time.Hour), at(5 * time.Hour), at(4 * time.Hour), at(3*time.Hour + 30*time.Minute), at(time.Hour)}
	if !slices.Equal(summaryIDs(s), wantOrder) {
		t.Fatalf("Conversations order = %v, want %v", summaryIDs(s), wantOrder)
	}
	for i := range s {
		if !s[i].Activity.Equal(wantActivity[i]) {
			t.Errorf("%s: activity %v, want %v", s[i].ID, s[i].Activity, wantActivity[i])
		}
		if d := diffConv(s[i].Conversation, getConv(t, b, s[i].ID)); d != "" {
			t.Errorf("%s: summary's conversation differs from Conversation(): %s", s[i].ID, d)
		}
	}

	// A new message moves a conversation to the front; an older one does not.
	save(t, b, msg(c2.ID, idAt(at(8*time.Hour), 0), other), msg(c6.ID, idAt(at(time.Minute), 0), me))
	s = list(t, b, me, 100)
	wantOrder = []string{c2.ID, c5.ID, c4.ID, c1.ID, c3.ID, c6.ID}
	if !slices.Equal(summaryIDs(s), wantOrder) {
		t.Fatalf("Conversations order after new messages = %v, want %v", summaryIDs(s), wantOrder)
	}
	// c6's only message is older than my joining: activity is still the
	// newest message's time, as documented.
	if e := summaryOf(t, s, c6.ID); !e.Activity.Equal(at(time.Minute)) {
		t.Errorf("c6 activity %v, want its message's time %v", e.Activity, at(time.Minute))
	}

	// The other member's list holds only its conversations, in its own order.
	s = list(t, b, other, 100)
	wantOrder = []string{c2.ID, c5.ID, c4.ID, c1.ID, c3.ID}
	if !slices.Equal(summaryIDs(s), wantOrder) {
		t.Errorf("other's Conversations = %v, want %v", summaryIDs(s), wantOrder)
	}
	if e := summaryOf(t, s, c3.ID); !e.Activity.Equal(at(0)) {
		t.Errorf("other's c3 activity %v, want %v", e.Activity, at(0))
	}
}

func testConversationsLimit(t *testing.T, b store.Backend) {
	me := userID(1)
	const n = 12
	var want []string // most recent first
	for i := range n {
		// Conversation i's activity is i hours: for odd i its creation, for
		// even i a message in it (it was created long before).
		if i%2 == 1 {
			c := mkConv(t, b, group(groupID(i), me, at(time.Duration(i)*time.Hour), me))
			want = append([]string{c.ID}, want...)
			continue
		}
		c := mkConv(t, b, group(groupID(i), me, at(-time.Duration(100+i)*time.Hour), me))
		save(t, b, msg(c.ID, idAt(at(time.Duration(i)*time.Hour), 1), me))
		want = append([]string{c.ID}, want...)
	}
	// Older conversations, created out of order, without messages.
	for _, i := range []int{3, 1, 2} {
		mkConv(t, b, group(groupID(100+i), me, at(-time.Duration(1000*i)*time.Hour), me))
	}
	want = append(want, groupID(101), groupID(102), groupID(103))
	// Another user's conversations never show.
	mkConv(t, b, group(groupID(200), userID(2), at(50*time.Hour), userID(2)))
	for _, limit := range []int{1, 2, 5, n - 1, n, n + 2, n + 3, 1000} {
		s := list(t, b, me, limit)
		w := want[:min(limit, len(want))]
		if !slices.Equal(summaryIDs(s), w) {
			t.Errorf("Conversations(limit %d) = %v, want %v", limit, summaryIDs(s), w)
		}
	}
}

func testConversationsLastMessage(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.LastMessage != nil || e.Unread != 0 || e.LastRead != 0 {
		t.Errorf("a conversation without messages: last message %+v, unread %d, last read %d", e.LastMessage, e.Unread, e.LastRead)
	}
	m1 := msg(c.ID, idAt(at(time.Hour), 0), other)
	m1.Body = "first ✓"
	m2 := msg(c.ID, idAt(at(time.Hour), 1), me)
	m2.Body = "second"
	save(t, b, m1)
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.LastMessage == nil || diffMessage(*e.LastMessage, m1) != "" {
		t.Errorf("last message %+v, want %+v", e.LastMessage, m1)
	}
	save(t, b, m2)
	for _, u := range []chat.ID{me, other} {
		e := summaryOf(t, list(t, b, u, 10), c.ID)
		if e.LastMessage == nil {
			t.Fatalf("user %d: no last message", u)
		}
		if d := diffMessage(*e.LastMessage, m2); d != "" {
			t.Errorf("user %d: last message: %s", u, d)
		}
	}
	// An older message arriving late does not replace the last message.
	late := msg(c.ID, idAt(at(30*time.Minute), 0), other)
	save(t, b, late)
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.LastMessage == nil || e.LastMessage.ID != m2.ID {
		t.Errorf("after a late older message, last message %+v, want ID %d", e.LastMessage, m2.ID)
	}
}

func testConversationsUnread(t *testing.T, b store.Backend) { unreadCase(t, b, plain) }

// testConversationsUnreadNumbered is ConversationsUnread with the numbers
// the gateway stamps on messages (chat.Number).
func testConversationsUnreadNumbered(t *testing.T, b store.Backend) {
	unreadCase(t, b, numbering{}.apply)
}

func unreadCase(t *testing.T, b store.Backend, number func([]chat.Message) []chat.Message) {
	ctx := t.Context()
	me, bob, eve := userID(1), userID(2), userID(3)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, bob, eve))
	quiet := mkConv(t, b, group(groupID(2), me, at(0), me, bob))
	// Messages at minutes 1..10: bob at odd minutes, me at even ones, eve at 10.
	var all []chat.Message
	for i := 1; i <= 10; i++ {
		sender := bob
		if i%2 == 0 {
			sender = me
		}
		if i == 10 {
			sender = eve
		}
		all = append(all, msg(c.ID, idAt(at(time.Duration(i)*time.Minute), 0), sender))
	}
	all = number(all)
	save(t, b, all...)
	unread := func(u chat.ID, conv string) (int, chat.ID) {
		t.Helper()
		e := summaryOf(t, list(t, b, u, 10), conv)
		return e.Unread, e.LastRead
	}
	// Never read: every message from others counts (5 from bob, 1 from eve);
	// my own never do.
	if n, mark := unread(me, c.ID); n != 6 || mark != 0 {
		t.Errorf("never read: unread %d, last read %d; want 6, 0", n, mark)
	}
	if n, _ := unread(bob, c.ID); n != 5 {
		t.Errorf("bob: unread %d, want 5 (my 4 and eve's 1)", n)
	}
	if n, _ := unread(me, quiet.ID); n != 0 {
		t.Errorf("conversation without messages: unread %d, want 0", n)
	}
	cases := []struct {
		mark chat.ID
		want int
	}{
		{all[0].ID, 5},     // minute 1 read: bob at 3,5,7,9 and eve at 10
		{all[2].ID - 1, 5}, // a mark between messages: still 3,5,7,9,10
		{all[2].ID, 4},
		{all[5].ID, 3}, // a mark on my own message
		{all[8].ID, 1},
		{all[9].ID, 0},
	}
	for _, cs := range cases {
		if _, _, err := b.MarkRead(ctx, c.ID, me, cs.mark); err != nil {
			t.Fatalf("MarkRead(%d): %v", cs.mark, err)
		}
		if n, mark := unread(me, c.ID); n != cs.want || mark != cs.mark {
			t.Errorf("read up to %d: unread %d, last read %d; want %d, %d", cs.mark, n, mark, cs.want, cs.mark)
		}
	}
	// New messages after the mark count again, own ones still not.
	save(t, b, number([]chat.Message{msg(c.ID, idAt(at(20*time.Minute), 0), me), msg(c.ID, idAt(at(21*time.Minute), 0), bob)})...)
	if n, _ := unread(me, c.ID); n != 1 {
		t.Errorf("after new messages: unread %d, want 1", n)
	}
	// Bob's mark is his own; mine did not move it.
	if n, mark := unread(bob, c.ID); n != 6 || mark != 0 {
		t.Errorf("bob: unread %d, last read %d; want 6, 0", n, mark)
	}
}

func testConversationsUnreadCap(t *testing.T, b store.Backend) { unreadCapCase(t, b, plain) }

func testConversationsUnreadCapNumbered(t *testing.T, b store.Backend) {
	unreadCapCase(t, b, numbering{}.apply)
}

func unreadCapCase(t *testing.T, b store.Backend, number func([]chat.Message) []chat.Message) {
	ctx := t.Context()
	me, bob := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, bob))
	// UnreadCap+5 messages from bob, spread over several days, and some of
	// mine among them.
	var msgs []chat.Message
	for i := range chat.UnreadCap + 5 {
		msgs = append(msgs, msg(c.ID, idAt(at(time.Duration(i)*7*time.Minute), 0), bob))
		if i%100 == 0 {
			msgs = append(msgs, msg(c.ID, idAt(at(time.Duration(i)*7*time.Minute), 1), me))
		}
	}
	msgs = number(msgs)
	saveBatches(t, b, msgs, 250)
	if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != chat.UnreadCap {
		t.Errorf("never read with %d unread: unread %d, want the cap %d", chat.UnreadCap+5, e.Unread, chat.UnreadCap)
	}
	// msgs is bob0, me0, bob1, ..., bob99, bob100, me100, ...: msgs[k] is
	// bob's (k-1)-th for k in 1..100 (msgs[0] is bob's first).
	for _, cs := range []struct {
		mark chat.ID
		want int
	}{
		{msgs[5].ID, chat.UnreadCap},      // bob0..bob4 read: exactly the cap left
		{msgs[6].ID, chat.UnreadCap - 1},  // one under the cap: exact
		{msgs[10].ID, chat.UnreadCap - 5}, // bob0..bob9 read
		{msgs[2].ID, chat.UnreadCap - 5},  // a backward mark changes nothing
	} {
		if _, _, err := b.MarkRead(ctx, c.ID, me, cs.mark); err != nil {
			t.Fatalf("MarkRead(%d): %v", cs.mark, err)
		}
		if e := summaryOf(t, list(t, b, me, 10), c.ID); e.Unread != cs.want {
			t.Errorf("after MarkRead(%d): unread %d, want %d", cs.mark, e.Unread, cs.want)
		}
	}
}
