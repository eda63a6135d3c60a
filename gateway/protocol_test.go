package gateway_test

// Tests of docs/PROTOCOL.md against a gateway on its test harness (real
// embedded NATS with JetStream, a real store on bbolt), spoken to only
// through net/http and a WebSocket client that is not the gateway's own
// code.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatcluster/chat/gateway"
)

func TestHTTPAPI(t *testing.T) {
	e := newEnv(t)
	t.Run("Signup", func(t *testing.T) { testSignup(t, e) })
	t.Run("Login", func(t *testing.T) { testLogin(t, e) })
	t.Run("TokensAndMe", func(t *testing.T) { testTokens(t, e) })
	t.Run("UserSearch", func(t *testing.T) { testUserSearch(t, e) })
	t.Run("Direct", func(t *testing.T) { testDirect(t, e) })
	t.Run("GroupAndMembers", func(t *testing.T) { testGroup(t, e) })
	t.Run("ConversationList", func(t *testing.T) { testConversationList(t, e) })
	t.Run("HistoryPaging", func(t *testing.T) { testHistoryPaging(t, e) })
	t.Run("HistoryLimits", func(t *testing.T) { testHistoryLimits(t, e) })
	t.Run("HistoryBadRequests", func(t *testing.T) { testHistoryBadRequests(t, e) })
	t.Run("Operational", func(t *testing.T) { testOperational(t, e) })
	t.Run("EmptyLists", func(t *testing.T) { testEmptyLists(t, e) })
}

func TestWebSocket(t *testing.T) {
	e := newEnv(t)
	t.Run("Auth", func(t *testing.T) { testWSAuth(t, e) })
	t.Run("HelloAndPresence", func(t *testing.T) { testHelloPresence(t, e) })
	t.Run("SendAckFanout", func(t *testing.T) { testSendAck(t, e) })
	t.Run("Idempotence", func(t *testing.T) { testIdempotence(t, e) })
	t.Run("MessageValidation", func(t *testing.T) { testMessageValidation(t, e) })
	t.Run("HistoryFrames", func(t *testing.T) { testHistoryFrames(t, e) })
	t.Run("ReadYourWrites", func(t *testing.T) { testReadYourWrites(t, e) })
	t.Run("ReadMarks", func(t *testing.T) { testReadMarks(t, e) })
	t.Run("Typing", func(t *testing.T) { testTyping(t, e) })
	t.Run("Ping", func(t *testing.T) { testPing(t, e) })
	t.Run("ConversationFrames", func(t *testing.T) { testConversationFrames(t, e) })
	t.Run("AddMemberLive", func(t *testing.T) { testAddMemberLive(t, e) })
	t.Run("Order", func(t *testing.T) { testOrder(t, e) })
	t.Run("NotMember", func(t *testing.T) { testNotMember(t, e) })
	t.Run("BadFrames", func(t *testing.T) { testBadFrames(t, e) })
	t.Run("SizeLimit", func(t *testing.T) { testSizeLimit(t, e) })
	t.Run("FragmentedSizeLimit", func(t *testing.T) { testFragments(t, e) })
	t.Run("BinaryAndUTF8", func(t *testing.T) { testBinaryUTF8(t, e) })
	t.Run("RateLimit", func(t *testing.T) { testRateLimit(t, e) })
	t.Run("LiveRightAfterHello", func(t *testing.T) { testLiveAfterHello(t, e) })
	t.Run("SlowConsumer", func(t *testing.T) { testSlowConsumer(t, e) })
	t.Run("CatchUpAfterReconnect", func(t *testing.T) { testCatchUp(t, e) })
	t.Run("TokenExpiry", func(t *testing.T) { testTokenExpiry(t, e) })
}

// TestDrain has a server of its own: draining ends it.
func TestDrain(t *testing.T) {
	e := newEnv(t)
	a := e.signup(t, e.name("drn"), "Drain")
	c1, _ := e.dial(t, "c1", a.Token)
	c2, _ := e.dial(t, "c2", a.Token)
	// An idle kept-alive HTTP connection, to ask /readyz during the drain.
	e.call(t, "GET", "/readyz", "", nil, http.StatusOK, nil)
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { done <- e.gw.Drain(ctx) }()
	for _, c := range []*wsClient{c1, c2} {
		if code := c.closeStatus(t); code != 4002 {
			t.Errorf("%s: close code %d on drain, want 4002", c.name, code)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("drain: %v", err)
	}
	// Not ready while draining: 503, or no longer reachable at all (the
	// listener is closed, which a readiness probe also counts as not ready).
	req, _ := http.NewRequest("GET", e.base+"/readyz", nil)
	if resp, err := e.client.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/readyz while draining: %d, want 503", resp.StatusCode)
		}
	}
}

// ---- HTTP ----

func testSignup(t *testing.T, e *env) {
	name := e.name("billy")
	var a account
	e.call(t, "POST", "/api/v1/signup", "", map[string]string{"username": strings.ToUpper(name[:1]) + name[1:], "password": testPassword, "display_name": "Billy B"}, http.StatusCreated, &a)
	if a.User.Username != name || a.User.DisplayName != "Billy B" || a.Token == "" {
		t.Errorf("signup of %q answered %+v, want username folded to %q", strings.ToUpper(name[:1])+name[1:], a, name)
	}
	id64(t, a.User.ID)
	for _, u := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
		e.fail(t, "POST", "/api/v1/signup", "", map[string]string{"username": u, "password": testPassword}, http.StatusConflict, "username_taken")
	}

	// Username boundaries: 3 and 32 characters of [a-z0-9_.-] are fine.
	for _, u := range []string{"a.b", "abcdefghijklmnopqrstuvwxyz0_.-45"} {
		e.call(t, "POST", "/api/v1/signup", "", map[string]string{"username": u, "password": testPassword}, http.StatusCreated, nil)
	}
	for _, u := range []string{"", "ab", strings.Repeat("c", 33), "bad name", "bad!name", "naïve", "a/b", "émile", "tab\tx"} {
		e.fail(t, "POST", "/api/v1/signup", "", map[string]string{"username": u, "password": testPassword}, http.StatusBadRequest, "invalid_request")
	}

	// Passwords are 8-256 code points (not bytes).
	e.call(t, "POST", "/api/v1/signup", "", map[string]string{"username": e.name("pw"), "password": "12345678"}, http.StatusCreated, nil)
	long := e.name("pw")
	e.call(t, "POST", "/api/v1/signup", "", map[string]string{"username": long, "password": strings.Repeat("é", 256)}, http.StatusCreated, nil)
	e.call(t, "POST", "/api/v1/login", "", map[string]string{"username": long, "password": strings.Repeat("é", 256)}, http.StatusOK, nil)
	for _, p := range []string{"", "1234567", strings.Repeat("é", 257), strings.Repeat("x", 257)} {
		e.fail(t, "POST", "/api/v1/signup", "", map[string]string{"username": e.name("pw"), "password": p}, http.StatusBadRequest, "invalid_request")
	}

	for _, body := range []string{"", "not json", "[1,2]", `{"username": 5, "password": "12345678"}`, `{"username": "abc", "password": "12345678"`} {
		e.fail(t, "POST", "/api/v1/signup", "", body, http.StatusBadRequest, "invalid_request")
	}
}

func testLogin(t *testing.T, e *env) {
	name := e.name("lena")
	a := e.signup(t, name, "Lena")
	for _, u := range []string{name, strings.ToUpper(name)} {
		var got account
		e.call(t, "POST", "/api/v1/login", "", map[string]string{"username": u, "password": testPassword}, http.StatusOK, &got)
		if got.User != a.User || got.Token == "" {
			t.Errorf("login as %q: %+v, want user %+v and a token", u, got, a.User)
		}
		var me apiUser
		e.call(t, "GET", "/api/v1/me", got.Token, nil, http.StatusOK, &me)
		if me.ID != a.User.ID {
			t.Errorf("the login token is for %+v, want %+v", me, a.User)
		}
	}
	e.fail(t, "POST", "/api/v1/login", "", map[string]string{"username": name, "password": testPassword + "x"}, http.StatusUnauthorized, "unauthorized")
	e.fail(t, "POST", "/api/v1/login", "", map[string]string{"username": e.name("nobody"), "password": testPassword}, http.StatusUnauthorized, "unauthorized")
	e.fail(t, "POST", "/api/v1/login", "", "not json", http.StatusBadRequest, "invalid_request")
}

func testTokens(t *testing.T, e *env) {
	a := e.signup(t, e.name("tess"), "Tess")
	var me apiUser
	e.call(t, "GET", "/api/v1/me", a.Token, nil, http.StatusOK, &me)
	if me.ID != a.User.ID || me.Username != a.User.Username || me.DisplayName != a.User.DisplayName {
		t.Errorf("me = %+v, want %+v", me, a.User)
	}
	valid, bad := badTokens(t, a)
	// The self-signed control token works, so each refusal below is for
	// the one thing that differs.
	e.call(t, "GET", "/api/v1/me", valid, nil, http.StatusOK, nil)
	paths := []string{"/api/v1/me", "/api/v1/users?prefix=te", "/api/v1/conversations"}
	for _, p := range paths {
		e.fail(t, "GET", p, "", nil, http.StatusUnauthorized, "unauthorized")
		for what, tok := range bad {
			t.Run(strings.TrimPrefix(p, "/api/v1/")+" "+what, func(t *testing.T) {
				e.fail(t, "GET", p, tok, nil, http.StatusUnauthorized, "unauthorized")
			})
		}
	}
	for _, h := range []string{"Basic " + a.Token, a.Token, "Bearer"} {
		req, _ := http.NewRequest("GET", e.base+"/api/v1/me", nil)
		req.Header.Set("Authorization", h)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization: %.20s...: status %d, want 401", h, resp.StatusCode)
		}
	}
}

func testUserSearch(t *testing.T, e *env) {
	prefix := e.name("srch") + "_"
	var all []account
	for i := 0; i < 21; i++ {
		all = append(all, e.signup(t, fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("Searchable %d", i)))
	}
	var got struct {
		Users []apiUser `json:"users"`
	}
	e.call(t, "GET", "/api/v1/users?prefix="+url.QueryEscape(strings.ToUpper(prefix)), all[0].Token, nil, http.StatusOK, &got)
	if len(got.Users) == 0 || len(got.Users) > 20 {
		t.Errorf("21 users match %q: got %d, want at most 20 (and some)", prefix, len(got.Users))
	}
	for _, u := range got.Users {
		if !strings.HasPrefix(u.Username, prefix) || u.ID == "" || u.DisplayName == "" {
			t.Errorf("search %q found %+v", prefix, u)
		}
	}
	// prefix_1 matches _1 and _10.._19: exactly those, whatever the case.
	want := []string{}
	for _, a := range all {
		if strings.HasPrefix(a.User.Username, prefix+"1") {
			want = append(want, a.User.Username)
		}
	}
	got.Users = nil
	e.call(t, "GET", "/api/v1/users?prefix="+url.QueryEscape(strings.ToUpper(prefix+"1")), all[0].Token, nil, http.StatusOK, &got)
	var names []string
	for _, u := range got.Users {
		names = append(names, u.Username)
	}
	sort.Strings(names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("search %q: %v, want %v", prefix+"1", names, want)
	}
	e.fail(t, "GET", "/api/v1/users?prefix="+prefix, "", nil, http.StatusUnauthorized, "unauthorized")
}

func memberIDs(c apiConversation) []string {
	var ids []string
	for _, m := range c.Members {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return ids
}

func idsOf(accts ...account) []string {
	var ids []string
	for _, a := range accts {
		ids = append(ids, a.User.ID)
	}
	sort.Strings(ids)
	return ids
}

func testDirect(t *testing.T, e *env) {
	a := e.signup(t, e.name("anna"), "Anna A")
	b := e.signup(t, e.name("bert"), "Bert B")
	ab := e.direct(t, a, strings.ToUpper(b.User.Username))
	if ab.Kind != "direct" || ab.Title != "Bert B" || ab.LastMessage != nil || ab.Unread != 0 || !slices.Equal(memberIDs(ab), idsOf(a, b)) {
		t.Errorf("direct as seen by %s: %+v", a.User.Username, ab)
	}
	for _, m := range ab.Members {
		if m.Username == "" || m.DisplayName == "" {
			t.Errorf("member %+v lacks username or display_name", m)
		}
	}
	ba := e.direct(t, b, a.User.Username)
	if ba.ID != ab.ID || ba.Title != "Anna A" {
		t.Errorf("direct as seen by %s: %+v, want ID %s and title Anna A", b.User.Username, ba, ab.ID)
	}
	if again := e.direct(t, a, b.User.Username); again.ID != ab.ID {
		t.Errorf("second direct: ID %s, want %s", again.ID, ab.ID)
	}
	e.fail(t, "POST", "/api/v1/conversations/direct", a.Token, map[string]string{"username": e.name("ghost")}, http.StatusNotFound, "not_found")
	e.fail(t, "POST", "/api/v1/conversations/direct", a.Token, map[string]string{"username": a.User.Username}, http.StatusBadRequest, "invalid_request")
	e.fail(t, "POST", "/api/v1/conversations/direct", a.Token, map[string]string{"username": strings.ToUpper(a.User.Username)}, http.StatusBadRequest, "invalid_request")
	e.fail(t, "POST", "/api/v1/conversations/direct", a.Token, "not json", http.StatusBadRequest, "invalid_request")
	e.fail(t, "POST", "/api/v1/conversations/direct", "", map[string]string{"username": b.User.Username}, http.StatusUnauthorized, "unauthorized")
}

func testGroup(t *testing.T, e *env) {
	us := e.users(t, "grp", 5)
	a, b, c, d, x := us[0], us[1], us[2], us[3], us[4]
	g := e.group(t, a, "Team", strings.ToUpper(b.User.Username), c.User.Username)
	if g.Kind != "group" || g.Title != "Team" || g.LastMessage != nil || !slices.Equal(memberIDs(g), idsOf(a, b, c)) {
		t.Errorf("group: %+v, want group Team of %v", g, idsOf(a, b, c))
	}
	findConv(t, e.conversations(t, b), g.ID)
	e.fail(t, "POST", "/api/v1/conversations", a.Token, map[string]any{"title": "Nope", "members": []string{b.User.Username, e.name("ghost")}}, http.StatusNotFound, "not_found")
	e.fail(t, "POST", "/api/v1/conversations", a.Token, "not json", http.StatusBadRequest, "invalid_request")

	// Any member may add; adding again changes nothing.
	path := "/api/v1/conversations/" + g.ID + "/members"
	var added apiConversation
	e.call(t, "POST", path, b.Token, map[string]string{"username": strings.ToUpper(d.User.Username)}, http.StatusOK, &added)
	if added.ID != g.ID || !slices.Equal(memberIDs(added), idsOf(a, b, c, d)) {
		t.Errorf("after adding %s: %+v", d.User.Username, added)
	}
	var again apiConversation
	e.call(t, "POST", path, a.Token, map[string]string{"username": d.User.Username}, http.StatusOK, &again)
	if !slices.Equal(memberIDs(again), idsOf(a, b, c, d)) {
		t.Errorf("after adding %s again: members %v, want %v", d.User.Username, memberIDs(again), idsOf(a, b, c, d))
	}
	findConv(t, e.conversations(t, d), g.ID)
	// A non-member learns nothing: 404, as for a conversation that does not exist.
	e.fail(t, "POST", path, x.Token, map[string]string{"username": x.User.Username}, http.StatusNotFound, "not_found")
	e.fail(t, "POST", "/api/v1/conversations/123456789/members", a.Token, map[string]string{"username": x.User.Username}, http.StatusNotFound, "not_found")
	e.fail(t, "POST", path, a.Token, map[string]string{"username": e.name("ghost")}, http.StatusNotFound, "not_found")
	for _, cv := range e.conversations(t, x) {
		if cv.ID == g.ID {
			t.Errorf("a refused add still made %s a member", x.User.Username)
		}
	}
}

func testConversationList(t *testing.T, e *env) {
	us := e.users(t, "lst", 3)
	a, b, c := us[0], us[1], us[2]
	ab := e.direct(t, a, b.User.Username)
	g := e.group(t, a, "Three", b.User.Username, c.User.Username)
	bc, _ := e.dial(t, "b", b.Token)
	cc, _ := e.dial(t, "c", c.Token)
	ac, _ := e.dial(t, "a", a.Token)

	order := func(who account) []string {
		var ids []string
		for _, cv := range e.conversations(t, who) {
			if cv.ID == ab.ID || cv.ID == g.ID {
				ids = append(ids, cv.ID)
			}
		}
		return ids
	}
	// The list is not promised read-your-writes (history is): poll.
	listIs := func(what string, who account, want []string, checks func(list []apiConversation) error) {
		t.Helper()
		eventually(t, what, func() error {
			if got := order(who); !slices.Equal(got, want) {
				return fmt.Errorf("order %v, want %v", got, want)
			}
			if checks != nil {
				return checks(e.conversations(t, who))
			}
			return nil
		})
	}
	bc.send(t, ab.ID, "l1", "first in direct")
	m2 := cc.send(t, g.ID, "l2", "in the group")
	listIs("a's list after a group message", a, []string{g.ID, ab.ID}, nil)
	m3 := bc.send(t, ab.ID, "l3", "second in direct")
	listIs("a's list after a direct message", a, []string{ab.ID, g.ID}, func(list []apiConversation) error {
		dv, gv := findConv(t, list, ab.ID), findConv(t, list, g.ID)
		if dv.LastMessage == nil || *dv.LastMessage != m3 || dv.Unread != 2 || dv.Title != b.User.DisplayName {
			return fmt.Errorf("a's direct: %+v, want last_message %+v, unread 2, title %q", dv, m3, b.User.DisplayName)
		}
		if gv.LastMessage == nil || *gv.LastMessage != m2 || gv.Unread != 1 || gv.Title != "Three" {
			return fmt.Errorf("a's group: %+v, want last_message %+v, unread 1", gv, m2)
		}
		return nil
	})
	listIs("b's list", b, []string{ab.ID, g.ID}, func(list []apiConversation) error {
		if bv := findConv(t, list, ab.ID); bv.Title != a.User.DisplayName || bv.Unread != 0 || bv.LastMessage == nil || *bv.LastMessage != m3 {
			return fmt.Errorf("b's direct: %+v, want title %q, unread 0 (own messages are not unread)", bv, a.User.DisplayName)
		}
		return nil
	})
	// One's own message is activity but not unread.
	m4 := ac.send(t, g.ID, "l4", "a speaks")
	listIs("a's list after a's own message", a, []string{g.ID, ab.ID}, func(list []apiConversation) error {
		if gv := findConv(t, list, g.ID); gv.Unread != 1 || gv.LastMessage == nil || *gv.LastMessage != m4 {
			return fmt.Errorf("a's group: unread %d last %+v, want 1 and %+v", gv.Unread, gv.LastMessage, m4)
		}
		return nil
	})
	eventually(t, "c's unread", func() error {
		if cv := findConv(t, e.conversations(t, c), g.ID); cv.Unread != 1 || cv.LastMessage == nil || *cv.LastMessage != m4 {
			return fmt.Errorf("c's group: unread %d, want 1 (a's message; c's own does not count)", cv.Unread)
		}
		return nil
	})
}

// walkBefore pages backwards through conv with limit and checks that the
// pages are exactly want (oldest first), newest first, with next_before
// null exactly on the last page.
func walkBefore(t *testing.T, get func(query string) page, want []apiMessage, limit int) {
	t.Helper()
	var got []apiMessage
	query := fmt.Sprintf("limit=%d", limit)
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			t.Fatalf("limit %d: paging does not end", limit)
		}
		p := get(query)
		remaining := len(want) - len(got)
		if wantN := min(limit, remaining); len(p.Messages) != wantN {
			t.Fatalf("limit %d, %s: %d messages, want %d", limit, query, len(p.Messages), wantN)
		}
		for i, m := range p.Messages {
			if w := want[remaining-1-i]; m != w {
				t.Fatalf("limit %d, %s: message %d is %+v, want %+v", limit, query, i, m, w)
			}
		}
		got = append(got, p.Messages...)
		next := cursor(t, "next_before", p.NextBefore)
		if p.NextAfter != nil {
			t.Errorf("a before page carries next_after %s", p.NextAfter)
		}
		if (next == "") != (len(got) == len(want)) {
			t.Fatalf("limit %d, %s: next_before %q with %d of %d messages seen (null exactly when none older remains)", limit, query, next, len(got), len(want))
		}
		if next == "" {
			return
		}
		query = fmt.Sprintf("before=%s&limit=%d", next, limit)
	}
}

// walkAfter pages forwards from after (exclusive) and checks the pages.
func walkAfter(t *testing.T, get func(query string) page, want []apiMessage, after string, limit int) {
	t.Helper()
	var got []apiMessage
	query := fmt.Sprintf("after=%s&limit=%d", after, limit)
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			t.Fatalf("limit %d: paging does not end", limit)
		}
		p := get(query)
		wantN := min(limit, len(want)-len(got))
		if len(p.Messages) != wantN {
			t.Fatalf("limit %d, %s: %d messages, want %d", limit, query, len(p.Messages), wantN)
		}
		for i, m := range p.Messages {
			if w := want[len(got)+i]; m != w {
				t.Fatalf("limit %d, %s: message %d is %+v, want %+v", limit, query, i, m, w)
			}
		}
		got = append(got, p.Messages...)
		next := cursor(t, "next_after", p.NextAfter)
		if p.NextBefore != nil {
			t.Errorf("an after page carries next_before %s", p.NextBefore)
		}
		if (next == "") != (len(got) == len(want)) {
			t.Fatalf("limit %d, %s: next_after %q with %d of %d messages seen (null exactly when none newer remains)", limit, query, next, len(got), len(want))
		}
		if next == "" {
			return
		}
		query = fmt.Sprintf("after=%s&limit=%d", next, limit)
	}
}

// checkIncreasing asserts IDs strictly increase (as unsigned 64-bit).
func checkIncreasing(t *testing.T, msgs []apiMessage) {
	t.Helper()
	for i := 1; i < len(msgs); i++ {
		if id64(t, msgs[i-1].ID) >= id64(t, msgs[i].ID) {
			t.Fatalf("message %d (%s) is not newer than message %d (%s)", i, msgs[i].ID, i-1, msgs[i-1].ID)
		}
	}
}

func testHistoryPaging(t *testing.T, e *env) {
	us := e.users(t, "pg", 3)
	a, b, c := us[0], us[1], us[2]
	ab := e.direct(t, a, b.User.Username)
	empty := e.history(t, a, ab.ID, "")
	if len(empty.Messages) != 0 || cursor(t, "next_before", empty.NextBefore) != "" {
		t.Errorf("empty conversation: %+v", empty)
	}
	msgs := e.sendMany(t, a, ab.ID, "page", 5)
	checkIncreasing(t, msgs)
	get := func(q string) page { return e.history(t, b, ab.ID, q) }
	for limit := 1; limit <= 6; limit++ {
		walkBefore(t, get, msgs, limit)
		walkAfter(t, get, msgs[1:], msgs[0].ID, limit)
	}
	// Without limit: the newest 50 of 5; without a cursor: the newest.
	p := get("")
	if len(p.Messages) != 5 || p.Messages[0] != msgs[4] || cursor(t, "next_before", p.NextBefore) != "" {
		t.Errorf("default page: %+v", p)
	}
	// Strictly older / strictly newer.
	p = get("before=" + msgs[2].ID)
	if len(p.Messages) != 2 || p.Messages[0] != msgs[1] || p.Messages[1] != msgs[0] || cursor(t, "next_before", p.NextBefore) != "" {
		t.Errorf("before %s: %+v, want messages 1 and 0 and next_before null", msgs[2].ID, p)
	}
	p = get("after=" + msgs[2].ID)
	if len(p.Messages) != 2 || p.Messages[0] != msgs[3] || p.Messages[1] != msgs[4] || cursor(t, "next_after", p.NextAfter) != "" {
		t.Errorf("after %s: %+v, want messages 3 and 4 and next_after null", msgs[2].ID, p)
	}
	p = get("before=" + msgs[0].ID)
	if len(p.Messages) != 0 || cursor(t, "next_before", p.NextBefore) != "" {
		t.Errorf("before the oldest: %+v", p)
	}
	p = get("after=" + msgs[4].ID)
	if len(p.Messages) != 0 || cursor(t, "next_after", p.NextAfter) != "" {
		t.Errorf("after the newest: %+v", p)
	}
	// Members only, and 404 (not 403) for others and for nothing at all.
	e.fail(t, "GET", "/api/v1/conversations/"+ab.ID+"/messages", c.Token, nil, http.StatusNotFound, "not_found")
	e.fail(t, "GET", "/api/v1/conversations/"+ab.ID+"/messages?limit=5", c.Token, nil, http.StatusNotFound, "not_found")
	e.fail(t, "GET", "/api/v1/conversations/123456789/messages", a.Token, nil, http.StatusNotFound, "not_found")
	e.fail(t, "GET", "/api/v1/conversations/"+ab.ID+"/messages", "", nil, http.StatusUnauthorized, "unauthorized")
}

func testHistoryLimits(t *testing.T, e *env) {
	us := e.users(t, "lim", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	msgs := e.sendMany(t, b, ab.ID, "bulk", 201)
	checkIncreasing(t, msgs)
	p := e.history(t, a, ab.ID, "")
	if len(p.Messages) != 50 || p.Messages[0] != msgs[200] || cursor(t, "next_before", p.NextBefore) == "" {
		t.Errorf("default limit: %d messages (newest %v), want the newest 50 and a next_before", len(p.Messages), p.Messages[0].ID)
	}
	for _, limit := range []string{"200", "201", "500", "1000000"} {
		p := e.history(t, a, ab.ID, "limit="+limit)
		if len(p.Messages) != 200 || p.Messages[0] != msgs[200] || p.Messages[199] != msgs[1] {
			t.Errorf("limit=%s: %d messages, want 200 (clamped)", limit, len(p.Messages))
		}
		// Exactly one (msgs[0]) remains older.
		if next := cursor(t, "next_before", p.NextBefore); next == "" {
			t.Errorf("limit=%s: next_before null with one older message left", limit)
		} else if q := e.history(t, a, ab.ID, "before="+next+"&limit="+limit); len(q.Messages) != 1 || q.Messages[0] != msgs[0] || cursor(t, "next_before", q.NextBefore) != "" {
			t.Errorf("limit=%s, before=%s: %d messages, next_before %s; want only the oldest and null", limit, next, len(q.Messages), q.NextBefore)
		}
	}
	// After the oldest, exactly 200 remain: a clamped page that ends exactly.
	p = e.history(t, a, ab.ID, "after="+msgs[0].ID+"&limit=500")
	if len(p.Messages) != 200 || p.Messages[0] != msgs[1] || p.Messages[199] != msgs[200] || cursor(t, "next_after", p.NextAfter) != "" {
		t.Errorf("after the oldest, limit 500: %d messages, next_after %s; want 200 and null", len(p.Messages), p.NextAfter)
	}
	p = e.history(t, a, ab.ID, "after="+msgs[0].ID)
	if len(p.Messages) != 50 || p.Messages[49] != msgs[50] || cursor(t, "next_after", p.NextAfter) == "" {
		t.Errorf("after the oldest, default limit: %d messages, next_after %s; want 50 and an ID", len(p.Messages), p.NextAfter)
	}
}

func testHistoryBadRequests(t *testing.T, e *env) {
	us := e.users(t, "bad", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	path := "/api/v1/conversations/" + ab.ID + "/messages?"
	for _, q := range []string{"limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=", "before=abc", "before=-5", "before=1.5", "before=", "after=xyz",
		"after=-1", "after=18446744073709551616", "before=0x10"} {
		e.fail(t, "GET", path+q, a.Token, nil, http.StatusBadRequest, "invalid_request")
	}
}

func testOperational(t *testing.T, e *env) {
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, body := e.do(t, "GET", p, "", nil); status != http.StatusOK {
			t.Errorf("%s: %d %s", p, status, body)
		}
	}
	// A connection makes the gauge non-zero.
	a := e.signup(t, e.name("ops"), "Ops")
	c, _ := e.dial(t, "ops", a.Token)
	// Metrics and the profiler are the process's, on another address
	// (cmd/chat --metrics-addr): the public port has neither.
	for _, p := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if status, body := e.do(t, "GET", p, "", nil); status != http.StatusNotFound || bytes.Contains(body, []byte("chat_gateway_connections")) || bytes.Contains(body, []byte("goroutine")) {
			t.Errorf("%s on the public port: %d %.200s, want no such page", p, status, body)
		}
	}
	if n, err := testutil.GatherAndCount(gateway.HarnessMetrics(e.gw), "chat_gateway_connections"); err != nil || n != 1 {
		t.Errorf("chat_gateway_connections: %d series, %v", n, err)
	} else if v := gaugeValue(t, gateway.HarnessMetrics(e.gw), "chat_gateway_connections"); v < 1 {
		t.Errorf("chat_gateway_connections = %v with a connection open, want at least 1", v)
	}
	c.close()
}

// ---- WebSocket ----

func testWSAuth(t *testing.T, e *env) {
	a := e.signup(t, e.name("wsa"), "WS A")
	valid, bad := badTokens(t, a)
	e.refused(t, "no token", e.wsBase, nil)
	e.refused(t, "empty token", e.wsBase+"?token=", nil)
	e.refused(t, "Bearer garbage", e.wsBase, http.Header{"Authorization": {"Bearer garbage"}})
	for what, tok := range bad {
		e.refused(t, what+" in the query", e.wsBase+"?token="+url.QueryEscape(tok), nil)
		e.refused(t, what+" in the header", e.wsBase, http.Header{"Authorization": {"Bearer " + tok}})
	}
	for what, u := range map[string]string{"query": e.wsBase + "?token=" + url.QueryEscape(a.Token), "self-signed": e.wsBase + "?token=" + url.QueryEscape(valid)} {
		c := e.dialNoHello(t, what, u, nil)
		if h := c.hello(t); h.User.ID != a.User.ID {
			t.Errorf("%s: hello for %+v, want %+v", what, h.User, a.User)
		}
		c.close()
	}
	c := e.dialNoHello(t, "header", e.wsBase, http.Header{"Authorization": {"Bearer " + a.Token}})
	if h := c.hello(t); h.User != a.User {
		t.Errorf("header: hello for %+v, want %+v", h.User, a.User)
	}
}

func isPresence(user string, online bool) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "presence" {
			return false
		}
		var p struct {
			User   string `json:"user"`
			Online bool   `json:"online"`
		}
		return json.Unmarshal(f.Raw, &p) == nil && p.User == user && p.Online == online
	}
}

func testHelloPresence(t *testing.T, e *env) {
	us := e.users(t, "hp", 3)
	a, b, c := us[0], us[1], us[2]
	g := e.group(t, a, "Presence", b.User.Username, c.User.Username)
	bc, _ := e.dial(t, "b", b.Token)
	ac, h := e.dial(t, "a", a.Token)
	if h.User.ID != a.User.ID || h.User.Username != a.User.Username || h.User.DisplayName != a.User.DisplayName {
		t.Errorf("hello user %+v, want %+v", h.User, a.User)
	}
	cv := findConv(t, h.Conversations, g.ID)
	if cv.Kind != "group" || cv.Title != "Presence" || !slices.Equal(memberIDs(cv), idsOf(a, b, c)) {
		t.Errorf("hello conversation %+v", cv)
	}
	wantOnline := map[string]bool{a.User.ID: true, b.User.ID: true, c.User.ID: false}
	for _, m := range cv.Members {
		if m.Online == nil {
			t.Errorf("hello member %+v has no online field", m)
		} else if *m.Online != wantOnline[m.ID] {
			t.Errorf("hello member %s online=%v, want %v", m.Username, *m.Online, wantOnline[m.ID])
		}
	}
	// a's first connection is announced to b.
	bc.take(t, "presence of a online", isPresence(a.User.ID, true))

	cc, _ := e.dial(t, "c", c.Token)
	ac.take(t, "presence of c online", isPresence(c.User.ID, true))
	bc.take(t, "presence of c online", isPresence(c.User.ID, true))
	closed := time.Now()
	cc.close()
	// Offline within 10 s of the last connection closing (plus a little
	// for the test's own scheduling).
	_, ok := ac.tryTake(10*time.Second+500*time.Millisecond, isPresence(c.User.ID, false))
	if !ok {
		t.Errorf("a got no presence offline for c within 10s of its last connection closing")
	} else if d := time.Since(closed); d > 10500*time.Millisecond {
		t.Errorf("offline presence after %v", d)
	}
	bc.take(t, "presence of c offline", isPresence(c.User.ID, false))
}

func isMessage(conv string) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "message" {
			return false
		}
		var m struct {
			Message apiMessage `json:"message"`
		}
		return json.Unmarshal(f.Raw, &m) == nil && m.Message.Conversation == conv
	}
}

func isMessageID(id string) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "message" {
			return false
		}
		var m struct {
			Message apiMessage `json:"message"`
		}
		return json.Unmarshal(f.Raw, &m) == nil && m.Message.ID == id
	}
}

func messageOf(t testing.TB, f frame) apiMessage {
	t.Helper()
	var m struct {
		Message apiMessage `json:"message"`
	}
	f.decode(t, &m)
	checkMessage(t, m.Message)
	return m.Message
}

func testSendAck(t *testing.T, e *env) {
	us := e.users(t, "snd", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	a2, _ := e.dial(t, "a2", a.Token)
	b1, _ := e.dial(t, "b1", b.Token)
	f := a1.request(t, "s1", sendReq{"send", "s1", ab.ID, "c-1", "hello there"})
	var ack struct {
		Type    string     `json:"type"`
		ID      string     `json:"id"`
		Message apiMessage `json:"message"`
	}
	f.decode(t, &ack)
	m := ack.Message
	checkMessage(t, m)
	if ack.Type != "ack" || ack.ID != "s1" || m.Conversation != ab.ID || m.Sender != a.User.ID || m.Body != "hello there" || m.ClientID != "c-1" {
		t.Errorf("ack %s", f.Raw)
	}
	for _, c := range []*wsClient{a2, b1} {
		if got := messageOf(t, c.take(t, "message", isMessage(ab.ID))); got != m {
			t.Errorf("%s got message %+v, want %+v", c.name, got, m)
		}
	}
	// A reply to b arrives at both of a's connections (a1, the sending
	// connection of m, may have had m as a message too).
	r := b1.send(t, ab.ID, "c-2", "hi back")
	for _, c := range []*wsClient{a1, a2} {
		if got := messageOf(t, c.take(t, "message", isMessageID(r.ID))); got != r {
			t.Errorf("%s got message %+v, want %+v", c.name, got, r)
		}
	}
	if id64(t, r.ID) <= id64(t, m.ID) {
		t.Errorf("later message %s has a smaller ID than %s", r.ID, m.ID)
	}
	// An ack without a request id still carries the message.
	a1.write(t, map[string]string{"type": "send", "conversation": ab.ID, "client_id": "c-3", "body": "no id"})
	f = a1.take(t, "ack without id", ofType("ack"))
	if got := ackMessage(t, f); got.Body != "no id" {
		t.Errorf("ack %s", f.Raw)
	}
}

func testIdempotence(t *testing.T, e *env) {
	us := e.users(t, "idem", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	a2, _ := e.dial(t, "a2", a.Token)
	b1, _ := e.dial(t, "b1", b.Token)
	first := a1.send(t, ab.ID, "same-client-id", "the original")
	if again := a1.send(t, ab.ID, "same-client-id", "a different body"); again != first {
		t.Errorf("resend: %+v, want the first message %+v", again, first)
	}
	if again := a2.send(t, ab.ID, "same-client-id", "from the other connection"); again != first {
		t.Errorf("resend on another connection: %+v, want %+v", again, first)
	}
	// Another sender's client_id is another message.
	other := b1.send(t, ab.ID, "same-client-id", "b's own")
	if other.ID == first.ID || other.Sender != b.User.ID || other.Body != "b's own" {
		t.Errorf("b's send with a's client_id: %+v", other)
	}
	p := e.history(t, a, ab.ID, "")
	n := 0
	for _, m := range p.Messages {
		if m.Sender == a.User.ID && m.ClientID == "same-client-id" {
			n++
			if m != first {
				t.Errorf("stored %+v, want %+v", m, first)
			}
		}
	}
	if n != 1 || len(p.Messages) != 2 {
		t.Errorf("history holds %d of a's messages with the client_id and %d in all, want 1 and 2: %+v", n, len(p.Messages), p.Messages)
	}
}

func testMessageValidation(t *testing.T, e *env) {
	us := e.users(t, "val", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	c, _ := e.dial(t, "a", a.Token)
	i := 0
	bad := func(what string, req map[string]any) {
		t.Helper()
		i++
		id := fmt.Sprintf("v%d", i)
		req["type"], req["id"], req["conversation"] = "send", id, ab.ID
		t.Run(what, func(t *testing.T) { c.errorFor(t, id, req, "invalid_message") })
	}
	for what, cid := range map[string]string{"empty": "", "65 chars": strings.Repeat("k", 65), "control char": "abc\x01", "newline": "ab\ncd",
		"DEL": "ab\x7f", "non-ASCII": "clé", "tab": "a\tb"} {
		bad("client_id "+what, map[string]any{"client_id": cid, "body": "fine"})
	}
	bad("client_id missing", map[string]any{"body": "fine"})
	bad("client_id number", map[string]any{"client_id": 5, "body": "fine"})
	for what, body := range map[string]string{"empty": "", "spaces": "   ", "ASCII white space": " \t\r\n\v\f", "ideographic space": "\u3000\u3000",
		"Unicode spaces": "\u00a0\u2003\u2028\u2029\u205f\u3000\u1680\u0085", "4097 code points": strings.Repeat("😀", 4097), "4097 ASCII": strings.Repeat("x", 4097)} {
		bad("body "+what, map[string]any{"client_id": "ok-" + what, "body": body})
	}
	bad("body missing", map[string]any{"client_id": "ok-missing"})

	okCID := strings.Repeat("~", 32) + strings.Repeat(" ", 1) + strings.Repeat("A", 31) // 64 printable
	emoji := strings.Repeat("😀", 4096)
	m1 := c.send(t, ab.ID, okCID, emoji)
	if m1.Body != emoji || m1.ClientID != okCID {
		t.Errorf("4096 emoji: stored body of %d bytes, client_id %q", len(m1.Body), m1.ClientID)
	}
	m2 := c.send(t, ab.ID, "x", " \u3000padded body\u3000 ")
	p := e.history(t, b, ab.ID, "")
	if len(p.Messages) != 2 || p.Messages[0] != m2 || p.Messages[1] != m1 {
		t.Errorf("history after the rejected sends holds %d messages, want only the 2 accepted", len(p.Messages))
	}
}

func testHistoryFrames(t *testing.T, e *env) {
	us := e.users(t, "hf", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	msgs := e.sendMany(t, a, ab.ID, "hist", 5)
	c, _ := e.dial(t, "b", b.Token)
	get := func(q string) page {
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		extra := map[string]any{}
		for _, k := range []string{"before", "after"} {
			if v.Has(k) {
				extra[k] = v.Get(k)
			}
		}
		if v.Has("limit") {
			var n int
			fmt.Sscan(v.Get("limit"), &n)
			extra["limit"] = n
		}
		return c.history(t, ab.ID, extra)
	}
	for limit := 1; limit <= 6; limit++ {
		walkBefore(t, get, msgs, limit)
		walkAfter(t, get, msgs[1:], msgs[0].ID, limit)
	}
	p := c.history(t, ab.ID, nil)
	if len(p.Messages) != 5 || p.Messages[0] != msgs[4] || cursor(t, "next_before", p.NextBefore) != "" {
		t.Errorf("history without cursor or limit: %+v", p)
	}
	p = c.history(t, ab.ID, map[string]any{"after": msgs[4].ID})
	if len(p.Messages) != 0 || cursor(t, "next_after", p.NextAfter) != "" {
		t.Errorf("after the newest: %+v", p)
	}
	for i, extra := range []map[string]any{{"limit": 0}, {"limit": -1}, {"before": "abc"}, {"after": "-1"}, {"before": ""}} {
		id := fmt.Sprintf("hb%d", i)
		req := map[string]any{"type": "history", "id": id, "conversation": ab.ID}
		for k, v := range extra {
			req[k] = v
		}
		c.errorFor(t, id, req, "bad_request")
	}
}

func testReadYourWrites(t *testing.T, e *env) {
	us := e.users(t, "ryw", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	c, _ := e.dial(t, "a", a.Token)
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("w%d", i)
		c.write(t, sendReq{"send", ids[i], ab.ID, ids[i], fmt.Sprintf("write %d", i)})
	}
	acked := make([]apiMessage, n)
	for i, id := range ids {
		acked[i] = ackMessage(t, c.take(t, "ack "+id, reply(id)))
	}
	checkIncreasing(t, acked)
	// Asked right after the last ack: every acked message is there.
	p := c.history(t, ab.ID, map[string]any{"limit": 50})
	q := e.history(t, b, ab.ID, "limit=50")
	for _, pg := range []page{p, q} {
		if len(pg.Messages) != n {
			t.Fatalf("history right after %d acks holds %d messages", n, len(pg.Messages))
		}
		for i, m := range pg.Messages {
			if m != acked[n-1-i] {
				t.Errorf("history[%d] = %+v, want %+v", i, m, acked[n-1-i])
			}
		}
	}
}

func isRead(conv, user, msg string) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "read" {
			return false
		}
		var r struct {
			Conversation string `json:"conversation"`
			User         string `json:"user"`
			MessageID    string `json:"message_id"`
		}
		return json.Unmarshal(f.Raw, &r) == nil && r.Conversation == conv && r.User == user && (msg == "" || r.MessageID == msg)
	}
}

func testReadMarks(t *testing.T, e *env) {
	us := e.users(t, "rd", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	a2, _ := e.dial(t, "a2", a.Token)
	b1, _ := e.dial(t, "b1", b.Token)
	var m []apiMessage
	for i := 0; i < 4; i++ {
		m = append(m, b1.send(t, ab.ID, fmt.Sprintf("r%d", i), fmt.Sprintf("from b %d", i)))
	}
	m = append(m, a1.send(t, ab.ID, "r4", "from a"))
	unread := func(who account) int { return findConv(t, e.conversations(t, who), ab.ID).Unread }
	unreadIs := func(what string, who account, want int) {
		t.Helper()
		eventually(t, what, func() error {
			if u := unread(who); u != want {
				return fmt.Errorf("unread %d, want %d", u, want)
			}
			return nil
		})
	}
	unreadIs("a's unread (b's messages, not a's own)", a, 4)
	unreadIs("b's unread", b, 1)
	read := func(msg string) {
		a1.write(t, map[string]string{"type": "read", "conversation": ab.ID, "message_id": msg})
	}
	read(m[1].ID)
	b1.take(t, "read of m1", isRead(ab.ID, a.User.ID, m[1].ID))
	a2.take(t, "read of m1 (the reader's other connection)", isRead(ab.ID, a.User.ID, m[1].ID))
	unreadIs("a's unread after reading message 1", a, 2)
	// Backwards: no broadcast, no change. The next forward read is the
	// barrier: b1 and a2 must see it as the next read frame.
	read(m[0].ID)
	read(m[2].ID)
	for _, c := range []*wsClient{b1, a2} {
		f := c.take(t, "next read", isRead(ab.ID, a.User.ID, ""))
		if !isRead(ab.ID, a.User.ID, m[2].ID)(f) {
			t.Errorf("%s: next read frame %s, want message %s (the older read must not be broadcast)", c.name, f.Raw, m[2].ID)
		}
	}
	unreadIs("a's unread after reading message 2", a, 1)
	read(m[0].ID)
	a1.history(t, ab.ID, map[string]any{"limit": 1}) // same connection: handled after the read
	if u := unread(a); u != 1 {
		t.Errorf("after an older read, a's unread is %d, want still 1", u)
	}
	if u := unread(b); u != 1 {
		t.Errorf("b's unread %d, want 1 (a's read marks are a's)", u)
	}
	b1.write(t, map[string]string{"type": "read", "conversation": ab.ID, "message_id": m[4].ID})
	a1.take(t, "b's read", isRead(ab.ID, b.User.ID, m[4].ID))
	unreadIs("b's unread after reading a's message", b, 0)
}

func isTyping(conv, user string) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "typing" {
			return false
		}
		var r struct {
			Conversation string `json:"conversation"`
			User         string `json:"user"`
		}
		return json.Unmarshal(f.Raw, &r) == nil && r.Conversation == conv && r.User == user
	}
}

func testTyping(t *testing.T, e *env) {
	us := e.users(t, "typ", 3)
	a, b, c := us[0], us[1], us[2]
	g := e.group(t, a, "Typing", b.User.Username, c.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	a2, _ := e.dial(t, "a2", a.Token)
	b1, _ := e.dial(t, "b1", b.Token)
	c1, _ := e.dial(t, "c1", c.Token)
	// Everyone is subscribed once a message reached every connection (a
	// frame right after hello is LiveRightAfterHello's business).
	m := a1.send(t, g.ID, "typ-barrier", "barrier")
	for _, cl := range []*wsClient{a2, b1, c1} {
		cl.take(t, "barrier message", isMessageID(m.ID))
	}
	typing := func(cl *wsClient) {
		cl.write(t, map[string]string{"type": "typing", "conversation": g.ID})
	}
	typing(a1)
	b1.take(t, "a typing", isTyping(g.ID, a.User.ID))
	c1.take(t, "a typing", isTyping(g.ID, a.User.ID))
	// b typing after a is the barrier: once a's connections have it, a's
	// own typing would have arrived before it.
	typing(b1)
	for _, cl := range []*wsClient{a1, a2} {
		cl.take(t, "b typing", isTyping(g.ID, b.User.ID))
		cl.none(t, "a's own typing", isTyping(g.ID, a.User.ID))
	}
	c1.take(t, "b typing", isTyping(g.ID, b.User.ID))
	typing(c1)
	b1.take(t, "c typing", isTyping(g.ID, c.User.ID))
	b1.none(t, "b's own typing", isTyping(g.ID, b.User.ID))
}

func testPing(t *testing.T, e *env) {
	a := e.signup(t, e.name("png"), "Ping")
	c, _ := e.dial(t, "a", a.Token)
	f := c.request(t, "p1", map[string]string{"type": "ping", "id": "p1"})
	if f.Type != "pong" {
		t.Errorf("ping answered %s", f.Raw)
	}
	c.write(t, map[string]any{"type": "ping", "id": 7})
	f = c.take(t, "pong 7", ofType("pong"))
	if string(f.ID) != "7" {
		t.Errorf("pong for id 7: %s", f.Raw)
	}
	c.write(t, map[string]string{"type": "ping"})
	c.take(t, "pong without id", ofType("pong"))
	// A WebSocket (RFC 6455) ping is answered with a pong.
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	if err := c.c.Ping(ctx); err != nil {
		t.Errorf("WebSocket ping: %v", err)
	}
}

func isConversation(id string) func(frame) bool {
	return func(f frame) bool {
		if f.Type != "conversation" {
			return false
		}
		var r struct {
			Conversation apiConversation `json:"conversation"`
		}
		return json.Unmarshal(f.Raw, &r) == nil && r.Conversation.ID == id
	}
}

func conversationOf(t testing.TB, f frame) apiConversation {
	t.Helper()
	var r struct {
		Conversation apiConversation `json:"conversation"`
	}
	f.decode(t, &r)
	return r.Conversation
}

func testConversationFrames(t *testing.T, e *env) {
	us := e.users(t, "cf", 3)
	a, b, c := us[0], us[1], us[2]
	a1, _ := e.dial(t, "a1", a.Token)
	a2, _ := e.dial(t, "a2", a.Token)
	b1, _ := e.dial(t, "b1", b.Token)
	g := e.group(t, a, "Fresh", b.User.Username, c.User.Username)
	for _, cl := range []*wsClient{a1, a2, b1} {
		cv := conversationOf(t, cl.take(t, "conversation frame", isConversation(g.ID)))
		if cv.Kind != "group" || cv.Title != "Fresh" || !slices.Equal(memberIDs(cv), idsOf(a, b, c)) {
			t.Errorf("%s: conversation frame %+v", cl.name, cv)
		}
	}
	// The new conversation is live on the connections at once.
	m := b1.send(t, g.ID, "cf1", "first words")
	for _, cl := range []*wsClient{a1, a2} {
		if got := messageOf(t, cl.take(t, "message in the new group", isMessage(g.ID))); got != m {
			t.Errorf("%s: %+v, want %+v", cl.name, got, m)
		}
	}
	if got := a1.send(t, g.ID, "cf2", "reply"); got.Conversation != g.ID {
		t.Errorf("send into the new group: %+v", got)
	}
	_, h := e.dial(t, "c1", c.Token)
	findConv(t, h.Conversations, g.ID)

	// A direct conversation is created too: each side's frame is titled
	// with the other's display name, and so is each side's hello.
	ab := e.direct(t, a, b.User.Username)
	for _, x := range []struct {
		cl    *wsClient
		title string
	}{{a1, b.User.DisplayName}, {a2, b.User.DisplayName}, {b1, a.User.DisplayName}} {
		cv := conversationOf(t, x.cl.take(t, "conversation frame of the direct", isConversation(ab.ID)))
		if cv.Kind != "direct" || cv.Title != x.title || !slices.Equal(memberIDs(cv), idsOf(a, b)) {
			t.Errorf("%s: direct's conversation frame %+v, want title %q", x.cl.name, cv, x.title)
		}
	}
	_, hb := e.dial(t, "b2", b.Token)
	if cv := findConv(t, hb.Conversations, ab.ID); cv.Title != a.User.DisplayName {
		t.Errorf("b's hello titles the direct %q, want %q", cv.Title, a.User.DisplayName)
	}
	eventually(t, "c's conversation list", func() error {
		if cv := findConv(t, e.conversations(t, c), g.ID); cv.LastMessage == nil || cv.LastMessage.Body != "reply" || cv.Unread != 2 {
			return fmt.Errorf("%+v, want last message 'reply' and 2 unread", cv)
		}
		return nil
	})
}

func testAddMemberLive(t *testing.T, e *env) {
	us := e.users(t, "am", 3)
	a, b, d := us[0], us[1], us[2]
	g := e.group(t, a, "Growing", b.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	d1, _ := e.dial(t, "d1", d.Token)
	d2, _ := e.dial(t, "d2", d.Token)
	var added apiConversation
	e.call(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]string{"username": d.User.Username}, http.StatusOK, &added)
	// Sent right after the 200: the added user's open connections must
	// receive it ("start receiving that conversation at once").
	m := a1.send(t, g.ID, "am1", "welcome")
	for _, cl := range []*wsClient{d1, d2} {
		if got := messageOf(t, cl.take(t, "message after being added", isMessage(g.ID))); got != m {
			t.Errorf("%s: %+v, want %+v", cl.name, got, m)
		}
		cv := conversationOf(t, cl.take(t, "conversation frame", isConversation(g.ID)))
		if !slices.Equal(memberIDs(cv), idsOf(a, b, d)) {
			t.Errorf("%s: conversation frame members %v, want %v", cl.name, memberIDs(cv), idsOf(a, b, d))
		}
	}
	a1.take(t, "conversation frame for the existing member", isConversation(g.ID))
	if got := d1.send(t, g.ID, "am2", "thanks"); got.Conversation != g.ID {
		t.Errorf("the added member's send: %+v", got)
	}
	messageOf(t, a1.take(t, "the added member's message", isMessage(g.ID)))
}

func testOrder(t *testing.T, e *env) {
	us := e.users(t, "ord", 3)
	a, b, c := us[0], us[1], us[2]
	g := e.group(t, a, "Order", b.User.Username, c.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	b1, _ := e.dial(t, "b1", b.Token)
	c1, _ := e.dial(t, "c1", c.Token)
	c2, _ := e.dial(t, "c2", c.Token)
	const n = 25
	for i := 0; i < n; i++ {
		a1.write(t, sendReq{"send", fmt.Sprintf("oa%d", i), g.ID, fmt.Sprintf("oa%d", i), "from a"})
		b1.write(t, sendReq{"send", fmt.Sprintf("ob%d", i), g.ID, fmt.Sprintf("ob%d", i), "from b"})
	}
	for i := 0; i < n; i++ {
		ackMessage(t, a1.take(t, "ack", reply(fmt.Sprintf("oa%d", i))))
		ackMessage(t, b1.take(t, "ack", reply(fmt.Sprintf("ob%d", i))))
	}
	for _, cl := range []*wsClient{c1, c2} {
		var got []apiMessage
		for len(got) < 2*n {
			got = append(got, messageOf(t, cl.take(t, "message", isMessage(g.ID))))
		}
		checkIncreasing(t, got)
	}
	// a receives b's messages (and maybe its own) in order too.
	var got []apiMessage
	for {
		f, ok := a1.tryTake(0, isMessage(g.ID))
		if !ok {
			break
		}
		got = append(got, messageOf(t, f))
	}
	checkIncreasing(t, got)
}

func testNotMember(t *testing.T, e *env) {
	us := e.users(t, "nm", 3)
	a, b, c := us[0], us[1], us[2]
	g := e.group(t, b, "Secret", c.User.Username)
	bc := e.direct(t, b, c.User.Username)
	b1, _ := e.dial(t, "b1", b.Token)
	secret := b1.send(t, g.ID, "s", "for b and c only")
	a1, _ := e.dial(t, "a1", a.Token)
	for _, conv := range []string{g.ID, bc.ID, "123456789", "not-an-id"} {
		a1.errorFor(t, "ns-"+conv, sendReq{"send", "ns-" + conv, conv, "x", "intrusion"}, "not_found")
		a1.errorFor(t, "nh-"+conv, map[string]any{"type": "history", "id": "nh-" + conv, "conversation": conv}, "not_found")
		a1.errorFor(t, "nr-"+conv, map[string]any{"type": "read", "id": "nr-" + conv, "conversation": conv, "message_id": secret.ID}, "not_found")
		a1.errorFor(t, "nt-"+conv, map[string]any{"type": "typing", "id": "nt-" + conv, "conversation": conv}, "not_found")
	}
	p := e.history(t, c, g.ID, "")
	if len(p.Messages) != 1 {
		t.Errorf("the refused send was stored: %+v", p.Messages)
	}
	a1.none(t, "anything from the secret group", func(f frame) bool { return strings.Contains(string(f.Raw), g.ID) })
}

func testBadFrames(t *testing.T, e *env) {
	a := e.signup(t, e.name("bf"), "Bad Frames")
	c, _ := e.dial(t, "a", a.Token)
	noID := func(f frame) bool { return f.Type == "error" && f.ID == nil }
	for _, raw := range []string{"not json", "{", "[1,2]", `"type"`, "42"} {
		c.write(t, []byte(raw))
		f := c.take(t, "error for "+raw, noID)
		if f.Code != "bad_request" {
			t.Errorf("%q answered %s, want bad_request", raw, f.Raw)
		}
	}
	c.errorFor(t, "m1", map[string]string{"id": "m1"}, "bad_request")
	c.errorFor(t, "m2", map[string]string{"id": "m2", "type": "nope"}, "bad_request")
	c.errorFor(t, "m3", map[string]string{"id": "m3", "type": ""}, "bad_request")
	if f := c.request(t, "alive", map[string]string{"type": "ping", "id": "alive"}); f.Type != "pong" {
		t.Errorf("after bad frames, ping answered %s", f.Raw)
	}
}

// pingOfSize is a ping frame of exactly n bytes (padded with spaces).
func pingOfSize(id string, n int) []byte {
	head := `{"type":"ping","id":"` + id + `"`
	return []byte(head + strings.Repeat(" ", n-len(head)-1) + "}")
}

func testSizeLimit(t *testing.T, e *env) {
	a := e.signup(t, e.name("sz"), "Size")
	c, _ := e.dial(t, "a", a.Token)
	if f := c.request(t, "max", pingOfSize("max", 65536)); f.Type != "pong" {
		t.Errorf("a 65,536-byte message answered %s, want pong", f.Raw)
	}
	// The server may close before reading all of it: a failed write is
	// fine, the close code is what counts.
	ctx, cancel := context.WithTimeout(context.Background(), frameWait)
	defer cancel()
	werr := c.c.Write(ctx, websocket.MessageText, pingOfSize("over", 65537))
	if code := c.closeStatus(t); code != websocket.StatusMessageTooBig {
		t.Errorf("a 65,537-byte message: close code %d, want 1009 (write: %v; reader: %v)", code, werr, c.err)
	}
}

func testFragments(t *testing.T, e *env) {
	a := e.signup(t, e.name("frag"), "Fragments")
	// Under the limit, a fragmented message is reassembled and handled.
	r := e.dialRaw(t, a.Token)
	msg := pingOfSize("fragged", 60000)
	r.writeFrame(t, false, 1, msg[:20000])
	r.writeFrame(t, false, 0, msg[20000:40000])
	r.writeFrame(t, true, 0, msg[40000:])
	r.awaitText(t, `"fragged"`)
	// Over it after reassembly (no fragment is over it on its own).
	big := pingOfSize("toobig", 90000)
	r.writeFrame(t, false, 1, big[:30000])
	r.writeFrame(t, false, 0, big[30000:60000])
	r.writeFrame(t, true, 0, big[60000:])
	if code := r.awaitClose(t); code != 1009 {
		t.Errorf("fragmented 90,000-byte message: close code %d, want 1009", code)
	}
	// A control frame between fragments is allowed; the total still counts.
	r2 := e.dialRaw(t, a.Token)
	r2.writeFrame(t, false, 1, big[:40000])
	r2.writeFrame(t, true, 9, []byte("hi")) // ping
	r2.writeFrame(t, true, 0, big[40000:])
	if code := r2.awaitClose(t); code != 1009 {
		t.Errorf("fragmented 90,000-byte message around a ping: close code %d, want 1009", code)
	}
}

func testBinaryUTF8(t *testing.T, e *env) {
	a := e.signup(t, e.name("bin"), "Binary")
	c, _ := e.dial(t, "binary", a.Token)
	c.writeRaw(t, websocket.MessageBinary, []byte(`{"type":"ping","id":"b"}`))
	if code := c.closeStatus(t); code != websocket.StatusUnsupportedData {
		t.Errorf("binary frame: close code %d, want 1003", code)
	}
	c2, _ := e.dial(t, "utf8", a.Token)
	c2.writeRaw(t, websocket.MessageText, []byte("{\"type\":\"ping\",\"id\":\"\xff\xfe\"}"))
	if code := c2.closeStatus(t); code != websocket.StatusInvalidFramePayloadData {
		t.Errorf("invalid UTF-8 text: close code %d, want 1007", code)
	}
	// Invalid UTF-8 split across fragments (each fragment alone is not
	// the problem: a code point is cut, then broken).
	r := e.dialRaw(t, a.Token)
	r.writeFrame(t, false, 1, []byte("{\"type\":\"ping\",\"id\":\"\xe2\x82"))
	r.writeFrame(t, true, 0, []byte("\x28\"}"))
	if code := r.awaitClose(t); code != 1007 {
		t.Errorf("invalid UTF-8 across fragments: close code %d, want 1007", code)
	}
}

func testRateLimit(t *testing.T, e *env) {
	a := e.signup(t, e.name("rl"), "Rate")
	c, _ := e.dial(t, "a", a.Token)
	const n = 120
	for i := 0; i < n; i++ {
		c.write(t, map[string]string{"type": "ping", "id": fmt.Sprintf("rl%d", i)})
	}
	pongs, limited := 0, 0
	for i := 0; i < n; i++ {
		f := c.take(t, "answer", reply(fmt.Sprintf("rl%d", i)))
		switch {
		case f.Type == "pong":
			pongs++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Errorf("ping answered %s", f.Raw)
		}
	}
	if limited == 0 || pongs == 0 {
		t.Errorf("a burst of %d pings: %d pongs, %d rate_limited; want both", n, pongs, limited)
	}
	// Still open and usable once the rate allows: poll with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		id := fmt.Sprintf("after%d", i)
		if f := c.request(t, id, map[string]string{"type": "ping", "id": id}); f.Type == "pong" {
			break
		} else if f.Code != "rate_limited" {
			t.Fatalf("ping after the burst answered %s", f.Raw)
		}
		if time.Now().After(deadline) {
			t.Fatal("still rate limited 10 s after the burst")
		}
		<-tick.C
	}
}

func testCatchUp(t *testing.T, e *env) {
	us := e.users(t, "cu", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	b1, _ := e.dial(t, "b1", b.Token)
	a1, _ := e.dial(t, "a1", a.Token)
	first := b1.send(t, ab.ID, "cu0", "before the gap")
	newest := messageOf(t, a1.take(t, "a message", isMessageID(first.ID))).ID
	_ = a1.request(t, "cu-barrier", map[string]string{"type": "ping", "id": "cu-barrier"})
	a1.close()
	missed := e.sendMany(t, b, ab.ID, "missed", 7)
	// Reconnect: history after the newest known ID holds everything acked.
	a2, _ := e.dial(t, "a2", a.Token)
	p := a2.history(t, ab.ID, map[string]any{"after": newest, "limit": 3})
	var got []apiMessage
	for {
		got = append(got, p.Messages...)
		next := cursor(t, "next_after", p.NextAfter)
		if next == "" {
			break
		}
		if len(got) > len(missed) {
			t.Fatalf("catch-up pages past the %d missed messages", len(missed))
		}
		p = a2.history(t, ab.ID, map[string]any{"after": next, "limit": 3})
	}
	if !slices.Equal(got, missed) {
		t.Errorf("catch-up got %d messages %+v, want the %d missed %+v", len(got), got, len(missed), missed)
	}
}

func testTokenExpiry(t *testing.T, e *env) {
	a := e.signup(t, e.name("exp"), "Expiring")
	claims := claimsFor(a)
	claims["exp"] = time.Now().Add(2 * time.Second).Unix()
	tok := signToken(t, []byte(testSecret), claims)
	c, _ := e.dial(t, "expiring", tok)
	// Closed with 4001 once the token expires (poll: closeStatus waits).
	if code := c.closeStatus(t); code != 4001 {
		t.Errorf("close code %d when the token expired, want 4001", code)
	}
}

func testEmptyLists(t *testing.T, e *env) {
	a := e.signup(t, e.name("empty"), "Empty")
	b := e.signup(t, e.name("empty"), "Empty Too")
	isArray := func(what string, body []byte, field string) {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil || !strings.HasPrefix(string(m[field]), "[") {
			t.Errorf("%s: %s is %s, want an array (even when empty)", what, field, m[field])
		}
	}
	_, body := e.do(t, "GET", "/api/v1/conversations", a.Token, nil)
	isArray("conversations of a new user", body, "conversations")
	_, body = e.do(t, "GET", "/api/v1/users?prefix=zzznomatch", a.Token, nil)
	isArray("search without a match", body, "users")
	ab := e.direct(t, a, b.User.Username)
	_, body = e.do(t, "GET", "/api/v1/conversations/"+ab.ID+"/messages", a.Token, nil)
	isArray("history of a new conversation", body, "messages")
	c := e.dialNoHello(t, "fresh", e.wsBase+"?token="+url.QueryEscape(e.signup(t, e.name("empty"), "").Token), nil)
	f := c.take(t, "hello", ofType("hello"))
	isArray("hello of a new user", f.Raw, "conversations")
}

// testLiveAfterHello: once hello arrived, the connection receives its
// conversations' messages; a message acked after hello must come as a
// message frame (it is not in hello, and the client has no reason to ask
// history for it). Repeated because the window, if any, is short.
func testLiveAfterHello(t *testing.T, e *env) {
	us := e.users(t, "lah", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	var a1 *wsClient
	for i := 0; i < 100; i++ {
		if i%40 == 0 { // a fresh sender within its burst
			if a1 != nil {
				a1.close()
			}
			a1, _ = e.dial(t, fmt.Sprintf("a-%d", i), a.Token)
		}
		b1, _ := e.dial(t, fmt.Sprintf("b-%d", i), b.Token)
		m := a1.send(t, ab.ID, fmt.Sprintf("lah%d", i), "right after your hello")
		if _, ok := b1.tryTake(3*time.Second, isMessageID(m.ID)); !ok {
			t.Fatalf("connection %d: message %s, acked after the connection's hello, never arrived (in 3 s)", i, m.ID)
		}
		b1.close()
	}
}

// testSlowConsumer: a member that does not read is disconnected (with
// 1013 when the close frame can still be written) while the sender's
// acks keep coming.
func testSlowConsumer(t *testing.T, e *env) {
	us := e.users(t, "slow", 2)
	a, b := us[0], us[1]
	ab := e.direct(t, a, b.User.Username)
	// b reads its hello and then nothing, through a small receive window.
	r := e.dialRawBuf(t, b.Token, 4096)
	// Each message frame is about 25 KB (a control character is escaped
	// as \u0001, the largest a body can get): 360 of them are about 9 MB,
	// beyond the server's socket buffer (at most 4 MiB here; about 2.8 MB
	// seen) plus the write queue (4 MiB default).
	body := strings.Repeat("\x01", 4096)
	// One sender connection at a time: each also gets every message.
	const n, perConn = 360, 40
	for sent := 0; sent < n; sent += perConn {
		c, _ := e.dial(t, fmt.Sprintf("sender %d", sent/perConn), a.Token)
		ids := make([]string, perConn)
		for k := range ids {
			ids[k] = nextID("slow")
			c.write(t, sendReq{"send", ids[k], ab.ID, ids[k], body})
		}
		for _, id := range ids {
			ackMessage(t, c.take(t, "ack "+id, reply(id)))
		}
		c.close()
	}
	code, texts := r.drainToEnd(t, 30*time.Second)
	if texts >= n {
		t.Errorf("the slow client got all %d messages: it was never disconnected", texts)
	}
	if code != -1 && code != 1013 {
		t.Errorf("slow client closed with code %d, want 1013 (or no close frame)", code)
	}
	t.Logf("slow client: %d of %d messages before the end, close code %d", texts, n, code)
}

// gaugeValue is the value of an unlabelled gauge on g.
func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
