package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat/gateway"
	"github.com/coder/websocket"
	"go.uber.org/zap"
)

// --edit-window and its twin CHAT_EDIT_WINDOW: the default, either way of
// setting it, the flag winning over the environment, and values that must
// be refused with an error rather than silently becoming the default.
func TestEditWindowFlag(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      time.Duration
		bad       bool
	}{
		{name: "default", want: gateway.DefaultEditWindow},
		{name: "flag", args: []string{"--edit-window", "15m"}, want: 15 * time.Minute},
		{name: "env", env: "2h", want: 2 * time.Hour},
		{name: "flag beats env", env: "2h", args: []string{"--edit-window=90s"}, want: 90 * time.Second},
		{name: "zero", args: []string{"--edit-window", "0"}, bad: true},
		{name: "negative env", env: "-1h", bad: true},
		{name: "not a duration", args: []string{"--edit-window", "two days"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("CHAT_EDIT_WINDOW", tc.env)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var d time.Duration
			editWindowFlag(fs, &d)
			err := parseFlags(fs, tc.args)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted, edit window %v", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d != tc.want {
				t.Fatalf("edit window %v, want %v", d, tc.want)
			}
		})
	}
	var d time.Duration
	if err := (positiveDuration{&d}).Set("-5m"); !errors.Is(err, errNotPositive) {
		t.Fatalf("Set(-5m) = %v, want errNotPositive", err)
	}
}

// chat dev hands its edit window to the gateway: with a window of a
// millisecond, editing one's own message a moment later is refused as too
// late (the default 48 hours would accept it).
func TestDevEditWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := startDev(ctx, devOptions{Addr: "127.0.0.1:0", Data: t.TempDir(), JWTSecret: "edit-window-test-secret-0123456789",
		Drain: time.Second, EditWindow: time.Millisecond}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	base := strings.TrimSuffix(d.URL, "/")

	var auth struct{ Token string }
	if code := promHTTP(ctx, t, hc, "POST", base+"/api/v1/signup", "", map[string]string{"username": "edna", "password": "correct horse battery"}, &auth); code != 201 {
		t.Fatalf("signup: %d", code)
	}
	var conv struct{ ID string }
	if code := promHTTP(ctx, t, hc, "POST", base+"/api/v1/conversations", auth.Token, map[string]any{"title": "notes", "members": []string{}}, &conv); code != 201 {
		t.Fatalf("create group: %d", code)
	}
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws?token="+auth.Token, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close(websocket.StatusNormalClosure, "")
	promRead(ctx, t, ws, func(f promFrame) bool { return f.Type == "hello" })
	promWrite(ctx, t, ws, map[string]any{"type": "send", "id": "s", "conversation": conv.ID, "client_id": "c1", "body": "tpyo"})
	ack := promRead(ctx, t, ws, func(f promFrame) bool { return f.ID == "s" })
	var sent struct {
		Type    string
		Message struct {
			ID     string    `json:"id"`
			SentAt time.Time `json:"sent_at"`
		}
	}
	if err := json.Unmarshal(ack.raw, &sent); err != nil || sent.Type != "ack" {
		t.Fatalf("send: %s", ack.raw)
	}
	// The window is a millisecond: the clock passes it in about that
	// (usually it already has, the ack took longer).
	for time.Since(sent.Message.SentAt) <= 2*time.Millisecond {
		runtime.Gosched()
	}
	promWrite(ctx, t, ws, map[string]any{"type": "edit", "id": "e", "conversation": conv.ID, "message_id": sent.Message.ID, "client_id": "e1", "body": "typo"})
	// Read up to the answer (promRead cannot: an error frame's message is
	// a string).
	var answer struct {
		Type, Code string
		ID         any
		Message    json.RawMessage
	}
	for answer.ID != "e" {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		answer.ID = nil
		if err := json.Unmarshal(b, &answer); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
	}
	if answer.Type != "error" || answer.Code != "forbidden" || !strings.Contains(string(answer.Message), "too late") {
		t.Fatalf("edit after the window: %+v, want error forbidden (too late)", answer)
	}
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("close: %v", err)
	}
}
