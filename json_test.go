package chat

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMessageJSONMatchesProtocol(t *testing.T) {
	at := time.Date(2026, 11, 26, 19, 10, 32, 120_000_000, time.FixedZone("x", 3600))
	cases := []Message{
		{ID: 1, Conversation: "5", Sender: 2, Body: "hi", SentAt: at, ClientID: "c1"},
		{ID: 1<<62 + 7, Conversation: "1-2", Sender: 9, Body: "<img src=x onerror=alert(1)> \"q\" \\ \n\t é 😀 \u2028", SentAt: at, ClientID: "a b"},
	}
	for _, m := range cases {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got["sent_at"] != "2026-11-26T18:10:32.120Z" {
			t.Errorf("sent_at = %v", got["sent_at"])
		}
		if got["id"] != m.ID.String() || got["sender"] != m.Sender.String() || got["body"] != m.Body ||
			got["client_id"] != m.ClientID || got["conversation"] != m.Conversation {
			t.Errorf("round trip: %s", b)
		}
		var back Message
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.ID != m.ID || back.Body != m.Body || !back.SentAt.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("decode: %+v", back)
		}
	}
}

func TestParseID(t *testing.T) {
	for _, s := range []string{"", "-1", "+1", "1.5", "abc", "18446744073709551616", " 1"} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q) accepted", s)
		}
	}
	if id, err := ParseID("18446744073709551615"); err != nil || uint64(id) != 1<<64-1 {
		t.Errorf("max: %v %v", id, err)
	}
}

func TestGeneratorOrdered(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, _ := NewGenerator(1)
	b, _ := NewGenerator(2)
	a.now = func() time.Time { return now }
	b.now = func() time.Time { return now.Add(-time.Second) } // b's clock is behind
	seen := map[ID]bool{}
	var last ID
	for i := 0; i < 10000; i++ {
		g := a
		if i%3 == 0 {
			g = b
		}
		id := g.NextAfter(last)
		if id <= last || seen[id] {
			t.Fatalf("id %d after %d (dup %v)", id, last, seen[id])
		}
		if node := uint64(id) >> seqBits & MaxNode; node != g.node {
			t.Fatalf("node bits %d, want %d", node, g.node)
		}
		seen[id] = true
		last = id
	}
	if got := a.Next().Time(); got.Before(now) {
		t.Errorf("time %v before clock %v", got, now)
	}
}

func TestDirectID(t *testing.T) {
	if DirectID(7, 3) != DirectID(3, 7) || DirectID(3, 7) != "3-7" {
		t.Fatal(DirectID(7, 3))
	}
	if a, b, ok := DirectMembers("3-7"); !ok || a != 3 || b != 7 {
		t.Fatal("members")
	}
	for _, bad := range []string{"7-3", "3-3", "3-", "-3", "a-b", "3.7", "chat.x", ""} {
		if ValidConversationID(bad) {
			t.Errorf("%q valid", bad)
		}
	}
}

func TestMessageChangedFieldsJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 19, 10, 32, 120_000_000, time.UTC)
	plain := Message{ID: 1, Conversation: "5", Sender: 2, Body: "hi", SentAt: at, ClientID: "c1"}
	b, _ := json.Marshal(plain)
	for _, k := range []string{"reply_to", "reply", "edited_at", "deleted", "reactions", "version"} {
		if json.Valid(b) && contains(string(b), `"`+k+`"`) {
			t.Errorf("unchanged message carries %s: %s", k, b)
		}
	}
	m := plain
	m.ReplyTo, m.Reply = 7, &Quote{ID: 7, Sender: 3, Body: "q\"uote", Deleted: false}
	m.EditedAt, m.Version = at.Add(time.Second), 99
	m.Reactions = []Reaction{{Emoji: "👍", Count: 2, Me: true}, {Emoji: "🎉", Count: 1}}
	b, _ = json.Marshal(m)
	var back Message
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if back.ReplyTo != 7 || back.Reply == nil || *back.Reply != *m.Reply || !back.EditedAt.Equal(m.EditedAt) ||
		back.Version != 99 || len(back.Reactions) != 2 || back.Reactions[0] != m.Reactions[0] || back.Reactions[1] != m.Reactions[1] {
		t.Errorf("round trip of %s: %+v", b, back)
	}
	d := plain
	d.Body, d.Deleted = "", true
	b, _ = json.Marshal(d)
	if !contains(string(b), `"deleted":true`) || !contains(string(b), `"body":""`) {
		t.Errorf("deleted: %s", b)
	}
}

func TestChangeJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 19, 10, 32, 120_000_000, time.UTC)
	cases := []Change{
		{ID: 10, Conversation: "1-2", Kind: EventEdit, MessageID: 5, User: 1, At: at, ClientID: "e1", Body: "fixed <b>"},
		{ID: 11, Conversation: "9", Kind: EventDelete, MessageID: 5, User: 1, At: at},
		{ID: 12, Conversation: "9", Kind: EventReact, MessageID: 5, User: 2, At: at, ClientID: "r", Emoji: "👍", On: false},
		{ID: 13, Conversation: "9", Kind: EventReact, MessageID: 5, User: 2, At: at, Emoji: "👍", On: true,
			Message: &Message{ID: 5, Conversation: "9", Sender: 1, SentAt: at, Deleted: true}},
	}
	for _, c := range cases {
		b, err := json.Marshal(c)
		if err != nil || !json.Valid(b) {
			t.Fatalf("%s: %v", b, err)
		}
		var back Change
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.ID != c.ID || back.Kind != c.Kind || back.Body != c.Body || back.Emoji != c.Emoji || back.On != c.On ||
			back.MessageID != c.MessageID || back.User != c.User || !back.At.Equal(at) || (c.Message == nil) != (back.Message == nil) {
			t.Errorf("round trip of %s: %+v", b, back)
		}
		if c.Kind == EventReact && !contains(string(b), `"on":`) {
			t.Errorf("reaction without on: %s", b)
		}
	}
}

func TestValidEmoji(t *testing.T) {
	for _, s := range []string{"👍", "❤️", "1️⃣", "👨‍👩‍👧‍👦", "🎉"} {
		if !ValidEmoji(s) {
			t.Errorf("ValidEmoji(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a", "ok", "👍 ", "\n", "\xff", "👍👍👍👍👍👍👍👍👍👍👍"} {
		if ValidEmoji(s) {
			t.Errorf("ValidEmoji(%q) = true", s)
		}
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

// The fast encoder must agree with encoding/json on what a string means,
// for every kind of character, and must not escape HTML characters.
func TestAppendStringNoHTMLEscaping(t *testing.T) {
	cases := []string{
		"", "plain", "<b>&amp;</b>", "\"q\" \\ / \n\r\t\x00\x01\x1f\x7f", "é 😀 中文",
		"\u2028\u2029", "bad \xff utf8 \xc3", strings.Repeat("<", MaxBody),
	}
	for _, s := range cases {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if back != want {
			t.Errorf("%q -> %s -> %q", s, b, back)
		}
		if strings.Contains(string(b), `\u003c`) || strings.Contains(string(b), `\u0026`) {
			t.Errorf("%q escaped as HTML: %s", s, b)
		}
		if strings.ContainsRune(string(b), '\u2028') {
			t.Errorf("U+2028 left raw: %s", b)
		}
	}
	// A body of 4,096 '<' is 4,098 bytes of JSON, not 24,578.
	if n := len(appendString(nil, strings.Repeat("<", MaxBody))); n != MaxBody+2 {
		t.Errorf("4096 '<' encode to %d bytes", n)
	}
	m := Message{ID: 1, Conversation: "1", Sender: 2, Body: "<a&b>", ClientID: "<c>"}
	b, err := Marshal(struct {
		M    Message `json:"m"`
		Text string  `json:"text"`
	}{m, "<&>"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `\u00`) || !strings.Contains(string(b), `"<a&b>"`) || !strings.Contains(string(b), `"text":"<&>"`) {
		t.Errorf("Marshal escaped HTML: %s", b)
	}
}
