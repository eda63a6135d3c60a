package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storeclient"
)

// events collects the user events published on chat.user.*.
type events struct {
	t   *testing.T
	sub *nats.Subscription
}

func watchUsers(t *testing.T, nc *nats.Conn) *events {
	t.Helper()
	sub, err := nc.SubscribeSync(chat.UserSubjectPrefix + "*")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &events{t: t, sub: sub}
}

// expect reads one event per user of to (any order) about conversation id.
func (e *events) expect(id string, to ...chat.ID) chat.Conversation {
	e.t.Helper()
	want := map[string]bool{}
	for _, u := range to {
		want[chat.UserSubject(u)] = true
	}
	var c chat.Conversation
	for len(want) > 0 {
		m, err := e.sub.NextMsg(5 * time.Second)
		if err != nil {
			e.t.Fatalf("waiting for events to %v: %v", want, err)
		}
		var ev storeclient.UserEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			e.t.Fatal(err)
		}
		if ev.Type != "conversation" || ev.Conversation == nil || ev.Conversation.ID != id {
			e.t.Fatalf("event %s on %s, want a conversation event about %s", m.Data, m.Subject, id)
		}
		if !want[m.Subject] {
			e.t.Fatalf("unexpected event on %s", m.Subject)
		}
		delete(want, m.Subject)
		c = *ev.Conversation
	}
	return c
}

// none checks that no event is pending. The service publishes a request's
// events before its reply, on one connection, so once the reply is here
// its events are too.
func (e *events) none() {
	e.t.Helper()
	n, _, err := e.sub.Pending()
	if err != nil {
		e.t.Fatal(err)
	}
	if n > 0 {
		m, _ := e.sub.NextMsg(0)
		e.t.Fatalf("unexpected event on %s: %s", m.Subject, m.Data)
	}
}

func signup(t *testing.T, c *storeclient.Client, name string) chat.User {
	t.Helper()
	u, err := c.Signup(t.Context(), chat.Account{
		User: chat.User{Username: name, DisplayName: strings.ToUpper(name)}, PasswordHash: "hash-" + name,
	})
	if err != nil {
		t.Fatalf("signup %s: %v", name, err)
	}
	return u
}

func TestAPI(t *testing.T) {
	e := newEnv(t)
	b := openBolt(t)
	cfg := store.ServiceConfig{MaxMembers: 4}
	s := startService(t, e, b, cfg)
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	ctx := t.Context()
	ev := watchUsers(t, e.nc)

	// Accounts.
	billy := signup(t, c, "Billy")
	if billy.ID == 0 || billy.Username != "billy" || billy.DisplayName != "BILLY" {
		t.Fatalf("signup: %+v", billy)
	}
	anna := signup(t, c, "anna")
	bob := signup(t, c, "bob")
	ann := signup(t, c, "ann_2")
	if _, err := c.Signup(ctx, chat.Account{User: chat.User{Username: "BILLY"}, PasswordHash: "x"}); !errors.Is(err, chat.ErrUsernameTaken) {
		t.Errorf("duplicate signup: %v", err)
	}
	// The store refuses reserved names too (a backstop behind the gateway).
	for _, name := range []string{"api", "App.js", "settings"} {
		if _, err := c.Signup(ctx, chat.Account{User: chat.User{Username: name}, PasswordHash: "x"}); !errors.Is(err, chat.ErrUsernameTaken) {
			t.Errorf("signup reserved %q: %v, want chat.ErrUsernameTaken", name, err)
		}
	}
	for _, bad := range []chat.Account{
		{User: chat.User{Username: "no"}, PasswordHash: "x"},
		{User: chat.User{Username: "with space"}, PasswordHash: "x"},
		{User: chat.User{Username: "nohash"}},
		{User: chat.User{Username: "ctrlname", DisplayName: "a\x00b"}, PasswordHash: "x"},
		{User: chat.User{Username: "bidiname", DisplayName: "a\u202eb"}, PasswordHash: "x"},
	} {
		if _, err := c.Signup(ctx, bad); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("signup %+v: %v, want chat.ErrInvalid", bad, err)
		}
	}
	a, err := c.Account(ctx, "BiLLy")
	if err != nil || a.ID != billy.ID || a.PasswordHash != "" || a.CreatedAt.IsZero() { // a hash never leaves the store
		t.Errorf("account: %+v %v", a, err)
	}
	if _, err := c.Account(ctx, "nobody"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
	users, err := c.Users(ctx, []chat.ID{anna.ID, 12345, billy.ID})
	if err != nil || len(users) != 2 || users[0].ID != anna.ID || users[1].ID != billy.ID {
		t.Errorf("users: %+v %v", users, err)
	}
	found, err := c.Search(ctx, "AN", 10)
	if err != nil || len(found) != 2 || found[0].Username != "ann_2" || found[1].Username != "anna" {
		t.Errorf("search: %+v %v", found, err)
	}
	if found, err := c.Search(ctx, "an", 1); err != nil || len(found) != 1 {
		t.Errorf("search limit 1: %+v %v", found, err)
	}
	if found, err := c.Search(ctx, "é", 10); err != nil || len(found) != 0 {
		t.Errorf("search é: %+v %v", found, err)
	}

	// Direct conversations.
	d, created, err := c.Direct(ctx, billy.ID, anna.ID)
	if err != nil || !created || d.ID != chat.DirectID(billy.ID, anna.ID) || d.Kind != chat.Direct {
		t.Fatalf("direct: %+v %v %v", d, created, err)
	}
	ev.expect(d.ID, billy.ID, anna.ID)
	d2, created, err := c.Direct(ctx, anna.ID, billy.ID)
	if err != nil || created || d2.ID != d.ID {
		t.Errorf("direct again: %+v %v %v", d2, created, err)
	}
	if _, _, err := c.Direct(ctx, billy.ID, 999); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("direct with unknown user: %v", err)
	}
	if _, _, err := c.Direct(ctx, billy.ID, billy.ID); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("direct with oneself: %v", err)
	}

	// Groups.
	g, err := c.Group(ctx, "trip", billy.ID, []chat.ID{anna.ID, anna.ID})
	if err != nil || g.Kind != chat.Group || g.Title != "trip" || g.CreatedBy != billy.ID {
		t.Fatalf("group: %+v %v", g, err)
	}
	if want := sorted(billy.ID, anna.ID); !slices.Equal(g.Members, want) {
		t.Errorf("group members %v, want %v", g.Members, want)
	}
	if _, err := chat.ParseID(g.ID); err != nil {
		t.Errorf("group id %q: %v", g.ID, err)
	}
	ev.expect(g.ID, billy.ID, anna.ID)
	if _, err := c.Group(ctx, "x", billy.ID, []chat.ID{404}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("group with unknown member: %v", err)
	}
	if _, err := c.Group(ctx, "x", billy.ID, []chat.ID{anna.ID, bob.ID, ann.ID, 5}); !errors.Is(err, chat.ErrTooMany) {
		t.Errorf("group over MaxMembers: %v", err)
	}
	if _, err := c.Group(ctx, "x", 0, nil); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("group without creator: %v", err)
	}

	// Adding members.
	if _, _, err := c.AddMembers(ctx, g.ID, bob.ID, []chat.ID{bob.ID}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("add by a non-member: %v", err)
	}
	if _, _, err := c.AddMembers(ctx, g.ID, anna.ID, []chat.ID{777}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("add an unknown user: %v", err)
	}
	if _, _, err := c.AddMembers(ctx, "123456", anna.ID, []chat.ID{bob.ID}); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("add to an unknown conversation: %v", err)
	}
	if _, _, err := c.AddMembers(ctx, d.ID, anna.ID, []chat.ID{bob.ID}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("add to a direct conversation: %v", err)
	}
	g2, added, err := c.AddMembers(ctx, g.ID, anna.ID, []chat.ID{bob.ID, billy.ID})
	if err != nil || !slices.Equal(added, []chat.ID{bob.ID}) || !slices.Equal(g2.Members, sorted(billy.ID, anna.ID, bob.ID)) {
		t.Fatalf("add: %+v %v %v", g2, added, err)
	}
	if got := ev.expect(g.ID, billy.ID, anna.ID, bob.ID); len(got.Members) != 3 {
		t.Errorf("event members %v", got.Members)
	}
	if _, added, err := c.AddMembers(ctx, g.ID, anna.ID, []chat.ID{bob.ID}); err != nil || len(added) != 0 {
		t.Errorf("add again: %v %v", added, err)
	}
	if _, created, err := c.Direct(ctx, billy.ID, anna.ID); err != nil || created {
		t.Errorf("direct again: %v %v", created, err)
	}
	ev.none() // neither changed anything
	if _, _, err := c.AddMembers(ctx, g.ID, anna.ID, []chat.ID{ann.ID, 8, 9}); !errors.Is(err, chat.ErrTooMany) {
		t.Errorf("add over MaxMembers: %v", err)
	}

	// Conversations.
	got, err := c.Conversation(ctx, g.ID)
	if err != nil || got.ID != g.ID || len(got.Members) != 3 {
		t.Errorf("conversation: %+v %v", got, err)
	}
	if _, err := c.Conversation(ctx, "98765"); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("unknown conversation: %v", err)
	}
	if _, err := c.Conversation(ctx, "not an id"); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("bad conversation id: %v", err)
	}

	// Messages, history, read marks, the conversation list.
	p := newPublisher(t, e.js)
	msgs, _ := p.publishN(g.ID, bob.ID, 5)
	page, more, err := c.History(ctx, g.ID, chat.Page{Limit: 2})
	if err != nil || !more || len(page) != 2 || page[0].ID != msgs[4].ID || page[1].ID != msgs[3].ID {
		t.Fatalf("history newest: %v %v %v", ids(page), more, err)
	}
	page, more, err = c.History(ctx, g.ID, chat.Page{Before: msgs[3].ID, Limit: 10})
	if err != nil || more || len(page) != 3 || page[0].ID != msgs[2].ID {
		t.Errorf("history before: %v %v %v", ids(page), more, err)
	}
	page, more, err = c.History(ctx, g.ID, chat.Page{After: msgs[1].ID, Limit: 2})
	if err != nil || !more || len(page) != 2 || page[0].ID != msgs[2].ID {
		t.Errorf("history after: %v %v %v", ids(page), more, err)
	}
	if _, _, err := c.History(ctx, g.ID, chat.Page{Before: 1, After: 2}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("history before and after: %v", err)
	}
	if _, _, err := c.History(ctx, g.ID, chat.Page{Limit: -1}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("history limit -1: %v", err)
	}
	if _, _, err := c.History(ctx, "bad.id", chat.Page{}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("history of a bad id: %v", err)
	}

	mark, moved, err := c.MarkRead(ctx, g.ID, anna.ID, msgs[3].ID)
	if err != nil || !moved || mark != msgs[3].ID {
		t.Errorf("read: %v %v %v", mark, moved, err)
	}
	mark, moved, err = c.MarkRead(ctx, g.ID, anna.ID, msgs[1].ID)
	if err != nil || moved || mark != msgs[3].ID {
		t.Errorf("read backward: %v %v %v", mark, moved, err)
	}
	if _, _, err := c.MarkRead(ctx, g.ID, ann.ID, msgs[1].ID); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("read by a non-member: %v", err)
	}

	list, err := c.Conversations(ctx, anna.ID, 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("conversations: %+v %v", list, err)
	}
	if list[0].ID != g.ID || list[0].LastMessage == nil || list[0].LastMessage.ID != msgs[4].ID || list[0].Unread != 1 || list[0].LastRead != msgs[3].ID {
		t.Errorf("conversations[0]: %+v", list[0])
	}
	if list[1].ID != d.ID || list[1].LastMessage != nil {
		t.Errorf("conversations[1]: %+v", list[1])
	}
	if list, err := c.Conversations(ctx, anna.ID, 1); err != nil || len(list) != 1 {
		t.Errorf("conversations limit 1: %d %v", len(list), err)
	}

	// An unknown op answers invalid.
	m, err := e.nc.RequestWithContext(ctx, chat.StoreSubjectPrefix+"nope", []byte(`{}`))
	if err != nil || !strings.Contains(string(m.Data), `"code":"invalid"`) {
		t.Errorf("unknown op: %s %v", m.Data, err)
	}
	// A body that is not JSON answers invalid.
	m, err = e.nc.RequestWithContext(ctx, chat.StoreSubjectPrefix+storeclient.OpUsers, []byte(`{`))
	if err != nil || !strings.Contains(string(m.Data), `"code":"invalid"`) {
		t.Errorf("bad body: %s %v", m.Data, err)
	}
	ev.none()
	if v := metricValue(t, s.reg, "chat_store_requests_total", "op", "unknown", "result", "invalid"); v != 1 {
		t.Errorf("requests_total{unknown,invalid} = %v", v)
	}
}

func sorted(ids ...chat.ID) []chat.ID {
	slices.Sort(ids)
	return ids
}

func ids(msgs []chat.Message) []chat.ID {
	out := make([]chat.ID, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// brokenBackend fails every call with an internal error.
type brokenBackend struct{ store.Backend }

func (brokenBackend) AccountByUsername(context.Context, string) (chat.Account, error) {
	return chat.Account{}, errors.New("cassandra at 10.0.0.7: connection refused")
}

func TestInternalErrorsStayInside(t *testing.T) {
	e := newEnv(t)
	s := startService(t, e, brokenBackend{openBolt(t)}, store.ServiceConfig{})
	waitReady(t, s.svc)
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	_, err := c.Account(t.Context(), "billy")
	if !errors.Is(err, storeclient.ErrInternal) {
		t.Fatalf("%v, want ErrInternal", err)
	}
	if strings.Contains(err.Error(), "10.0.0.7") {
		t.Errorf("internal detail leaked: %v", err)
	}
	var re *storeclient.RemoteError
	if !errors.As(err, &re) || re.Code != storeclient.CodeInternal {
		t.Errorf("not a RemoteError: %#v", err)
	}
	if v := metricValue(t, s.reg, "chat_store_backend_errors_total", "op", "account"); v != 1 {
		t.Errorf("backend_errors_total{account} = %v", v)
	}
}

func TestClientUnavailable(t *testing.T) {
	ns := runNATS(t)
	nc, _ := connect(t, ns)
	c := storeclient.NewClient(nc, storeclient.ClientConfig{Timeout: 200 * time.Millisecond})

	// Nobody serves: no responders.
	if _, err := c.Users(t.Context(), []chat.ID{1}); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("no responders: %v", err)
	}
	// A responder that never answers: timeout.
	sub, err := nc.Subscribe(chat.StoreSubjectPrefix+">", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.History(t.Context(), "1", chat.Page{})
	if !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
	// The caller's own cancellation stays visible.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Conversation(ctx, "1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	for _, sentinel := range []error{
		chat.ErrNotFound, chat.ErrUsernameTaken, chat.ErrInvalid, chat.ErrUnavailable,
		chat.ErrTooMany, storeclient.ErrInternal,
	} {
		wrapped := fmt.Errorf("context: %w", sentinel)
		re := &storeclient.RemoteError{Code: storeclient.ErrorCode(wrapped), Message: wrapped.Error()}
		if !errors.Is(re, sentinel) {
			t.Errorf("%v: code %q does not map back", sentinel, re.Code)
		}
	}
	if got := storeclient.ErrorCode(errors.New("boom")); got != storeclient.CodeInternal {
		t.Errorf("plain error: %q", got)
	}
	if !errors.Is(&storeclient.RemoteError{Code: "from the future"}, storeclient.ErrInternal) {
		t.Error("unknown code is not internal")
	}
}

// A sign-up retried with the same request (its first answer lost: a
// timeout, a store that died after writing) gets the account the first
// attempt made, although the service makes a new ID for every attempt; a
// different request for the name is still refused.
func TestSignupRetrySameRequest(t *testing.T) {
	e := newEnv(t)
	startService(t, e, openBolt(t), fastConfig())
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	req := chat.Account{User: chat.User{Username: "retrier"}, PasswordHash: "$argon2id$one-salted-hash"}
	first, err := c.Signup(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Signup(t.Context(), req)
	if err != nil || again != first {
		t.Fatalf("retried signup = %+v, %v; want %+v", again, err, first)
	}
	other := req
	other.PasswordHash = "$argon2id$another-salted-hash"
	if _, err := c.Signup(t.Context(), other); !errors.Is(err, chat.ErrUsernameTaken) {
		t.Fatalf("another signup for the name: %v", err)
	}
}

// lostAnswer is a backend whose first CreateAccount stores the account and
// then fails as a Cassandra write timeout does (the outcome unknown to the
// caller): a failure the real database gives only under load.
type lostAnswer struct {
	store.Backend
	lost atomic.Bool
}

func (b *lostAnswer) CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error) {
	stored, err := b.Backend.CreateAccount(ctx, a)
	if err == nil && b.lost.CompareAndSwap(false, true) {
		return chat.Account{}, fmt.Errorf("%w: write timeout, outcome unknown", chat.ErrUnavailable)
	}
	return stored, err
}

// The client retries a sign-up whose outcome is unknown, and the retry
// gets the account the lost attempt made.
func TestSignupRetriedAfterLostAnswer(t *testing.T) {
	e := newEnv(t)
	b := &lostAnswer{Backend: openBolt(t)}
	startService(t, e, b, fastConfig())
	c := storeclient.NewClient(e.nc, storeclient.ClientConfig{})
	u, err := c.Signup(t.Context(), chat.Account{User: chat.User{Username: "unlucky"}, PasswordHash: "$argon2id$salted"})
	if err != nil {
		t.Fatalf("signup whose first answer was lost: %v", err)
	}
	if !b.lost.Load() {
		t.Fatal("the first answer was not lost")
	}
	a, err := c.Account(t.Context(), "unlucky")
	if err != nil || a.ID != u.ID {
		t.Fatalf("account %+v, %v; signup answered %+v", a, err, u)
	}
}
