package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// Helpers for changes: a change's ID is, as in the system, above the
// message's and from the same ID space.

func edit(m chat.Message, id chat.ID, body string) chat.Change {
	return chat.Change{ID: id, Conversation: m.Conversation, Kind: chat.EventEdit, MessageID: m.ID,
		User: m.Sender, At: id.Time(), ClientID: "e-" + id.String(), Body: body}
}

func del(m chat.Message, id chat.ID) chat.Change {
	return chat.Change{ID: id, Conversation: m.Conversation, Kind: chat.EventDelete, MessageID: m.ID, User: m.Sender, At: id.Time()}
}

func react(m chat.Message, id, user chat.ID, emoji string, on bool) chat.Change {
	return chat.Change{ID: id, Conversation: m.Conversation, Kind: chat.EventReact, MessageID: m.ID,
		User: user, At: id.Time(), Emoji: emoji, On: on}
}

func apply(t *testing.T, b store.Backend, cs ...chat.Change) {
	t.Helper()
	if err := b.ApplyChanges(t.Context(), cs); err != nil {
		t.Fatalf("ApplyChanges(%d): %v", len(cs), err)
	}
}

// lookup reads one message for viewer.
func lookup(t *testing.T, b store.Backend, m chat.Message, viewer chat.ID) chat.Message {
	t.Helper()
	got, err := b.Message(t.Context(), m.Conversation, m.ID, viewer)
	if err != nil {
		t.Fatalf("Message(%s, %d): %v", m.Conversation, m.ID, err)
	}
	return got
}

// checkOne checks m both through Message and through both history
// directions, so every read path dresses a message the same way.
func checkOne(t *testing.T, what string, b store.Backend, viewer chat.ID, want chat.Message) {
	t.Helper()
	checkMessages(t, what+" (Message)", []chat.Message{lookup(t, b, want, viewer)}, []chat.Message{want})
	for _, p := range []chat.Page{{Before: want.ID + 1, Limit: 1, Viewer: viewer}, {After: want.ID - 1, Limit: 1, Viewer: viewer}} {
		got, _ := page(t, b, want.Conversation, p)
		checkMessages(t, what+" (history)", got, []chat.Message{want})
	}
}

func testEditWinsInAnyOrder(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	save(t, b, m)
	e1 := edit(m, idAt(at(2*time.Second), 0), "first edit")
	e2 := edit(m, idAt(at(3*time.Second), 0), "second edit")
	apply(t, b, e2)
	apply(t, b, e1) // older, arriving later: loses
	want := m
	want.Body, want.EditedAt, want.Version = e2.Body, e2.At, e2.ID
	checkOne(t, "newest edit", b, me, want)
	apply(t, b, e2, e1, e2) // replays change nothing
	save(t, b, m)           // nor does a redelivered original
	checkOne(t, "after replays", b, me, want)
}

func testEditBeforeSave(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	e := edit(m, idAt(at(2*time.Second), 0), "edited before the original was stored")
	apply(t, b, e)
	save(t, b, m) // the original's first write must not beat the edit
	want := m
	want.Body, want.EditedAt, want.Version = e.Body, e.At, e.ID
	checkOne(t, "edit then save", b, me, want)
}

func testDeleteWinsOverEdits(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	save(t, b, m)
	apply(t, b, edit(m, idAt(at(2*time.Second), 0), "edited"), react(m, idAt(at(2*time.Second), 1), other, "👍", true))
	d := del(m, idAt(at(3*time.Second), 0))
	apply(t, b, d)
	// A later edit (two devices racing) and a replayed earlier one lose.
	apply(t, b, edit(m, idAt(at(4*time.Second), 0), "too late"), edit(m, idAt(at(2*time.Second), 0), "edited"))
	save(t, b, m)
	want := m
	// A deleted message's version is its deletion's: nothing after it
	// changed the message.
	want.Body, want.Deleted, want.Version = "", true, d.ID
	checkOne(t, "deleted", b, other, want)
	for _, v := range []chat.ID{me, other} {
		got := lookup(t, b, m, v)
		if got.Body != "" || len(got.Reactions) != 0 || !got.EditedAt.IsZero() {
			t.Errorf("deleted message for %d: body %q, reactions %v, edited %v", v, got.Body, got.Reactions, got.EditedAt)
		}
	}
	apply(t, b, d) // deleting again changes nothing
	checkOne(t, "deleted twice", b, other, want)
}

func testDeleteBeforeSave(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	d := del(m, idAt(at(2*time.Second), 0))
	apply(t, b, d)
	save(t, b, m)
	want := m
	want.Body, want.Deleted, want.Version = "", true, d.ID
	checkOne(t, "delete then save", b, me, want)
}

func testReactions(t *testing.T, b store.Backend) {
	u1, u2, u3 := userID(1), userID(2), userID(3)
	c := mkConv(t, b, group(groupID(1), u1, at(0), u1, u2, u3))
	m := msg(c.ID, idAt(at(time.Second), 0), u1)
	plain := msg(c.ID, idAt(at(time.Second), 1), u1)
	save(t, b, m, plain)
	id := func(n int) chat.ID { return idAt(at(2*time.Second), n) }
	apply(t, b,
		react(m, id(0), u1, "👍", true),
		react(m, id(1), u2, "👍", true),
		react(m, id(2), u1, "🎉", true),
		react(m, id(3), u3, "👍", true),
		react(m, id(4), u3, "👍", false), // taken back
	)
	// Emojis in byte order: 🎉 is F0 9F 8E 89, 👍 is F0 9F 91 8D.
	want := m
	want.Version = id(4)
	want.Reactions = []chat.Reaction{{Emoji: "🎉", Count: 1, Me: true}, {Emoji: "👍", Count: 2, Me: true}}
	checkOne(t, "for u1", b, u1, want)
	want.Reactions = []chat.Reaction{{Emoji: "🎉", Count: 1}, {Emoji: "👍", Count: 2, Me: true}}
	checkOne(t, "for u2", b, u2, want)
	want.Reactions = []chat.Reaction{{Emoji: "🎉", Count: 1}, {Emoji: "👍", Count: 2}}
	checkOne(t, "for u3", b, u3, want)
	checkOne(t, "an unchanged neighbour", b, u1, plain)
	// All taken back: no reactions, no rows a reader has to count.
	apply(t, b, react(m, id(5), u1, "👍", false), react(m, id(6), u2, "👍", false), react(m, id(7), u1, "🎉", false))
	want.Reactions, want.Version = nil, id(7)
	checkOne(t, "all taken back", b, u1, want)
}

func testReactionsToggleOrder(t *testing.T, b store.Backend) {
	u1 := userID(1)
	c := mkConv(t, b, group(groupID(1), u1, at(0), u1))
	m := msg(c.ID, idAt(at(time.Second), 0), u1)
	save(t, b, m)
	on := react(m, idAt(at(2*time.Second), 0), u1, "👍", true)
	off := react(m, idAt(at(3*time.Second), 0), u1, "👍", false)
	apply(t, b, off)
	apply(t, b, on) // older: the reaction stays off
	want := m
	want.Version = off.ID
	checkOne(t, "off wins", b, u1, want)
	again := react(m, idAt(at(4*time.Second), 0), u1, "👍", true)
	apply(t, b, again, on, off)
	want.Version = again.ID
	want.Reactions = []chat.Reaction{{Emoji: "👍", Count: 1, Me: true}}
	checkOne(t, "on again", b, u1, want)
}

func testReplies(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), me, at(0), me, other))
	orig := msg(c.ID, idAt(at(time.Second), 0), other)
	reply := msg(c.ID, idAt(at(2*time.Second), 0), me)
	reply.ReplyTo = orig.ID
	dangling := msg(c.ID, idAt(at(2*time.Second), 1), me)
	dangling.ReplyTo = idAt(at(time.Second), 7) // never stored: no quote
	save(t, b, orig, reply, dangling)
	want := reply
	want.Reply = &chat.Quote{ID: orig.ID, Sender: other, Body: orig.Body}
	checkOne(t, "reply", b, me, want)
	checkOne(t, "reply to nothing", b, me, dangling)

	e := edit(orig, idAt(at(3*time.Second), 0), "the original, edited")
	apply(t, b, e)
	want.Reply.Body = e.Body
	checkOne(t, "reply to an edited message", b, me, want)
	apply(t, b, del(orig, idAt(at(4*time.Second), 0)))
	want.Reply = &chat.Quote{ID: orig.ID, Sender: other, Deleted: true}
	checkOne(t, "reply to a deleted message", b, me, want)
}

func testMessageLookup(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	save(t, b, m)
	checkMessages(t, "lookup", []chat.Message{lookup(t, b, m, me)}, []chat.Message{m})
	for _, q := range []struct {
		conv string
		id   chat.ID
	}{{c.ID, m.ID + 1}, {groupID(2), m.ID}} {
		if _, err := b.Message(t.Context(), q.conv, q.id, me); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Message(%s, %d) = %v, want ErrNotFound", q.conv, q.id, err)
		}
	}
}

func changes(t *testing.T, b store.Backend, conv string, p chat.Page) ([]chat.Change, bool) {
	t.Helper()
	cs, more, err := b.Changes(t.Context(), conv, p)
	if err != nil {
		t.Fatalf("Changes(%s, %+v): %v", conv, p, err)
	}
	return cs, more
}

func changeIDs(cs []chat.Change) []chat.ID {
	ids := make([]chat.ID, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func testChangesLog(t *testing.T, b store.Backend) {
	u1, u2 := userID(1), userID(2)
	c := mkConv(t, b, group(groupID(1), u1, at(0), u1, u2))
	other := mkConv(t, b, group(groupID(2), u1, at(0), u1, u2))
	m1 := msg(c.ID, idAt(at(time.Second), 0), u1)
	m2 := msg(c.ID, idAt(at(time.Second), 1), u2)
	save(t, b, m1, m2, msg(other.ID, idAt(at(time.Second), 2), u1))
	id := func(n int) chat.ID { return idAt(at(2*time.Second), n) }
	cs := []chat.Change{
		edit(m1, id(0), "m1 edited"),
		react(m2, id(1), u1, "👍", true),
		edit(m1, id(2), "m1 edited again"),
		del(m2, id(3)),
		react(m1, id(4), u2, "🎉", true),
	}
	apply(t, b, cs[3], cs[1], cs[4], cs[0], cs[2]) // any order
	apply(t, b, react(msg(other.ID, idAt(at(time.Second), 2), u1), id(9), u1, "👍", true))

	all, more := changes(t, b, c.ID, chat.Page{After: 1, Limit: 100, Viewer: u2})
	// m2 changed last at id(3), m1 at id(4): each appears once, at its newest.
	if got := changeIDs(all); more || len(got) != 2 || got[0] != id(3) || got[1] != id(4) {
		t.Fatalf("all changes: %v more %v, want [%d %d] false", got, more, id(3), id(4))
	}
	wantM1 := m1
	wantM1.Body, wantM1.EditedAt, wantM1.Version = "m1 edited again", id(2).Time(), id(4)
	wantM1.Reactions = []chat.Reaction{{Emoji: "🎉", Count: 1, Me: true}}
	wantM2 := m2
	wantM2.Body, wantM2.Deleted, wantM2.Version = "", true, id(3)
	if all[0].Message == nil || all[1].Message == nil || all[0].Kind != chat.EventDelete || all[1].Kind != chat.EventReact ||
		all[1].User != u2 || all[1].Emoji != "🎉" || !all[1].On {
		t.Fatalf("changes: %+v", all)
	}
	checkMessages(t, "changed messages", []chat.Message{*all[0].Message, *all[1].Message}, []chat.Message{wantM2, wantM1})

	// Paging: after each change, exactly what follows it.
	var walked []chat.ID
	p := chat.Page{After: 1, Limit: 2, Viewer: u1}
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("no end of changes")
		}
		page, more := changes(t, b, c.ID, p)
		walked = append(walked, changeIDs(page)...)
		if !more {
			break
		}
		p.After = page[len(page)-1].ID
	}
	// Pages of two: {0,1} {2,3} {4}: within a page the newest per message.
	if len(walked) != 5 || walked[0] != id(0) || walked[4] != id(4) {
		t.Errorf("walked %v", walked)
	}
	if page, more := changes(t, b, c.ID, chat.Page{After: id(4), Limit: 10}); len(page) != 0 || more {
		t.Errorf("after the last change: %v %v", changeIDs(page), more)
	}
	if page, _ := changes(t, b, c.ID, chat.Page{After: id(2), Limit: 10}); len(page) != 2 || page[0].ID != id(3) {
		t.Errorf("after id(2): %v", changeIDs(page))
	}
	if page, _ := changes(t, b, groupID(3), chat.Page{After: 1, Limit: 10}); len(page) != 0 {
		t.Errorf("unknown conversation: %v", changeIDs(page))
	}
}

func testChangesAcrossBuckets(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	save(t, b, m)
	// Changes 40 and 400 days apart: several buckets of any width in days,
	// with empty buckets between.
	var want []chat.ID
	for i, d := range []time.Duration{time.Hour, 40 * 24 * time.Hour, 400 * 24 * time.Hour} {
		r := react(m, idAt(at(d), 0), me, []string{"👍", "🎉", "❤️"}[i], true)
		apply(t, b, r)
		want = append(want, r.ID)
	}
	var got []chat.ID
	p := chat.Page{After: 1, Limit: 1}
	for i := 0; i < 10; i++ {
		page, more := changes(t, b, c.ID, p)
		got = append(got, changeIDs(page)...)
		if !more {
			break
		}
		p.After = page[len(page)-1].ID
	}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("changes across buckets: %v, want %v", got, want)
	}
	if page, _ := changes(t, b, c.ID, chat.Page{After: want[1], Limit: 5}); len(page) != 1 || page[0].ID != want[2] {
		t.Errorf("after the middle: %v", changeIDs(page))
	}
}

func testChangesInvalid(t *testing.T, b store.Backend) {
	me := userID(1)
	c := mkConv(t, b, group(groupID(1), me, at(0), me))
	m := msg(c.ID, idAt(at(time.Second), 0), me)
	save(t, b, m)
	good := edit(m, idAt(at(2*time.Second), 0), "fine")
	bad := []chat.Change{
		{ID: idAt(at(2*time.Second), 1), Conversation: c.ID, Kind: "shout", MessageID: m.ID, User: me},
		react(m, idAt(at(2*time.Second), 2), me, "not an emoji", true),
		edit(m, idAt(at(2*time.Second), 3), "   "),
		edit(m, 0, "no id"),
	}
	for _, x := range bad {
		if err := b.ApplyChanges(t.Context(), []chat.Change{good, x}); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("ApplyChanges(%+v) = %v, want ErrInvalid", x, err)
		}
	}
	checkOne(t, "unchanged after refused changes", b, me, m)
	if _, _, err := b.Changes(t.Context(), c.ID, chat.Page{After: 1, Limit: 0}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Changes with limit 0 = %v, want ErrInvalid", err)
	}
}

func testConversationsLastMessageDeleted(t *testing.T, b store.Backend) {
	me, other := userID(1), userID(2)
	c := mkConv(t, b, direct(me, other, at(0)))
	first := msg(c.ID, idAt(at(time.Second), 0), me)
	last := msg(c.ID, idAt(at(time.Second), 1), me)
	save(t, b, first, last)
	apply(t, b, del(last, idAt(at(2*time.Second), 0)))
	list, err := b.Conversations(t.Context(), other, 10)
	if err != nil || len(list) != 1 || list[0].LastMessage == nil {
		t.Fatalf("Conversations: %+v %v", list, err)
	}
	if lm := list[0].LastMessage; lm.ID != last.ID || lm.Body != "" || !lm.Deleted {
		t.Errorf("last message after its deletion: %+v", lm)
	}
	// A newer message replaces it as usual.
	newer := msg(c.ID, idAt(at(3*time.Second), 0), other)
	save(t, b, newer)
	list, _ = b.Conversations(t.Context(), other, 10)
	if lm := list[0].LastMessage; lm == nil || lm.ID != newer.ID || lm.Body != newer.Body || lm.Deleted {
		t.Errorf("last message after a newer one: %+v", lm)
	}
}
