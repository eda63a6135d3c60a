package loadtest

import (
	"encoding/json"
	"testing"
)

func TestTopLevel(t *testing.T) {
	cases := []struct {
		in      string
		typ, id string
		ok      bool
	}{
		{`{"type":"ack","id":"42","message":{"id":"9","body":"a \"type\":\"x\""}}`, "ack", "42", true},
		{` { "message" : {"type":"nested","id":"1"} , "type" : "message" } `, "message", "", true},
		{`{"conversations":[{"id":"1","members":[{"id":"2"}]}],"user":{"id":"3"},"type":"hello"}`, "hello", "", true},
		{`{"type":"error","id":"7","code":"rate_limited","n":12,"b":true,"z":null}`, "error", "7", true},
		{`{"id":"5","type":"pong"}`, "pong", "5", true},
		{`{}`, "", "", true},
		{`[1,2]`, "", "", false},
		{`{"type":"ack"`, "", "", false},
		{`{"type":`, "", "", false},
		{`not json`, "", "", false},
	}
	for _, c := range cases {
		typ, id, ok := topLevel([]byte(c.in))
		if ok != c.ok || string(typ) != c.typ || string(id) != c.id {
			t.Errorf("topLevel(%s) = %q,%q,%v want %q,%q,%v", c.in, typ, id, ok, c.typ, c.id, c.ok)
		}
	}
}

func TestSendFrameRoundTrip(t *testing.T) {
	conv, _ := json.Marshal("12345678901234")
	f := appendSend(nil, 1700000000123456789, conv, 77, 3, 1700000000123456789, 64)
	var raw map[string]string
	if err := json.Unmarshal(f, &raw); err != nil {
		t.Fatalf("send frame is not JSON: %v: %s", err, f)
	}
	var m struct{ Type, ID, Conversation, ClientID, Body string }
	m.Type, m.ID, m.Conversation, m.ClientID, m.Body = raw["type"], raw["id"], raw["conversation"], raw["client_id"], raw["body"]
	if m.Type != "send" || m.ID != "1700000000123456789" || m.Conversation != "12345678901234" || m.ClientID != "lt-77-3" {
		t.Fatalf("unexpected send frame %s", f)
	}
	if len(m.Body) < 64 {
		t.Fatalf("body %q shorter than 64 bytes", m.Body)
	}
	// The server wraps the body in a message frame, re-encoded by its JSON encoder.
	echo, _ := json.Marshal(map[string]any{"type": "message", "message": map[string]string{"id": "1", "body": m.Body}})
	ts, sender, ok := parseMarker(echo)
	if !ok || ts != 1700000000123456789 || sender != 77 {
		t.Fatalf("parseMarker(%s) = %d,%d,%v", echo, ts, sender, ok)
	}
	if _, _, ok := parseMarker([]byte(`{"type":"message","message":{"body":"hello lt1 x"}}`)); ok {
		t.Fatal("parseMarker accepted a body without a timestamp")
	}
}

func BenchmarkTopLevelAndMarker(b *testing.B) {
	frame := []byte(`{"type":"message","message":{"id":"7340032000012345678","conversation":"7340032000012340000","sender":"7340032000012300000","body":"lt1 1700000000123456789 12345 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","sent_at":"2026-11-26T19:10:32.123Z","client_id":"lt-12345-99"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		typ, _, _ := topLevel(frame)
		if string(typ) != "message" {
			b.Fatal("bad type")
		}
		if _, _, ok := parseMarker(frame); !ok {
			b.Fatal("no marker")
		}
	}
}
