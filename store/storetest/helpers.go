package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// base is the time most fixtures are made at. Fixed, so that runs are
// reproducible; millisecond precision, like every time the protocol carries.
var base = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// at returns base+d.
func at(d time.Duration) time.Time { return base.Add(d) }

// idAt returns the n-th ID of the millisecond of tm: chat.FirstID(tm)+n.
// n stays well under the 22 bits of node and sequence.
func idAt(tm time.Time, n int) chat.ID { return chat.FirstID(tm) + chat.ID(n) }

// userID returns a fixed user ID; n distinguishes users.
func userID(n int) chat.ID {
	return idAt(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), n)
}

// groupID returns a fixed group conversation ID; n distinguishes groups.
func groupID(n int) string {
	return idAt(time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), n).String()
}

func account(n int, username string) chat.Account {
	return chat.Account{
		User: chat.User{
			ID:          userID(n),
			Username:    username,
			DisplayName: fmt.Sprintf("User %d «%s»", n, username),
		},
		PasswordHash: fmt.Sprintf("$2a$10$hash-of-%d", n),
		CreatedAt:    at(time.Duration(n) * time.Millisecond),
	}
}

// mkUser creates account n and returns its user.
func mkUser(t *testing.T, b store.Backend, n int, username string) chat.User {
	t.Helper()
	a := account(n, username)
	if _, err := b.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%q): %v", username, err)
	}
	return a.User
}

func group(id string, by chat.ID, created time.Time, members ...chat.ID) chat.Conversation {
	return chat.Conversation{
		ID:        id,
		Kind:      chat.Group,
		Title:     "group " + id,
		CreatedBy: by,
		CreatedAt: created,
		Members:   members,
	}
}

func direct(a, b chat.ID, created time.Time) chat.Conversation {
	return chat.Conversation{
		ID:        chat.DirectID(a, b),
		Kind:      chat.Direct,
		CreatedBy: a,
		CreatedAt: created,
		Members:   []chat.ID{a, b},
	}
}

// mkConv creates c, which must be new, and returns the stored conversation.
func mkConv(t *testing.T, b store.Backend, c chat.Conversation) chat.Conversation {
	t.Helper()
	got, created, err := b.CreateConversation(t.Context(), c)
	if err != nil {
		t.Fatalf("CreateConversation(%s): %v", c.ID, err)
	}
	if !created {
		t.Fatalf("CreateConversation(%s): created = false for a new conversation", c.ID)
	}
	return got
}

// msg returns a message whose SentAt is its ID's time, as the gateway makes them.
func msg(conv string, id, sender chat.ID) chat.Message {
	return chat.Message{
		ID:           id,
		Conversation: conv,
		Sender:       sender,
		Body:         "message " + id.String(),
		SentAt:       id.Time(),
		ClientID:     "c-" + id.String(),
	}
}

func save(t *testing.T, b store.Backend, msgs ...chat.Message) {
	t.Helper()
	if err := b.SaveMessages(t.Context(), msgs); err != nil {
		t.Fatalf("SaveMessages(%d messages): %v", len(msgs), err)
	}
}

// saveBatches saves msgs in batches of n.
func saveBatches(t *testing.T, b store.Backend, msgs []chat.Message, n int) {
	t.Helper()
	for len(msgs) > 0 {
		k := min(n, len(msgs))
		save(t, b, msgs[:k]...)
		msgs = msgs[k:]
	}
}

func getConv(t *testing.T, b store.Backend, id string) chat.Conversation {
	t.Helper()
	c, err := b.Conversation(t.Context(), id)
	if err != nil {
		t.Fatalf("Conversation(%s): %v", id, err)
	}
	return c
}

func list(t *testing.T, b store.Backend, user chat.ID, limit int) []chat.Summary {
	t.Helper()
	s, err := b.Conversations(t.Context(), user, limit)
	if err != nil {
		t.Fatalf("Conversations(%d, %d): %v", user, limit, err)
	}
	return s
}

// summaryOf returns the entry for conv in s, failing if it is missing.
func summaryOf(t *testing.T, s []chat.Summary, conv string) chat.Summary {
	t.Helper()
	for _, e := range s {
		if e.ID == conv {
			return e
		}
	}
	t.Fatalf("conversation %s missing from the list %v", conv, summaryIDs(s))
	return chat.Summary{}
}

func summaryIDs(s []chat.Summary) []string {
	ids := make([]string, len(s))
	for i, e := range s {
		ids[i] = e.ID
	}
	return ids
}

func page(t *testing.T, b store.Backend, conv string, p chat.Page) ([]chat.Message, bool) {
	t.Helper()
	m, more, err := b.Messages(t.Context(), conv, p)
	if err != nil {
		t.Fatalf("Messages(%s, %+v): %v", conv, p, err)
	}
	return m, more
}

func sameTime(a, b time.Time) bool { return a.Equal(b) }

// diffUser describes how got differs from want, or returns "".
func diffUser(got, want chat.User) string {
	if got != want {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func diffAccount(got, want chat.Account) string {
	var d []string
	if got.User != want.User {
		d = append(d, fmt.Sprintf("user %+v, want %+v", got.User, want.User))
	}
	if got.PasswordHash != want.PasswordHash {
		d = append(d, fmt.Sprintf("password hash %q, want %q", got.PasswordHash, want.PasswordHash))
	}
	if !sameTime(got.CreatedAt, want.CreatedAt) {
		d = append(d, fmt.Sprintf("created at %v, want %v", got.CreatedAt, want.CreatedAt))
	}
	return strings.Join(d, "; ")
}

func diffConv(got, want chat.Conversation) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("id %q, want %q", got.ID, want.ID))
	}
	if got.Kind != want.Kind {
		d = append(d, fmt.Sprintf("kind %q, want %q", got.Kind, want.Kind))
	}
	if got.Title != want.Title {
		d = append(d, fmt.Sprintf("title %q, want %q", got.Title, want.Title))
	}
	if got.CreatedBy != want.CreatedBy {
		d = append(d, fmt.Sprintf("created by %d, want %d", got.CreatedBy, want.CreatedBy))
	}
	if !sameTime(got.CreatedAt, want.CreatedAt) {
		d = append(d, fmt.Sprintf("created at %v, want %v", got.CreatedAt, want.CreatedAt))
	}
	if !slices.Equal(got.Members, want.Members) {
		d = append(d, fmt.Sprintf("members %v, want %v", got.Members, want.Members))
	}
	return strings.Join(d, "; ")
}

func diffMessage(got, want chat.Message) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("id %d, want %d", got.ID, want.ID))
	}
	if got.Conversation != want.Conversation {
		d = append(d, fmt.Sprintf("conversation %q, want %q", got.Conversation, want.Conversation))
	}
	if got.Sender != want.Sender {
		d = append(d, fmt.Sprintf("sender %d, want %d", got.Sender, want.Sender))
	}
	if got.Body != want.Body {
		d = append(d, fmt.Sprintf("body %q, want %q", got.Body, want.Body))
	}
	if !sameTime(got.SentAt, want.SentAt) {
		d = append(d, fmt.Sprintf("sent at %v, want %v", got.SentAt, want.SentAt))
	}
	if got.ClientID != want.ClientID {
		d = append(d, fmt.Sprintf("client id %q, want %q", got.ClientID, want.ClientID))
	}
	if got.ReplyTo != want.ReplyTo {
		d = append(d, fmt.Sprintf("reply to %d, want %d", got.ReplyTo, want.ReplyTo))
	}
	if (got.Reply == nil) != (want.Reply == nil) || got.Reply != nil && *got.Reply != *want.Reply {
		d = append(d, fmt.Sprintf("reply %+v, want %+v", got.Reply, want.Reply))
	}
	if !sameTime(got.EditedAt, want.EditedAt) {
		d = append(d, fmt.Sprintf("edited at %v, want %v", got.EditedAt, want.EditedAt))
	}
	if got.Deleted != want.Deleted {
		d = append(d, fmt.Sprintf("deleted %v, want %v", got.Deleted, want.Deleted))
	}
	if !slices.Equal(got.Reactions, want.Reactions) {
		d = append(d, fmt.Sprintf("reactions %+v, want %+v", got.Reactions, want.Reactions))
	}
	if got.Version != want.Version {
		d = append(d, fmt.Sprintf("version %d, want %d", got.Version, want.Version))
	}
	return strings.Join(d, "; ")
}

// checkMessages compares a page with the expected messages, field by field.
func checkMessages(t *testing.T, what string, got, want []chat.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d messages %v, want %d %v", what, len(got), msgIDs(got), len(want), msgIDs(want))
		return
	}
	for i := range got {
		if d := diffMessage(got[i], want[i]); d != "" {
			t.Errorf("%s: message %d: %s", what, i, d)
			return
		}
	}
}

func msgIDs(m []chat.Message) []chat.ID {
	ids := make([]chat.ID, len(m))
	for i := range m {
		ids[i] = m[i].ID
	}
	return ids
}

func sortedIDs(ids []chat.ID) []chat.ID {
	s := slices.Clone(ids)
	slices.Sort(s)
	return s
}

// expectPage computes, from all of a conversation's messages in ascending
// ID order, the page and the more flag that Messages must return for p.
func expectPage(all []chat.Message, p chat.Page) ([]chat.Message, bool) {
	var sel []chat.Message
	switch {
	case p.After != 0:
		for _, m := range all {
			if m.ID > p.After {
				sel = append(sel, m)
			}
		}
	default:
		for i := len(all) - 1; i >= 0; i-- {
			if p.Before == 0 || all[i].ID < p.Before {
				sel = append(sel, all[i])
			}
		}
	}
	if len(sel) > p.Limit {
		return sel[:p.Limit], true
	}
	return sel, false
}

// checkPage asks for one page and compares it with the model.
func checkPage(t *testing.T, b store.Backend, conv string, all []chat.Message, p chat.Page) {
	t.Helper()
	got, more := page(t, b, conv, p)
	want, wantMore := expectPage(all, p)
	what := fmt.Sprintf("Messages(%s, before=%d after=%d limit=%d)", conv, p.Before, p.After, p.Limit)
	checkMessages(t, what, got, want)
	if more != wantMore {
		t.Errorf("%s: more = %v, want %v (%d messages returned)", what, more, wantMore, len(got))
	}
}

// cursors returns interesting cursor values for a sorted set of messages:
// every ID, the IDs next to each, and values beyond both ends.
func cursors(all []chat.Message) []chat.ID {
	var c []chat.ID
	for _, m := range all {
		c = append(c, m.ID-1, m.ID, m.ID+1)
	}
	c = append(c, 1, chat.ID(1)<<62)
	if len(all) > 0 {
		c = append(c, all[0].ID/2, all[len(all)-1].ID+chat.ID(1)<<22)
	}
	slices.Sort(c)
	return slices.Compact(c)
}

// walkBackward pages from the newest message to the oldest and returns
// everything seen, checking that more is false exactly on the last page.
func walkBackward(t *testing.T, b store.Backend, conv string, limit int) []chat.Message {
	t.Helper()
	var seen []chat.Message
	p := chat.Page{Limit: limit}
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatalf("walkBackward(%s, %d): no end after %d pages", conv, limit, i)
		}
		m, more := page(t, b, conv, p)
		if len(m) > limit {
			t.Fatalf("walkBackward: page of %d messages for limit %d", len(m), limit)
		}
		seen = append(seen, m...)
		if !more {
			return seen
		}
		if len(m) == 0 {
			t.Fatalf("walkBackward(%s, %d): empty page with more = true at %+v", conv, limit, p)
		}
		p.Before = m[len(m)-1].ID
	}
}

// walkForward pages from after to the newest message.
func walkForward(t *testing.T, b store.Backend, conv string, after chat.ID, limit int) []chat.Message {
	t.Helper()
	var seen []chat.Message
	p := chat.Page{After: after, Limit: limit}
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatalf("walkForward(%s, %d): no end after %d pages", conv, limit, i)
		}
		m, more := page(t, b, conv, p)
		if len(m) > limit {
			t.Fatalf("walkForward: page of %d messages for limit %d", len(m), limit)
		}
		seen = append(seen, m...)
		if !more {
			return seen
		}
		if len(m) == 0 {
			t.Fatalf("walkForward(%s, %d): empty page with more = true at %+v", conv, limit, p)
		}
		p.After = m[len(m)-1].ID
	}
}

// reversed returns a reversed copy of m.
func reversed(m []chat.Message) []chat.Message {
	r := slices.Clone(m)
	slices.Reverse(r)
	return r
}

// runConcurrently runs fn(0..n-1) in n goroutines, released together, and
// waits for all of them.
func runConcurrently(n int, fn func(i int)) {
	start := make(chan struct{})
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			fn(i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
}
