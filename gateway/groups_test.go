package gateway_test

// Protocol tests of issue 11: replies bounded in bytes whatever users
// write, member_count and paged members, the paged conversation list, and
// groups of 10,000 members.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/gateway"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/golang-jwt/jwt/v5"
)

// bigEnv is env with the harness's NATS connection, for making thousands
// of accounts through the store (a sign-up over HTTP is an argon2id hash).
type bigEnv struct {
	*env
	st *storeclient.Client
}

func newBigEnv(t *testing.T) *bigEnv {
	t.Helper()
	addr, gw, nc := gateway.NewHarnessNATS(t, func(c *gateway.Config) {
		c.JWTSecret = []byte(testSecret)
		c.Drain = time.Second
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	e := &env{gw: gw, base: "http://" + addr, wsBase: "ws://" + addr + "/ws", client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
	return &bigEnv{env: e, st: storeclient.NewClient(nc, storeclient.ClientConfig{Timeout: 30 * time.Second})}
}

// fastUsers makes n accounts through the store with tokens signed as the
// server signs them.
func (e *bigEnv) fastUsers(t testing.TB, prefix string, n int) []account {
	t.Helper()
	out := make([]account, n)
	for i := range out {
		name := e.name(prefix)
		u, err := e.st.Signup(context.Background(), chat.Account{
			User: chat.User{Username: name, DisplayName: "Display " + name}, PasswordHash: "not-a-hash",
		})
		if err != nil {
			t.Fatalf("signup %s: %v", name, err)
		}
		a := account{User: apiUser{ID: u.ID.String(), Username: u.Username, DisplayName: u.DisplayName}}
		a.Token = signToken(t, []byte(testSecret), jwt.MapClaims{
			"sub": a.User.ID, "name": a.User.Username, "iss": "chat", "aud": []string{"chat-clients"},
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			"sid": "1", // a session that was never revoked passes
		})
		out[i] = a
	}
	return out
}

func usernames(as []account) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.User.Username
	}
	return out
}

// bigConversation is a Conversation decoded with member_count and the
// members field's presence told apart from an empty list.
type bigConversation struct {
	ID          string           `json:"id"`
	Kind        string           `json:"kind"`
	Members     *json.RawMessage `json:"members"`
	MemberCount *int             `json:"member_count"`
}

// membersPage is the answer to a members request.
type membersPage struct {
	Conversation string          `json:"conversation"`
	Members      []apiUser       `json:"members"`
	NextAfter    json.RawMessage `json:"next_after"`
	MemberCount  int             `json:"member_count"`
	OnlineCount  *int            `json:"online_count"`
}

func TestBigGroups(t *testing.T) {
	e := newBigEnv(t)
	t.Run("LargestMessages", func(t *testing.T) { testLargestMessages(t, e) })
	t.Run("MemberCountAndPagedMembers", func(t *testing.T) { testPagedMembers(t, e) })
	t.Run("PagedConversationList", func(t *testing.T) { testPagedList(t, e) })
	t.Run("PresenceInBigGroups", func(t *testing.T) { testBigPresence(t, e) })
	t.Run("TenThousand", func(t *testing.T) { testTenThousand(t, e) })
}

// largest is the body that costs the most bytes on the wire: 4,096 control
// characters, each escaped as \u0001 (about 24.6 KB of JSON).
var largest = strings.Repeat("\x01", chat.MaxBody)

// testLargestMessages fills conversations with the largest messages allowed:
// a member of 30 groups each holding one (740 KB of last messages) still
// connects and lists its conversations (a page ending early, with its
// cursor), and a conversation of 60 such messages pages through history.
func testLargestMessages(t *testing.T, e *bigEnv) {
	us := e.fastUsers(t, "lm", 2)
	a, b := us[0], us[1]
	const groups = 30
	a1, _ := e.dial(t, "a1", a.Token)
	var ids []string
	for i := range groups {
		g := e.group(t, a, fmt.Sprintf("Largest %d", i), b.User.Username)
		ids = append(ids, g.ID)
		if i%40 == 39 {
			a1.close()
			a1, _ = e.dial(t, "a1", a.Token)
		}
		a1.send(t, g.ID, fmt.Sprintf("lm-%d", i), largest)
	}
	// The store writes behind the stream: wait until it holds the last
	// messages (history is read-your-writes; the list is not).
	h0 := e.history(t, b, ids[groups-1], "limit=1")
	if len(h0.Messages) != 1 {
		t.Fatalf("history of the last group: %d messages", len(h0.Messages))
	}
	// hello: not refused, bounded, with a cursor to the rest.
	c := e.dialNoHello(t, "b1", e.wsBase+"?token="+url.QueryEscape(b.Token), nil)
	f := c.take(t, "hello", func(frame) bool { return true })
	if f.Type != "hello" {
		t.Fatalf("first frame %.300s", f.Raw)
	}
	if len(f.Raw) > chat.MaxPageBytes+4096 {
		t.Errorf("hello is %d bytes, over the page bound %d", len(f.Raw), chat.MaxPageBytes)
	}
	var h struct {
		Conversations []apiConversation `json:"conversations"`
		NextBefore    *string           `json:"next_before"`
	}
	f.decode(t, &h)
	if len(h.Conversations) >= groups || h.NextBefore == nil {
		t.Errorf("hello of %d bytes lists %d of %d conversations, next_before %v: want a page that ends early with its cursor",
			len(f.Raw), len(h.Conversations), groups, h.NextBefore)
	}
	for _, cv := range h.Conversations {
		if cv.LastMessage == nil || cv.LastMessage.Body != largest {
			t.Fatalf("conversation %s in hello: last message is not the message sent: %+v", cv.ID, cv.LastMessage)
		}
	}
	// The HTTP list pages through all of them.
	got := walkList(t, e.env, b, 1000)
	if len(got) != groups {
		t.Errorf("the list walk met %d conversations, want %d", len(got), groups)
	}
	for _, id := range ids {
		if !slices.Contains(got, id) {
			t.Errorf("conversation %s missing from the walk", id)
		}
	}
	// History: 60 of the largest messages, asked 200 at a time.
	g := e.group(t, a, "Long history", b.User.Username)
	var sent []apiMessage
	for len(sent) < 60 {
		s, _ := e.dial(t, "sender", a.Token)
		for k := 0; k < 30; k++ {
			sent = append(sent, s.send(t, g.ID, fmt.Sprintf("lh-%d", len(sent)), largest))
		}
		s.close()
	}
	var walked []apiMessage
	before := ""
	for pages := 0; ; pages++ {
		q := "limit=200"
		if before != "" {
			q += "&before=" + before
		}
		p := e.history(t, b, g.ID, q)
		if pages == 0 && len(p.Messages) >= len(sent) {
			t.Errorf("a page of %d of the largest messages did not end early", len(p.Messages))
		}
		walked = append(walked, p.Messages...)
		if before = cursor(t, "next_before", p.NextBefore); before == "" {
			break
		}
		if pages > 10 {
			t.Fatal("history walk does not end")
		}
	}
	if len(walked) != len(sent) {
		t.Fatalf("history walk met %d messages, want %d", len(walked), len(sent))
	}
	for i := range walked {
		if walked[i].ID != sent[len(sent)-1-i].ID {
			t.Fatalf("history walk out of order at %d", i)
		}
	}
	// The same over the WebSocket, forward.
	p := c.history(t, g.ID, map[string]any{"after": "0", "limit": 200})
	if len(p.Messages) == 0 || len(p.Messages) >= len(sent) || cursor(t, "next_after", p.NextAfter) != p.Messages[len(p.Messages)-1].ID {
		t.Errorf("WebSocket history page of %d messages, next_after %s: want a page ending early at its cursor", len(p.Messages), p.NextAfter)
	}
}

// walkList pages GET /conversations with limit and returns the IDs met.
func walkList(t testing.TB, e *env, a account, limit int) []string {
	t.Helper()
	var ids []string
	before := ""
	for pages := 0; pages < 1000; pages++ {
		path := "/api/v1/conversations?limit=" + strconv.Itoa(limit)
		if before != "" {
			path += "&before=" + url.QueryEscape(before)
		}
		var body struct {
			Conversations []apiConversation `json:"conversations"`
			NextBefore    *string           `json:"next_before"`
		}
		e.call(t, "GET", path, a.Token, nil, http.StatusOK, &body)
		if len(body.Conversations) > limit {
			t.Fatalf("%s: %d conversations", path, len(body.Conversations))
		}
		for _, c := range body.Conversations {
			ids = append(ids, c.ID)
		}
		if body.NextBefore == nil {
			return ids
		}
		before = *body.NextBefore
	}
	t.Fatal("the list walk does not end")
	return nil
}

// testPagedMembers: small conversations keep members (v1 clients work
// unchanged); a big group carries member_count and pages its members over
// HTTP and the WebSocket, members only.
func testPagedMembers(t *testing.T, e *bigEnv) {
	const n = chat.MaxInlineMembers + 50
	us := e.fastUsers(t, "pg", n)
	a := us[0]
	big := e.group(t, a, "Big", usernames(us[1:])...)
	small := e.group(t, a, "Small", us[1].User.Username, us[2].User.Username)
	exactly := e.group(t, a, "Exactly 100", usernames(us[1:chat.MaxInlineMembers])...)
	a1, _ := e.dial(t, "a1", a.Token)
	c1, _ := e.dial(t, "c1", us[3].Token)

	// hello, as raw JSON: members absent for the big group only.
	a2 := e.dialNoHello(t, "a2", e.wsBase+"?token="+url.QueryEscape(a.Token), nil)
	var h struct {
		Conversations []bigConversation `json:"conversations"`
	}
	a2.take(t, "hello", ofType("hello")).decode(t, &h)
	want := map[string]int{big.ID: n, small.ID: 3, exactly.ID: chat.MaxInlineMembers}
	for _, cv := range h.Conversations {
		w, ok := want[cv.ID]
		if !ok {
			continue
		}
		delete(want, cv.ID)
		if cv.MemberCount == nil || *cv.MemberCount != w {
			t.Errorf("conversation of %d: member_count %v", w, cv.MemberCount)
		}
		if inline := cv.Members != nil; inline != (w <= chat.MaxInlineMembers) {
			t.Errorf("conversation of %d: members inline = %v", w, inline)
		}
		if cv.Members != nil {
			var ms []apiUser
			if err := json.Unmarshal(*cv.Members, &ms); err != nil || len(ms) != w {
				t.Errorf("conversation of %d: %d members inline (%v)", w, len(ms), err)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("hello lacks %v", want)
	}
	// The creation answer carries the count too, and no member list.
	var created bigConversation
	e.call(t, "POST", "/api/v1/conversations", a.Token, map[string]any{"title": "Big too", "members": usernames(us[1:])}, http.StatusCreated, &created)
	if created.Members != nil || created.MemberCount == nil || *created.MemberCount != n {
		t.Errorf("creation answer: members inline %v, member_count %v", created.Members != nil, created.MemberCount)
	}

	// HTTP pages of 60.
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		path := "/api/v1/conversations/" + big.ID + "/members?limit=60"
		if after != "" {
			path += "&after=" + after
		}
		var p membersPage
		e.call(t, "GET", path, a.Token, nil, http.StatusOK, &p)
		if p.MemberCount != n || len(p.Members) > 60 || p.Conversation != big.ID {
			t.Fatalf("%s: member_count %d, %d members", path, p.MemberCount, len(p.Members))
		}
		if (after == "") != (p.OnlineCount != nil) {
			t.Errorf("%s: online_count %v: want it on the first page only", path, p.OnlineCount)
		}
		if after == "" && *p.OnlineCount != 2 { // a and us[3] are connected
			t.Errorf("online_count %d, want 2", *p.OnlineCount)
		}
		for _, m := range p.Members {
			if m.Online == nil || m.Username == "" {
				t.Fatalf("member %+v lacks online or username", m)
			}
			if *m.Online != (m.ID == a.User.ID || m.ID == us[3].User.ID) {
				t.Errorf("member %s online = %v", m.Username, *m.Online)
			}
			all = append(all, m.ID)
		}
		if after = cursor(t, "next_after", p.NextAfter); after == "" {
			break
		}
		if pages > 10 {
			t.Fatal("members walk does not end")
		}
	}
	wantIDs := make([]string, n)
	for i, u := range us {
		wantIDs[i] = u.User.ID
	}
	slices.SortFunc(wantIDs, func(x, y string) int { return strings.Compare(fmt.Sprintf("%020s", x), fmt.Sprintf("%020s", y)) })
	if !slices.Equal(all, wantIDs) {
		t.Errorf("members walk: %d IDs, want the %d members ascending", len(all), n)
	}
	// WebSocket: the same first page.
	id := nextID("members")
	f := c1.request(t, id, map[string]any{"type": "members", "id": id, "conversation": big.ID, "limit": 1000})
	var p membersPage
	f.decode(t, &p)
	if f.Type != "members" || len(p.Members) != n || p.MemberCount != n || string(p.NextAfter) != "null" {
		t.Errorf("members frame: type %s, %d members, count %d, next_after %s", f.Type, len(p.Members), p.MemberCount, p.NextAfter)
	}
	// Members only; bad requests.
	outsider := e.fastUsers(t, "pgout", 1)[0]
	e.fail(t, "GET", "/api/v1/conversations/"+big.ID+"/members", outsider.Token, nil, http.StatusNotFound, "not_found")
	o1, _ := e.dial(t, "outsider", outsider.Token)
	id = nextID("members")
	o1.errorFor(t, id, map[string]any{"type": "members", "id": id, "conversation": big.ID}, "not_found")
	e.fail(t, "GET", "/api/v1/conversations/"+big.ID+"/members?limit=0", a.Token, nil, http.StatusBadRequest, "invalid_request")
	e.fail(t, "GET", "/api/v1/conversations/"+big.ID+"/members?after=x", a.Token, nil, http.StatusBadRequest, "invalid_request")
	id = nextID("members")
	a1.errorFor(t, id, map[string]any{"type": "members", "id": id, "conversation": big.ID, "limit": -1}, "bad_request")
}

// testPagedList: GET /conversations pages newest activity first; the walk
// meets every conversation once, in the order of the whole list.
func testPagedList(t *testing.T, e *bigEnv) {
	us := e.fastUsers(t, "pl", 2)
	a, b := us[0], us[1]
	a1, _ := e.dial(t, "a1", a.Token)
	for i := range 7 {
		g := e.group(t, a, fmt.Sprintf("List %d", i), b.User.Username)
		if i%2 == 0 {
			a1.send(t, g.ID, fmt.Sprintf("pl-%d", i), "activity")
		}
	}
	full := e.conversations(t, b)
	var fullIDs []string
	for _, c := range full {
		fullIDs = append(fullIDs, c.ID)
	}
	for _, limit := range []int{1, 3, 7, 8} {
		if got := walkList(t, e.env, b, limit); !slices.Equal(got, fullIDs) {
			t.Errorf("limit %d: walk %v, want %v", limit, got, fullIDs)
		}
	}
	e.fail(t, "GET", "/api/v1/conversations?before=nonsense", b.Token, nil, http.StatusBadRequest, "invalid_request")
	ab := e.direct(t, a, b.User.Username)
	e.fail(t, "DELETE", "/api/v1/conversations/"+ab.ID+"/members/me", a.Token, nil, http.StatusBadRequest, "invalid_request")
	e.fail(t, "GET", "/api/v1/conversations?before=12_", b.Token, nil, http.StatusBadRequest, "invalid_request")
}

// testBigPresence: members of a big group get no presence frames for each
// other (presence there is on request: online in a members page, and the
// online count); direct contacts and small groups still get them.
func testBigPresence(t *testing.T, e *bigEnv) {
	const n = chat.MaxInlineMembers + 20
	us := e.fastUsers(t, "bp", n+1)
	a, control := us[0], us[n]
	e.group(t, a, "Big presence", usernames(us[1:n])...)
	e.direct(t, a, control.User.Username)
	a1, _ := e.dial(t, "a1", a.Token)
	var conns []*wsClient
	for i := 1; i < 40; i++ {
		c, _ := e.dial(t, fmt.Sprintf("m%d", i), us[i].Token)
		conns = append(conns, c)
	}
	// The direct contact's presence comes after every member's: a barrier.
	e.dial(t, "control", control.Token)
	a1.take(t, "the direct contact's presence", func(f frame) bool {
		return f.Type == "presence" && strings.Contains(string(f.Raw), `"user":"`+control.User.ID+`"`)
	})
	a1.none(t, "presence of a big group's member", ofType("presence"))
	for _, c := range conns {
		c.none(t, "presence of a big group's member", ofType("presence"))
	}
}

// testTenThousand: a group of 10,000 (CHAT_BIG_GROUP to change it; 2,500
// with -short) made with one page and grown by pages of 1,000 to 9,999; its
// members connected send and receive, page history, and the 10,000th,
// added live, gets the conversation and its messages from then on, then
// leaves (and gets nothing more) and is added again; one more is refused.
func testTenThousand(t *testing.T, e *bigEnv) {
	n := chat.MaxGroupMembers
	if v, err := strconv.Atoi(os.Getenv("CHAT_BIG_GROUP")); err == nil && v > 1 {
		n = min(v, chat.MaxGroupMembers)
	} else if testing.Short() {
		n = 2500
	}
	start := time.Now()
	us := e.fastUsers(t, "tk", n)
	t.Logf("%d accounts in %v", n, time.Since(start).Round(time.Millisecond))
	// n-1 members, then the last one added live makes n.
	late := us[n-1]
	n--
	us = us[:n]
	a := us[0]
	start = time.Now()
	var g bigConversation
	e.call(t, "POST", "/api/v1/conversations", a.Token, map[string]any{"title": "Ten thousand", "members": usernames(us[1:min(n, chat.MaxMembersPage)])}, http.StatusCreated, &g)
	e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"usernames": usernames(us[1 : chat.MaxMembersPage+2])}, http.StatusBadRequest, "invalid_request")
	for s := chat.MaxMembersPage; s < n; s += chat.MaxMembersPage {
		var cv bigConversation
		e.call(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"usernames": usernames(us[s:min(s+chat.MaxMembersPage, n)])}, http.StatusOK, &cv)
		if cv.MemberCount == nil || *cv.MemberCount != min(s+chat.MaxMembersPage, n) {
			t.Fatalf("after adding up to %d: member_count %v", s+chat.MaxMembersPage, cv.MemberCount)
		}
	}
	t.Logf("group of %d made in pages in %v", n, time.Since(start).Round(time.Millisecond))
	// Some members connected, and a user not yet a member.
	idx := []int{0, 1, n / 2, n - 1}
	var conns []*wsClient
	for _, i := range idx {
		c, h := e.dial(t, fmt.Sprintf("m%d", i), us[i].Token)
		cv := findConv(t, h.Conversations, g.ID)
		if cv.Members != nil {
			t.Errorf("hello of member %d carries %d members of a group of %d", i, len(cv.Members), n)
		}
		conns = append(conns, c)
	}
	l1, _ := e.dial(t, "late", late.Token)
	m := conns[1].send(t, g.ID, "tk-1", "to ten thousand")
	for k, c := range conns {
		if got := messageOf(t, c.take(t, "message", isMessage(g.ID))); got.ID != m.ID {
			t.Errorf("member %d got %+v", idx[k], got)
		}
	}
	// Adding a member live: a conversation frame (count, no members), then
	// the messages.
	var cv bigConversation
	e.call(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"username": late.User.Username}, http.StatusOK, &cv)
	f := l1.take(t, "conversation frame", isConversation(g.ID))
	var cf struct {
		Conversation bigConversation `json:"conversation"`
	}
	f.decode(t, &cf)
	if cf.Conversation.Members != nil || cf.Conversation.MemberCount == nil || *cf.Conversation.MemberCount != n+1 {
		t.Errorf("conversation frame of the added member: members inline %v, member_count %v", cf.Conversation.Members != nil, cf.Conversation.MemberCount)
	}
	m2 := conns[2].send(t, g.ID, "tk-2", "welcome")
	if got := messageOf(t, l1.take(t, "message after being added", isMessage(g.ID))); got.ID != m2.ID {
		t.Errorf("the added member got %+v", got)
	}
	if got := l1.send(t, g.ID, "tk-3", "hello all"); got.Conversation != g.ID {
		t.Errorf("the added member's send: %+v", got)
	}
	p := e.history(t, late, g.ID, "limit=10")
	if len(p.Messages) != 3 {
		t.Errorf("history of the group: %d messages, want 3", len(p.Messages))
	}
	// Leaving: the leaver's connection is told and gets nothing more; the
	// others see the count go down.
	e.call(t, "DELETE", "/api/v1/conversations/"+g.ID+"/members/me", late.Token, nil, http.StatusNoContent, nil)
	l1.take(t, "left frame", func(f frame) bool {
		return f.Type == "left" && strings.Contains(string(f.Raw), `"conversation":"`+g.ID+`"`)
	})
	f = conns[0].take(t, "conversation frame after a member left", isConversation(g.ID))
	for {
		f.decode(t, &cf)
		if *cf.Conversation.MemberCount == n {
			break
		}
		f = conns[0].take(t, "conversation frame after a member left", isConversation(g.ID))
	}
	m4 := conns[1].send(t, g.ID, "tk-4", "after you left")
	for got := (apiMessage{}); got.ID != m4.ID; { // earlier messages may still be queued
		got = messageOf(t, conns[0].take(t, "message", isMessage(g.ID)))
	}
	id := nextID("ping")
	l1.request(t, id, map[string]any{"type": "ping", "id": id})
	l1.none(t, "a message after leaving", func(f frame) bool {
		return f.Type == "message" && strings.Contains(string(f.Raw), m4.ID)
	})
	id = nextID("send")
	l1.errorFor(t, id, sendReq{"send", id, g.ID, "tk-5", "still here?"}, "not_found")
	e.fail(t, "GET", "/api/v1/conversations/"+g.ID+"/messages", late.Token, nil, http.StatusNotFound, "not_found")
	e.fail(t, "DELETE", "/api/v1/conversations/"+g.ID+"/members/me", late.Token, nil, http.StatusNotFound, "not_found")
	e.call(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"username": late.User.Username}, http.StatusOK, &cv)
	extra := e.fastUsers(t, "tkx", 1)[0]
	if n+1 == chat.MaxGroupMembers {
		e.fail(t, "POST", "/api/v1/conversations/"+g.ID+"/members", a.Token, map[string]any{"username": extra.User.Username}, http.StatusBadRequest, "invalid_request")
	}
	var mp membersPage
	e.call(t, "GET", "/api/v1/conversations/"+g.ID+"/members?limit=1000", late.Token, nil, http.StatusOK, &mp)
	if mp.MemberCount != n+1 || len(mp.Members) != 1000 || mp.OnlineCount == nil || *mp.OnlineCount != len(idx)+1 {
		t.Errorf("members of the group: count %d, %d on the page, online %v", mp.MemberCount, len(mp.Members), mp.OnlineCount)
	}
}
