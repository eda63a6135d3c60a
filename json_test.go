package chat

import (
	"encoding/json"
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
