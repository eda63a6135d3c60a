package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// clRaw is a bare WebSocket for the cluster's change scenario. Frames are
// taken by predicate: a frame read while waiting for another is kept for a
// later take, never dropped (a wait for an ack must not swallow the
// change frames that came before it).
type clRaw struct {
	name    string
	c       *websocket.Conn
	pending []map[string]any
}

func dialRawCluster(ctx context.Context, name, addr, token string) (*clRaw, error) {
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": []string{"Bearer " + token}},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", name, addr, err)
	}
	c.SetReadLimit(16 << 20)
	return &clRaw{name: name, c: c}, nil
}

func (r *clRaw) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := r.c.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("%s: write: %w", r.name, err)
	}
	return nil
}

// take returns the first frame, kept or new, for which match holds; the
// others stay kept in arrival order.
func (r *clRaw) take(ctx context.Context, what string, match func(map[string]any) bool) (map[string]any, error) {
	for i, f := range r.pending {
		if match(f) {
			r.pending = slices.Delete(r.pending, i, i+1)
			return f, nil
		}
	}
	for {
		_, b, err := r.c.Read(ctx)
		if err != nil {
			var errs []any
			for _, f := range r.pending {
				if f["type"] == "error" {
					errs = append(errs, f)
				}
			}
			return nil, fmt.Errorf("%s: waiting for %s: %w (kept unmatched: %d frames; errors among them: %v)", r.name, what, err, len(r.pending), errs)
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("%s: frame is not JSON: %s", r.name, b)
		}
		if match(f) {
			return f, nil
		}
		r.pending = append(r.pending, f)
	}
}

// request writes a request and takes its answer. An `unavailable` error
// (the store behind the stream on a loaded machine) is retried, as the
// protocol tells clients to: sends and changes with their same client_id.
func (r *clRaw) request(ctx context.Context, req map[string]any, answer string) (map[string]any, error) {
	id := req["id"]
	for try := 1; ; try++ {
		if err := r.write(ctx, req); err != nil {
			return nil, err
		}
		f, err := r.take(ctx, fmt.Sprintf("%s %v", answer, id), func(f map[string]any) bool {
			return (f["type"] == answer || f["type"] == "error") && f["id"] == id
		})
		if err != nil {
			return nil, err
		}
		if f["type"] == answer {
			return f, nil
		}
		if f["code"] != "unavailable" || try == 10 {
			return nil, fmt.Errorf("%s: %v answered %v", r.name, req, f)
		}
		t := time.NewTimer(200 * time.Millisecond) // a retry's pause, not synchronisation
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func frameIs(typ string, match func(map[string]any) bool) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["type"] == typ && match(f) }
}

func changeOf(kind, messageID string) func(map[string]any) bool {
	return frameIs("change", func(f map[string]any) bool {
		c, _ := f["change"].(map[string]any)
		return c["kind"] == kind && c["message_id"] == messageID
	})
}

func messageWith(messageID string) func(map[string]any) bool {
	return frameIs("message", func(f map[string]any) bool {
		m, _ := f["message"].(map[string]any)
		return m["id"] == messageID
	})
}

// clChMsg is a Message with the fields that change.
type clChMsg struct {
	ID        string `json:"id"`
	Body      string `json:"body"`
	Deleted   bool   `json:"deleted"`
	EditedAt  string `json:"edited_at"`
	ReplyTo   string `json:"reply_to"`
	Version   string `json:"version"`
	Reactions []struct {
		Emoji string `json:"emoji"`
		Count int    `json:"count"`
		Me    bool   `json:"me"`
	} `json:"reactions"`
	Reply *struct {
		ID      string `json:"id"`
		Body    string `json:"body"`
		Deleted bool   `json:"deleted"`
	} `json:"reply"`
}

func decodeMsg(v any) (clChMsg, error) {
	var m clChMsg
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

func idAbove(a, b string) bool { return parseID(a) > parseID(b) }

const (
	clFixed = "the first, fixed"
	clThumb = "👍"
	clParty = "🎉"
)

// checkChanged says what is wrong with the three messages as frank reads
// them once every change is in: m1 edited with 👍 ×2 (frank's among them)
// and 🎉 ×1, m2 deleted with no body and no reactions, m3 a reply to m1
// quoting its edited body.
func checkChanged(msgs map[string]clChMsg, m1, m2, m3 string) []string {
	var problems []string
	if m, ok := msgs[m1]; !ok {
		problems = append(problems, "the edited message is missing")
	} else {
		if m.Body != clFixed || m.EditedAt == "" || m.Deleted {
			problems = append(problems, fmt.Sprintf("edited message: body %q edited_at %q deleted %v", m.Body, m.EditedAt, m.Deleted))
		}
		got := map[string]string{}
		for _, r := range m.Reactions {
			got[r.Emoji] = fmt.Sprintf("%d me=%v", r.Count, r.Me)
		}
		if len(got) != 2 || got[clThumb] != "2 me=true" || got[clParty] != "1 me=false" {
			problems = append(problems, fmt.Sprintf("reactions %v, want 👍 2 me=true, 🎉 1 me=false", got))
		}
	}
	if m, ok := msgs[m2]; !ok {
		problems = append(problems, "the deleted message is missing")
	} else if !m.Deleted || m.Body != "" || len(m.Reactions) != 0 {
		problems = append(problems, fmt.Sprintf("deleted message: deleted %v body %q reactions %v", m.Deleted, m.Body, m.Reactions))
	}
	if m3 != "" {
		if m, ok := msgs[m3]; !ok {
			problems = append(problems, "the reply is missing")
		} else if m.ReplyTo != m1 || m.Reply == nil || m.Reply.ID != m1 || m.Reply.Body != clFixed {
			problems = append(problems, fmt.Sprintf("reply: reply_to %q quote %+v", m.ReplyTo, m.Reply))
		}
	}
	return problems
}

// clChangesScenario: erin (gw1) and frank (two devices, gw2) in a direct
// conversation of their own, which the row-count checks of the other
// scenarios leave out. Frank's laptop sees two messages and goes offline;
// then erin edits the first, deletes the second and reacts to the first,
// frank's phone reacts to it too, and erin sends a reply to the edited
// one. The phone, on the other gateway, gets each change live. The laptop
// reconnects to gw1 and catches up as docs/PROTOCOL.md says (history
// after= and changes after= its cursor); then history read through the
// store (Cassandra) shows the edited body, the deletion with no body and
// the reaction counts, and the messages table holds no deleted text. It
// returns the conversation's ID as soon as it has one.
func (e *clusterEnv) clChangesScenario(ctx context.Context, gwA, gwB *clNode, convID *string) error {
	var erin, frank clAccount
	for _, u := range []struct {
		name string
		gw   *clNode
		out  *clAccount
	}{{"erin", gwA, &erin}, {"frank", gwB, &frank}} {
		if code, body, err := e.api(u.gw.addr, "POST", "/signup", "", map[string]string{"username": u.name, "password": clPassword}, u.out); err != nil || code != http.StatusCreated {
			return fmt.Errorf("signup %s: %d %s %v", u.name, code, body, err)
		}
	}
	var cv clConv
	if code, body, err := e.api(gwA.addr, "POST", "/conversations/direct", erin.Token, map[string]string{"username": "frank"}, &cv); err != nil || code != http.StatusOK {
		return fmt.Errorf("direct conversation: %d %s %v", code, body, err)
	}
	*convID = cv.ID
	conns := map[string]*clRaw{}
	defer func() {
		for _, c := range conns {
			c.c.CloseNow()
		}
	}()
	open := func(name, addr, token string) (*clRaw, error) {
		c, err := dialRawCluster(ctx, name, addr, token)
		if err != nil {
			return nil, err
		}
		conns[name] = c
		if _, err := c.take(ctx, "hello", frameIs("hello", func(map[string]any) bool { return true })); err != nil {
			return nil, err
		}
		return c, nil
	}
	a, err := open("erin", gwA.addr, erin.Token)
	if err != nil {
		return err
	}
	phone, err := open("frank's phone", gwB.addr, frank.Token)
	if err != nil {
		return err
	}
	laptop, err := open("frank's laptop", gwB.addr, frank.Token)
	if err != nil {
		return err
	}

	send := func(n int, body, replyTo string) (string, error) {
		req := map[string]any{"type": "send", "id": fmt.Sprintf("s%d", n), "conversation": cv.ID, "client_id": fmt.Sprintf("erin-ch-%d", n), "body": body}
		if replyTo != "" {
			req["reply_to"] = replyTo
		}
		f, err := a.request(ctx, req, "ack")
		if err != nil {
			return "", err
		}
		m, _ := f["message"].(map[string]any)
		id, _ := m["id"].(string)
		if id == "" {
			return "", fmt.Errorf("ack without a message: %v", f)
		}
		return id, nil
	}
	m1, err := send(1, "the first, with a typo", "")
	if err != nil {
		return err
	}
	m2, err := send(2, "the second, soon deleted", "")
	if err != nil {
		return err
	}
	// The laptop sees both messages live, keeps its cursor (the largest ID
	// received) and goes offline.
	cursor := ""
	for _, id := range []string{m1, m2} {
		if _, err := laptop.take(ctx, "message "+id, messageWith(id)); err != nil {
			return err
		}
		if idAbove(id, cursor) {
			cursor = id
		}
	}
	laptop.c.Close(websocket.StatusNormalClosure, "going offline")
	delete(conns, "frank's laptop")

	// Changes to the old messages while the laptop is offline.
	type step struct {
		by   *clRaw
		req  map[string]any
		kind string
		msg  string
	}
	steps := []step{
		{a, map[string]any{"type": "edit", "id": "e1", "conversation": cv.ID, "message_id": m1, "body": clFixed, "client_id": "erin-e1"}, "edit", m1},
		{a, map[string]any{"type": "delete", "id": "d2", "conversation": cv.ID, "message_id": m2, "client_id": "erin-d2"}, "delete", m2},
		{phone, map[string]any{"type": "react", "id": "r1", "conversation": cv.ID, "message_id": m1, "emoji": clThumb, "client_id": "frank-r1"}, "react", m1},
		{a, map[string]any{"type": "react", "id": "r2", "conversation": cv.ID, "message_id": m1, "emoji": clThumb, "client_id": "erin-r2"}, "react", m1},
		{a, map[string]any{"type": "react", "id": "r3", "conversation": cv.ID, "message_id": m1, "emoji": clParty, "client_id": "erin-r3"}, "react", m1},
	}
	var changeIDs []string
	for _, s := range steps {
		f, err := s.by.request(ctx, s.req, "ack")
		if err != nil {
			return err
		}
		c, _ := f["change"].(map[string]any)
		id, _ := c["id"].(string)
		if c == nil || c["kind"] != s.kind || c["message_id"] != s.msg || id == "" {
			return fmt.Errorf("%s acked without its change: %v", s.kind, f)
		}
		if s.kind == "react" && c["on"] != true {
			return fmt.Errorf("react %v acked as taken back: %v", s.req["emoji"], f)
		}
		changeIDs = append(changeIDs, id)
	}
	m3, err := send(3, "answering the first", m1)
	if err != nil {
		return err
	}

	// The phone, on the other gateway, gets every change live, in stream
	// order (its own reaction's change frame included), and the reply.
	last := ""
	for i, s := range steps {
		f, err := phone.take(ctx, "live "+s.kind+" "+changeIDs[i], frameIs("change", func(f map[string]any) bool {
			c, _ := f["change"].(map[string]any)
			return c["id"] == changeIDs[i]
		}))
		if err != nil {
			return fmt.Errorf("live on the other gateway: %w", err)
		}
		c, _ := f["change"].(map[string]any)
		if c["kind"] != s.kind || c["message_id"] != s.msg {
			return fmt.Errorf("live change %s: %v, want %s of %s", changeIDs[i], c, s.kind, s.msg)
		}
		id := changeIDs[i]
		if !idAbove(id, last) {
			return fmt.Errorf("live change %s after %s: not in stream order", id, last)
		}
		last = id
	}
	f, err := phone.take(ctx, "live reply "+m3, messageWith(m3))
	if err != nil {
		return err
	}
	if reply, err := decodeMsg(f["message"]); err != nil || reply.ReplyTo != m1 || reply.Reply == nil || reply.Reply.Body != clFixed {
		return fmt.Errorf("live reply: %v (%v), want a quote of the edited %s", f["message"], err, m1)
	}

	// The laptop comes back, on the other gateway this time, and catches
	// up from its cursor: history after= brings the reply, changes after=
	// the three changed states of the old messages.
	laptop, err = open("frank's laptop", gwA.addr, frank.Token)
	if err != nil {
		return err
	}
	seen := map[string]clChMsg{}
	newCursor := cursor
	for after, n := cursor, 0; ; n++ {
		h, err := laptop.request(ctx, map[string]any{"type": "history", "id": "h" + strconv.Itoa(n), "conversation": cv.ID, "after": after}, "history")
		if err != nil {
			return err
		}
		msgs, _ := h["messages"].([]any)
		for _, v := range msgs {
			m, err := decodeMsg(v)
			if err != nil {
				return err
			}
			seen[m.ID] = m
			if idAbove(m.ID, newCursor) {
				newCursor = m.ID
			}
		}
		next, _ := h["next_after"].(string)
		if next == "" {
			break
		}
		after = next
	}
	if _, ok := seen[m3]; !ok || len(seen) != 1 {
		return fmt.Errorf("history after the cursor %s: %d messages %v, want only the reply %s", cursor, len(seen), keys(seen), m3)
	}
	var got []string
	for after, n := cursor, 0; ; n++ {
		// A limit of 1 makes the catch-up follow next_after.
		p, err := laptop.request(ctx, map[string]any{"type": "changes", "id": "c" + strconv.Itoa(n), "conversation": cv.ID, "after": after, "limit": 1}, "changes")
		if err != nil {
			return err
		}
		chs, _ := p["changes"].([]any)
		for _, v := range chs {
			c, _ := v.(map[string]any)
			id, _ := c["id"].(string)
			got = append(got, fmt.Sprintf("%v %v", c["kind"], c["message_id"]))
			m, err := decodeMsg(c["message"])
			if err != nil || m.ID == "" {
				return fmt.Errorf("change without its message: %v", c)
			}
			if old, ok := seen[m.ID]; !ok || idAbove(m.Version, old.Version) {
				seen[m.ID] = m
			}
			if idAbove(id, newCursor) {
				newCursor = id
			}
		}
		next, _ := p["next_after"].(string)
		if next == "" {
			break
		}
		if n > 50 {
			return fmt.Errorf("changes do not end: %v", got)
		}
		after = next
	}
	if problems := checkChanged(seen, m1, m2, m3); len(problems) > 0 {
		return fmt.Errorf("the laptop after catching up (changes %v): %s", got, strings.Join(problems, "; "))
	}
	if newCursor != m3 {
		return fmt.Errorf("cursor after catching up %s, want the newest ID, the reply's %s", newCursor, m3)
	}

	// History read through the store, from Cassandra, on either gateway.
	for _, gw := range []*clNode{gwA, gwB} {
		if err := pollUntil(30*time.Second, 200*time.Millisecond, func() error {
			var page struct {
				Messages []clChMsg `json:"messages"`
			}
			code, body, err := e.api(gw.addr, "GET", "/conversations/"+url.PathEscape(cv.ID)+"/messages?limit=10", frank.Token, nil, &page)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("history: %d %s %v", code, body, err)
			}
			msgs := map[string]clChMsg{}
			for _, m := range page.Messages {
				msgs[m.ID] = m
			}
			if len(msgs) != 3 {
				return fmt.Errorf("%d messages, want 3", len(msgs))
			}
			if p := checkChanged(msgs, m1, m2, m3); len(p) > 0 {
				return fmt.Errorf("%s", strings.Join(p, "; "))
			}
			return nil
		}); err != nil {
			return fmt.Errorf("history through %s: %w", gw.name, err)
		}
	}

	// The deleted text is gone from the row itself.
	s, err := e.cql(e.keyspace)
	if err != nil {
		return err
	}
	defer s.Close()
	var conv, body string
	var id int64
	var deleted bool
	rows := map[string]string{}
	iter := s.Query("SELECT conversation_id, message_id, body, deleted FROM messages").PageSize(2000).Iter()
	for iter.Scan(&conv, &id, &body, &deleted) {
		if conv == cv.ID {
			rows[strconv.FormatUint(uint64(id), 10)] = fmt.Sprintf("%q deleted=%v", body, deleted)
		}
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("select messages: %w", err)
	}
	if rows[m2] != `"" deleted=true` || rows[m1] != fmt.Sprintf("%q deleted=false", clFixed) || len(rows) != 3 {
		return fmt.Errorf("messages rows of %s: %v", cv.ID, rows)
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
