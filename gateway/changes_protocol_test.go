package gateway_test

import (
	"encoding/json"
	"testing"
)

// Protocol tests of messages that change: edit, delete, reply_to, react,
// and the changes request a reconnecting device catches up with.

// xMessage is a Message with the extension fields.
type xMessage struct {
	apiMessage
	ReplyTo string `json:"reply_to"`
	Reply   *struct {
		ID      string `json:"id"`
		Sender  string `json:"sender"`
		Body    string `json:"body"`
		Deleted bool   `json:"deleted"`
	} `json:"reply"`
	EditedAt  string `json:"edited_at"`
	Deleted   bool   `json:"deleted"`
	Reactions []struct {
		Emoji string `json:"emoji"`
		Count int    `json:"count"`
		Me    bool   `json:"me"`
	} `json:"reactions"`
	Version string `json:"version"`
}

type apiChange struct {
	ID           string    `json:"id"`
	Conversation string    `json:"conversation"`
	Kind         string    `json:"kind"`
	MessageID    string    `json:"message_id"`
	User         string    `json:"user"`
	At           string    `json:"at"`
	ClientID     string    `json:"client_id"`
	Body         string    `json:"body"`
	Emoji        string    `json:"emoji"`
	On           *bool     `json:"on"`
	Message      *xMessage `json:"message"`
}

// change makes a change request and returns the acked change.
func (c *wsClient) change(t testing.TB, req map[string]any) apiChange {
	t.Helper()
	id := nextID(req["type"].(string))
	req["id"] = id
	f := c.request(t, id, req)
	if f.Type != "ack" {
		t.Fatalf("%s: %v answered %s, want ack", c.name, req, f.Raw)
	}
	var a struct {
		Change apiChange `json:"change"`
	}
	f.decode(t, &a)
	checkChange(t, a.Change)
	return a.Change
}

func checkChange(t testing.TB, c apiChange) {
	t.Helper()
	id64(t, c.ID)
	id64(t, c.MessageID)
	if c.Conversation == "" || c.User == "" || !sentAtRE.MatchString(c.At) {
		t.Errorf("change lacks conversation, user or a well-formed at: %+v", c)
	}
	if c.Kind == "react" && c.On == nil {
		t.Errorf("reaction without on: %+v", c)
	}
}

// changeFrame waits for the live change frame of change id.
func (c *wsClient) changeFrame(t testing.TB, id string) apiChange {
	t.Helper()
	f := c.take(t, "change "+id, func(f frame) bool {
		if f.Type != "change" {
			return false
		}
		var ch struct {
			Change apiChange `json:"change"`
		}
		return json.Unmarshal(f.Raw, &ch) == nil && ch.Change.ID == id
	})
	var ch struct {
		Change apiChange `json:"change"`
	}
	f.decode(t, &ch)
	return ch.Change
}

// xHistory asks history and decodes the extension fields too.
func (c *wsClient) xHistory(t testing.TB, conv string, extra map[string]any) []xMessage {
	t.Helper()
	id := nextID("hist")
	req := map[string]any{"type": "history", "id": id, "conversation": conv}
	for k, v := range extra {
		req[k] = v
	}
	f := c.request(t, id, req)
	var p struct {
		Messages []xMessage `json:"messages"`
	}
	f.decode(t, &p)
	return p.Messages
}

func findX(t testing.TB, msgs []xMessage, id string) xMessage {
	t.Helper()
	for _, m := range msgs {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s not in %+v", id, msgs)
	return xMessage{}
}

// changesPage asks the changes request.
type changesPage struct {
	Conversation string          `json:"conversation"`
	Changes      []apiChange     `json:"changes"`
	NextAfter    json.RawMessage `json:"next_after"`
}

func (c *wsClient) changes(t testing.TB, conv string, extra map[string]any) changesPage {
	t.Helper()
	id := nextID("changes")
	req := map[string]any{"type": "changes", "id": id, "conversation": conv}
	for k, v := range extra {
		req[k] = v
	}
	f := c.request(t, id, req)
	if f.Type != "changes" {
		t.Fatalf("%s: changes answered %s", c.name, f.Raw)
	}
	var p changesPage
	f.decode(t, &p)
	if p.Conversation != conv || p.Changes == nil {
		t.Fatalf("changes page %s", f.Raw)
	}
	return p
}

func larger(a, b string) string {
	if len(a) != len(b) {
		if len(a) > len(b) {
			return a
		}
		return b
	}
	if a > b {
		return a
	}
	return b
}

func TestMessagesChange(t *testing.T) {
	e := newEnv(t)
	alice := e.signup(t, e.name("alice"), "")
	bob := e.signup(t, e.name("bob"), "")
	eve := e.signup(t, e.name("eve"), "")
	conv := e.direct(t, alice, bob.User.Username)
	a1, _ := e.dial(t, "alice-1", alice.Token)
	a2, _ := e.dial(t, "alice-2", alice.Token)
	b1, _ := e.dial(t, "bob-1", bob.Token)
	ev, _ := e.dial(t, "eve", eve.Token)
	m := a1.send(t, conv.ID, "m1", "helo wrld")
	b1.take(t, "message", ofType("message"))

	// Edit: acked, delivered to every connection of every member.
	ed := a1.change(t, map[string]any{"type": "edit", "conversation": conv.ID, "message_id": m.ID, "body": "hello world", "client_id": "e1"})
	if ed.Kind != "edit" || ed.Body != "hello world" || ed.MessageID != m.ID || ed.User != alice.User.ID || id64(t, ed.ID) <= id64(t, m.ID) {
		t.Fatalf("edit ack: %+v", ed)
	}
	for _, c := range []*wsClient{a1, a2, b1} {
		if got := c.changeFrame(t, ed.ID); got.Body != "hello world" || got.Kind != "edit" {
			t.Errorf("%s: change frame %+v", c.name, got)
		}
	}
	// A resend with the same client_id is the same change, not a second.
	again := a1.change(t, map[string]any{"type": "edit", "conversation": conv.ID, "message_id": m.ID, "body": "other", "client_id": "e1"})
	if again.ID != ed.ID || again.Body != "hello world" {
		t.Errorf("resent edit acked %+v, want the first %+v", again, ed)
	}
	b1.none(t, "a second change frame", ofType("change"))

	// Who may edit what.
	req := func(extra map[string]any) map[string]any {
		r := map[string]any{"type": "edit", "id": nextID("bad"), "conversation": conv.ID, "message_id": m.ID, "body": "x", "client_id": "e2"}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	for _, tc := range []struct {
		c    *wsClient
		req  map[string]any
		code string
	}{
		{b1, req(nil), "forbidden"},
		{ev, req(nil), "not_found"},
		{a1, req(map[string]any{"message_id": "12345"}), "not_found"},
		{a1, req(map[string]any{"message_id": "x"}), "bad_request"},
		{a1, req(map[string]any{"body": "  "}), "invalid_message"},
		{a1, req(map[string]any{"client_id": nil}), "invalid_message"},
		{b1, req(map[string]any{"type": "delete"}), "forbidden"},
		{a1, req(map[string]any{"type": "react", "emoji": "no"}), "invalid_message"},
		{a1, req(map[string]any{"type": "changes", "before": m.ID}), "bad_request"},
		{ev, req(map[string]any{"type": "changes"}), "not_found"},
	} {
		tc.c.errorFor(t, tc.req["id"].(string), tc.req, tc.code)
	}

	// History shows the edit.
	h := findX(t, b1.xHistory(t, conv.ID, nil), m.ID)
	if h.Body != "hello world" || !sentAtRE.MatchString(h.EditedAt) || h.Version != ed.ID || h.Deleted {
		t.Errorf("edited message in history: %+v", h)
	}

	// React toggles, per user per emoji.
	on := b1.change(t, map[string]any{"type": "react", "conversation": conv.ID, "message_id": m.ID, "emoji": "👍", "client_id": "r1"})
	off := b1.change(t, map[string]any{"type": "react", "conversation": conv.ID, "message_id": m.ID, "emoji": "👍", "client_id": "r2"})
	on2 := b1.change(t, map[string]any{"type": "react", "conversation": conv.ID, "message_id": m.ID, "emoji": "👍", "client_id": "r3"})
	if !*on.On || *off.On || !*on2.On || on.User != bob.User.ID {
		t.Errorf("toggles: %+v %+v %+v", on, off, on2)
	}
	a2.changeFrame(t, on2.ID)
	a1.change(t, map[string]any{"type": "react", "conversation": conv.ID, "message_id": m.ID, "emoji": "🎉"})
	hb := findX(t, b1.xHistory(t, conv.ID, nil), m.ID)
	ha := findX(t, a1.xHistory(t, conv.ID, nil), m.ID)
	if len(hb.Reactions) != 2 || hb.Reactions[0].Emoji != "🎉" || hb.Reactions[0].Me || hb.Reactions[1].Emoji != "👍" || hb.Reactions[1].Count != 1 || !hb.Reactions[1].Me {
		t.Errorf("reactions for bob: %+v", hb.Reactions)
	}
	if len(ha.Reactions) != 2 || !ha.Reactions[0].Me || ha.Reactions[1].Me {
		t.Errorf("reactions for alice: %+v", ha.Reactions)
	}

	// A reply quotes its original, live and in history.
	id := nextID("reply")
	f := b1.request(t, id, map[string]any{"type": "send", "id": id, "conversation": conv.ID, "client_id": "rep1", "body": "indeed", "reply_to": m.ID})
	var ack struct {
		Message xMessage `json:"message"`
	}
	f.decode(t, &ack)
	rep := ack.Message
	if rep.ReplyTo != m.ID || rep.Reply == nil || rep.Reply.Body != "hello world" || rep.Reply.Sender != alice.User.ID {
		t.Fatalf("reply ack %s", f.Raw)
	}
	live := a1.take(t, "the reply", func(f frame) bool { return f.Type == "message" && json.Valid(f.Raw) && contains(string(f.Raw), rep.ID) })
	var lm struct {
		Message xMessage `json:"message"`
	}
	live.decode(t, &lm)
	if lm.Message.Reply == nil || lm.Message.Reply.ID != m.ID {
		t.Errorf("live reply %s", live.Raw)
	}
	b1.errorFor(t, "r-bad", map[string]any{"type": "send", "id": "r-bad", "conversation": conv.ID, "client_id": "rep2", "body": "x", "reply_to": "999"}, "not_found")

	// Delete: for everyone, the body gone; edits and reactions refused after.
	del := a1.change(t, map[string]any{"type": "delete", "conversation": conv.ID, "message_id": m.ID})
	for _, c := range []*wsClient{a2, b1} {
		if got := c.changeFrame(t, del.ID); got.Kind != "delete" || got.MessageID != m.ID {
			t.Errorf("%s: delete frame %+v", c.name, got)
		}
	}
	hist := b1.xHistory(t, conv.ID, nil)
	if d := findX(t, hist, m.ID); !d.Deleted || d.Body != "" || len(d.Reactions) != 0 || d.Version != del.ID {
		t.Errorf("deleted message in history: %+v", d)
	}
	if r := findX(t, hist, rep.ID); r.Reply == nil || !r.Reply.Deleted || r.Reply.Body != "" {
		t.Errorf("reply to a deleted message: %+v", r.Reply)
	}
	a1.errorFor(t, "edit-deleted", map[string]any{"type": "edit", "id": "edit-deleted", "conversation": conv.ID, "message_id": m.ID, "body": "back", "client_id": "e9"}, "not_found")
	b1.errorFor(t, "react-deleted", map[string]any{"type": "react", "id": "react-deleted", "conversation": conv.ID, "message_id": m.ID, "emoji": "👍"}, "not_found")
	// The conversation list no longer holds the body either.
	for _, c := range e.conversations(t, bob) {
		if c.LastMessage != nil && c.LastMessage.ID == m.ID && c.LastMessage.Body != "" {
			t.Errorf("conversation list keeps a deleted body: %+v", c.LastMessage)
		}
	}
}

// TestOfflineDeviceCatchesUp: a device offline while old messages are
// edited, deleted and reacted to learns all of it on reconnect, with history
// after its newest ID (new messages) and changes after its change cursor.
func TestOfflineDeviceCatchesUp(t *testing.T) {
	e := newEnv(t)
	alice := e.signup(t, e.name("alice"), "")
	bob := e.signup(t, e.name("bob"), "")
	conv := e.group(t, alice, "team", bob.User.Username)
	a1, _ := e.dial(t, "alice", alice.Token)
	m1 := a1.send(t, conv.ID, "m1", "one")
	m2 := a1.send(t, conv.ID, "m2", "two")
	m3 := a1.send(t, conv.ID, "m3", "three")

	// Bob's phone syncs, then goes offline. Its cursor: the newest ID of
	// any message or change it received.
	phone, _ := e.dial(t, "bob-phone", bob.Token)
	var cursor string
	for _, m := range phone.xHistory(t, conv.ID, map[string]any{"after": "0"}) {
		cursor = larger(cursor, m.ID)
	}
	for _, c := range phone.changes(t, conv.ID, map[string]any{"after": "0"}).Changes {
		cursor = larger(cursor, c.ID)
	}
	if cursor != m3.ID {
		t.Fatalf("cursor %s, want %s", cursor, m3.ID)
	}
	phone.close()

	desk, _ := e.dial(t, "bob-desk", bob.Token)
	ed := a1.change(t, map[string]any{"type": "edit", "conversation": conv.ID, "message_id": m1.ID, "body": "one, edited", "client_id": "e"})
	del := a1.change(t, map[string]any{"type": "delete", "conversation": conv.ID, "message_id": m2.ID, "client_id": "d"})
	re := desk.change(t, map[string]any{"type": "react", "conversation": conv.ID, "message_id": m3.ID, "emoji": "❤️", "client_id": "r"})
	m4 := a1.send(t, conv.ID, "m4", "four")

	// The phone comes back.
	phone, _ = e.dial(t, "bob-phone-again", bob.Token)
	news := phone.xHistory(t, conv.ID, map[string]any{"after": cursor})
	if len(news) != 1 || news[0].ID != m4.ID {
		t.Fatalf("history after the cursor: %+v, want only %s", news, m4.ID)
	}
	// Changes one at a time, to walk the cursor as a client does.
	var got []apiChange
	after := cursor
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("changes never end")
		}
		p := phone.changes(t, conv.ID, map[string]any{"after": after, "limit": 1})
		got = append(got, p.Changes...)
		if string(p.NextAfter) == "null" {
			break
		}
		var n string
		if err := json.Unmarshal(p.NextAfter, &n); err != nil || n != p.Changes[len(p.Changes)-1].ID {
			t.Fatalf("next_after %s for %+v", p.NextAfter, p.Changes)
		}
		after = n
	}
	if len(got) != 3 || got[0].ID != ed.ID || got[1].ID != del.ID || got[2].ID != re.ID {
		t.Fatalf("changes after the cursor: %+v, want %s %s %s", got, ed.ID, del.ID, re.ID)
	}
	if m := got[0].Message; m == nil || m.ID != m1.ID || m.Body != "one, edited" || m.EditedAt == "" {
		t.Errorf("edited: %+v", m)
	}
	if m := got[1].Message; m == nil || m.ID != m2.ID || !m.Deleted || m.Body != "" {
		t.Errorf("deleted: %+v", m)
	}
	if m := got[2].Message; m == nil || m.ID != m3.ID || len(m.Reactions) != 1 || m.Reactions[0].Emoji != "❤️" || !m.Reactions[0].Me || m.Version != re.ID {
		t.Errorf("reacted: %+v", m)
	}
	// Caught up: nothing after the newest change.
	if p := phone.changes(t, conv.ID, map[string]any{"after": re.ID}); len(p.Changes) != 0 || string(p.NextAfter) != "null" {
		t.Errorf("after the newest change: %+v", p)
	}
	// Both cursors share one sequence: the change IDs lie between the
	// messages' IDs in stream order.
	if !(id64(t, m3.ID) < id64(t, ed.ID) && id64(t, re.ID) < id64(t, m4.ID)) {
		t.Errorf("IDs out of stream order: m3 %s, edit %s, react %s, m4 %s", m3.ID, ed.ID, re.ID, m4.ID)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
