package gateway_test

import (
	"fmt"
	"net/http"
	"testing"
)

// Issue 14 part 3: who may add me to a group (anyone, contacts, nobody),
// blocks (no direct messages either way, no adding to groups), and bad
// input refused without a change.
func TestConsentAndBlocks(t *testing.T) {
	e := newEnv(t)
	us := e.users(t, "cs", 3)
	a, b, c := us[0], us[1], us[2]
	var st struct {
		AddPolicy string `json:"add_policy"`
	}
	e.call(t, "GET", "/api/v1/me/settings", b.Token, nil, http.StatusOK, &st)
	if st.AddPolicy != "anyone" {
		t.Fatalf("default add_policy %q, want anyone", st.AddPolicy)
	}
	for _, bad := range []any{map[string]string{"add_policy": "maybe"}, map[string]string{}, map[string]int{"add_policy": 1}} {
		e.fail(t, "PUT", "/api/v1/me/settings", b.Token, bad, http.StatusBadRequest, "invalid_request")
	}
	e.call(t, "GET", "/api/v1/me/settings", b.Token, nil, http.StatusOK, &st)
	if st.AddPolicy != "anyone" {
		t.Fatalf("a refused setting changed add_policy to %q", st.AddPolicy)
	}
	groupsOf := func(x account) int {
		n := 0
		for _, cv := range e.conversations(t, x) {
			if cv.Kind == "group" {
				n++
			}
		}
		return n
	}
	g := e.group(t, a, "open", c.User.Username)

	// nobody: neither a new group nor an existing one.
	e.call(t, "PUT", "/api/v1/me/settings", b.Token, map[string]string{"add_policy": "nobody"}, http.StatusOK, nil)
	e.fail(t, "POST", "/api/v1/conversations", a.Token, map[string]any{"title": "t", "members": []string{b.User.Username, c.User.Username}}, http.StatusForbidden, "forbidden")
	e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"usernames": []string{c.User.Username, b.User.Username}}, http.StatusForbidden, "forbidden")
	if n := groupsOf(b); n != 0 {
		t.Errorf("b, who accepts nobody, is in %d groups", n)
	}
	if n := groupsOf(c); n != 1 {
		t.Errorf("a refused request changed c's groups: %d, want 1", n)
	}
	// b may still make their own groups.
	e.group(t, b, "mine", c.User.Username)

	// contacts: only someone with a direct conversation with b.
	e.call(t, "PUT", "/api/v1/me/settings", b.Token, map[string]string{"add_policy": "contacts"}, http.StatusOK, nil)
	e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]string{"username": b.User.Username}, http.StatusForbidden, "forbidden")
	// A direct conversation a stranger opens is not enough: b must have
	// started it or read in it.
	cb := e.direct(t, c, b.User.Username)
	e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", c.Token, map[string]string{"username": b.User.Username}, http.StatusForbidden, "forbidden")
	cws, _ := e.dial(t, "c", c.Token)
	m := cws.send(t, cb.ID, "c-hi", "hello b")
	cws.close()
	bws0, _ := e.dial(t, "b0", b.Token)
	bws0.write(t, map[string]any{"type": "read", "conversation": cb.ID, "message_id": m.ID})
	eventually(t, "b's read mark lets c add b", func() error {
		if st, _ := e.do(t, "POST", "/api/v1/conversations/"+g.ID+"/members", c.Token, map[string]string{"username": b.User.Username}); st != http.StatusOK {
			return fmt.Errorf("status %d", st)
		}
		return nil
	})
	bws0.close()
	e.call(t, "DELETE", "/api/v1/conversations/"+g.ID+"/members/me", b.Token, nil, http.StatusNoContent, nil)
	d := e.direct(t, b, a.User.Username)
	e.call(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]string{"username": b.User.Username}, http.StatusOK, nil)
	e.call(t, "DELETE", "/api/v1/conversations/"+g.ID+"/members/me", b.Token, nil, http.StatusNoContent, nil)

	// Blocks.
	e.fail(t, "PUT", "/api/v1/blocks/nosuchuser404", b.Token, nil, http.StatusNotFound, "not_found")
	e.fail(t, "PUT", "/api/v1/blocks/"+b.User.Username, b.Token, nil, http.StatusBadRequest, "invalid_request")
	aws, _ := e.dial(t, "a", a.Token)
	bws, _ := e.dial(t, "b", b.Token)
	aws.send(t, d.ID, "before", "hi")
	e.call(t, "PUT", "/api/v1/blocks/"+a.User.Username, b.Token, nil, http.StatusNoContent, nil)
	e.call(t, "PUT", "/api/v1/blocks/"+a.User.Username, b.Token, nil, http.StatusNoContent, nil) // again: no change
	var list struct {
		Users []apiUser `json:"users"`
	}
	e.call(t, "GET", "/api/v1/blocks", b.Token, nil, http.StatusOK, &list)
	if len(list.Users) != 1 || list.Users[0].ID != a.User.ID || list.Users[0].Username != a.User.Username {
		t.Errorf("blocks: %+v, want a", list.Users)
	}
	id := nextID("blocked")
	aws.errorFor(t, id, sendReq{"send", id, d.ID, "after", "hi"}, "forbidden")
	id = nextID("blocker")
	bws.errorFor(t, id, sendReq{"send", id, d.ID, "b-after", "hi"}, "forbidden")
	e.call(t, "PUT", "/api/v1/me/settings", b.Token, map[string]string{"add_policy": "anyone"}, http.StatusOK, nil)
	e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]string{"username": b.User.Username}, http.StatusForbidden, "forbidden")
	e.fail(t, "POST", "/api/v1/conversations", a.Token, map[string]any{"title": "t", "members": []string{b.User.Username}}, http.StatusForbidden, "forbidden")
	// c, not blocked, still adds b.
	e.call(t, "POST", "/api/v1/conversations/"+g.ID+"/members", c.Token, map[string]string{"username": b.User.Username}, http.StatusOK, nil)

	// Unblock: messages flow again.
	e.call(t, "DELETE", "/api/v1/blocks/"+a.User.Username, b.Token, nil, http.StatusNoContent, nil)
	e.call(t, "GET", "/api/v1/blocks", b.Token, nil, http.StatusOK, &list)
	if len(list.Users) != 0 {
		t.Errorf("blocks after unblock: %+v", list.Users)
	}
	bws.send(t, d.ID, "b-again", "hello again")
	aws.send(t, d.ID, "a-again", "hi again")
}
