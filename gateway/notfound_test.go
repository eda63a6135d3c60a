package gateway_test

// Issue 14 part 6: one wording for every 404 of a conversation. Direct
// conversation IDs are built from public user IDs, so a stranger must not
// be able to tell one that exists from one that does not, by status, code
// or message, over HTTP or the WebSocket.

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestConversationNotFoundIsOneAnswer(t *testing.T) {
	e := newEnv(t)
	us := e.users(t, "nf", 4)
	a, b, c, stranger := us[0], us[1], us[2], us[3]
	exists := e.direct(t, a, b.User.Username).ID
	// a and c never talked: the ID is well formed, the conversation absent.
	missing := fmt.Sprintf("%s-%s", a.User.ID, c.User.ID)
	if id64(t, a.User.ID) > id64(t, c.User.ID) {
		missing = fmt.Sprintf("%s-%s", c.User.ID, a.User.ID)
	}
	group := e.group(t, a, "private", b.User.Username).ID
	cases := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/conversations/%s/messages", nil},
		{"GET", "/api/v1/conversations/%s/members", nil},
		{"POST", "/api/v1/conversations/%s/members", map[string]string{"username": stranger.User.Username}},
		{"DELETE", "/api/v1/conversations/%s/members/me", nil},
		{"PUT", "/api/v1/conversations/%s/mute", map[string]bool{"muted": true}},
	}
	for _, tc := range cases {
		var first string
		for _, conv := range []string{exists, missing, group, "9999999999", "not-an-id"} {
			status, body := e.do(t, tc.method, fmt.Sprintf(tc.path, conv), stranger.Token, tc.body)
			got := fmt.Sprintf("%d %s", status, body)
			if status != 404 {
				t.Errorf("%s %s as a stranger: %s, want 404", tc.method, fmt.Sprintf(tc.path, conv), got)
			}
			if first == "" {
				first = got
			} else if got != first {
				t.Errorf("%s %s: %s differs from the answer for an existing direct conversation: %s", tc.method, fmt.Sprintf(tc.path, conv), got, first)
			}
		}
	}
	// The HTTP wording is the WebSocket's.
	_, body := e.do(t, "GET", "/api/v1/conversations/"+missing+"/messages", stranger.Token, nil)
	var httpErr struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &httpErr); err != nil {
		t.Fatal(err)
	}
	ws, _ := e.dial(t, "stranger", stranger.Token)
	reqs := []func(id, conv string) any{
		func(id, conv string) any { return sendReq{"send", id, conv, "c-" + id, "hi"} },
		func(id, conv string) any {
			return map[string]any{"type": "history", "id": id, "conversation": conv}
		},
		func(id, conv string) any {
			return map[string]any{"type": "members", "id": id, "conversation": conv}
		},
		func(id, conv string) any {
			return map[string]any{"type": "changes", "id": id, "conversation": conv}
		},
		func(id, conv string) any {
			return map[string]any{"type": "edit", "id": id, "conversation": conv, "message_id": "1", "body": "x", "client_id": "e-" + id}
		},
	}
	for i, mk := range reqs {
		for _, conv := range []string{exists, missing, group, "9999999999"} {
			id := nextID("nf")
			f := ws.request(t, id, mk(id, conv))
			var got struct{ Type, Code, Message string }
			f.decode(t, &got)
			if got.Type != "error" || got.Code != "not_found" || got.Message != httpErr.Error.Message {
				t.Errorf("request %d on %s: %s, want error not_found %q (the HTTP wording)", i, conv, f.Raw, httpErr.Error.Message)
			}
		}
	}
}
