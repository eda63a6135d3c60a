package storetest_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/bolt"
	"github.com/chatcluster/chat/store/storetest"
	"go.uber.org/goleak"
)

// The suite is checked by mutation: each mutant below breaks one rule of the
// store.Backend contract on top of the bbolt backend, and the suite must
// fail it. A suite that passes a mutant has a hole.

const mutantEnv = "STORETEST_MUTANT"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBolt runs the suite on the unbroken bbolt backend: the control of
// the mutants below.
func TestBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return openBolt(t) })
}

// mutants names each mutant and the subtests expected to catch it.
var mutants = map[string]string{
	"more-when-full":       "MessagesPagingBoundaries",
	"more-never":           "MessagesPagingWalk",
	"inclusive-cursor":     "MessagesPagingBoundaries",
	"after-newest-first":   "MessagesPagingWalk",
	"hole-after-cursor":    "MessagesPagingWalk|MessagesBucketBoundaries",
	"unknown-conv-error":   "MessagesEmptyConversation",
	"list-reversed":        "ConversationsActivityOrder",
	"list-ignores-limit":   "ConversationsLimit",
	"unread-counts-own":    "ConversationsUnread",
	"unread-uncapped":      "ConversationsUnreadCap",
	"unread-off-by-one":    "ConversationsUnread",
	"last-message-oldest":  "ConversationsLastMessage|SaveMessagesOutOfOrder",
	"mark-read-backward":   "MarkRead",
	"mark-read-moved-lies": "MarkRead",
	"created-always":       "CreateConversationIdempotent|CreateConversationConcurrent",
	"added-all":            "AddMembers",
	"members-unsorted":     "CreateConversation",
	"not-found-nil":        "ConversationNotFound",
	"taken-swallowed":      "UsernameTaken|UsernameTakenConcurrent",
	"retry-new-id":         "CreateAccountRetried",
	"retry-taken":          "CreateAccountRetried",
	"users-sorted":         "Users",
	"search-extra":         "SearchUsers",
	"search-z-bound":       "SearchUsers",
	"members-truncated":    "LargeGroup",
	"times-to-seconds":     "SaveMessagesRoundTrip",
	"invalid-page-ok":      "MessagesInvalidPage",
	"close-twice-error":    "CloseTwice",
	"save-drops-dups":      "SaveMessagesIdempotent|SaveMessagesManyConversations",
	"changes-inclusive":    "ChangesLog|ChangesAcrossBuckets",
	"reactions-me-lost":    "Reactions|ReactionsToggleOrder",
	"delete-ignored":       "DeleteWinsOverEdits|DeleteBeforeSave|ConversationsLastMessageDeleted",
	"edit-ignored":         "EditWinsInAnyOrder|EditBeforeSave|Replies",
	"device-delete-any":    "Devices",
	"device-unbounded":     "DevicesLimit",
	"mute-ignored":         "MemberStates",
	"mute-non-member":      "MemberStates",
	"rotate-no-cas":        "SessionRotate|SessionRotateConcurrent",
	"session-never-ends":   "SessionNotFound",
	"delete-any-session":   "SessionDelete",
	"sessions-of-everyone": "SessionCreateAndGet|SessionDelete",
}

// The push rules the mutants below break.

func (m *mutant) PutDevice(ctx context.Context, d chat.Device) error {
	if m.mode == "device-unbounded" {
		// Skips the limit by deleting the oldest registration first.
		if ds, err := m.Backend.Devices(ctx, d.User); err == nil && len(ds) >= chat.MaxDevices {
			_ = m.Backend.DeleteDevice(ctx, d.User, ds[0].Token)
		}
	}
	return m.Backend.PutDevice(ctx, d)
}

func (m *mutant) DeleteDevice(ctx context.Context, user chat.ID, token string) error {
	if m.mode == "device-delete-any" {
		// Deletes the token whoever holds it.
		err := m.Backend.DeleteDevice(ctx, user, token)
		if errors.Is(err, chat.ErrNotFound) {
			for u := user - 5; u <= user+5; u++ {
				if m.Backend.DeleteDevice(ctx, u, token) == nil {
					return nil
				}
			}
		}
		return err
	}
	return m.Backend.DeleteDevice(ctx, user, token)
}

func (m *mutant) SetMuted(ctx context.Context, conv string, user chat.ID, muted bool) error {
	switch m.mode {
	case "mute-ignored":
		return nil
	case "mute-non-member":
		if _, err := m.Backend.Conversation(ctx, conv); err == nil {
			if err := m.Backend.SetMuted(ctx, conv, user, muted); errors.Is(err, chat.ErrNotFound) {
				return nil
			}
		}
	}
	return m.Backend.SetMuted(ctx, conv, user, muted)
}

func openBolt(t *testing.T) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "chat.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestMutantHelper runs the suite against the mutant named in the
// environment; it is a child process of TestSuiteCatchesMutants.
func TestMutantHelper(t *testing.T) {
	mode, ok := os.LookupEnv(mutantEnv)
	if !ok {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	storetest.Run(t, func(t *testing.T) store.Backend { return &mutant{Backend: openBolt(t), mode: mode} })
}

func TestSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	names := make([]string, 0, len(mutants))
	for name := range mutants {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run("mutant="+name, func(t *testing.T) {
			t.Parallel()
			run := "^TestMutantHelper$/^(" + mutants[name] + ")$"
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+run, "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), mutantEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed mutant %q (subtests %s):\n%s", name, mutants[name], out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestMutantHelper/") {
				t.Fatalf("mutant %q: the child failed without a failing subtest: %v\n%s", name, err, out)
			}
		})
	}
}

// RotateSession of "rotate-no-cas" rotates from whatever generation is
// stored, as a read-then-write without a compare-and-set would.
func (m *mutant) RotateSession(ctx context.Context, id chat.ID, gen uint32, hash []byte, seen time.Time) error {
	if m.mode == "rotate-no-cas" {
		if s, err := m.Backend.Session(ctx, id); err == nil {
			gen = s.Generation
		}
	}
	return m.Backend.RotateSession(ctx, id, gen, hash, seen)
}

// CreateSession of "session-never-ends" ignores the expiry.
func (m *mutant) CreateSession(ctx context.Context, s chat.Session) error {
	if m.mode == "session-never-ends" {
		s.ExpiresAt = s.ExpiresAt.Add(24 * time.Hour)
	}
	return m.Backend.CreateSession(ctx, s)
}

// DeleteSession of "delete-any-session" deletes whoever's session it is.
func (m *mutant) DeleteSession(ctx context.Context, user, id chat.ID) error {
	if m.mode == "delete-any-session" {
		if s, err := m.Backend.Session(ctx, id); err == nil {
			user = s.User
		}
	}
	return m.Backend.DeleteSession(ctx, user, id)
}

// Sessions of "sessions-of-everyone" lists two users' sessions together.
func (m *mutant) Sessions(ctx context.Context, user chat.ID) ([]chat.Session, error) {
	ss, err := m.Backend.Sessions(ctx, user)
	if m.mode == "sessions-of-everyone" && err == nil {
		for _, other := range []chat.ID{user + 1, user - 1} {
			more, _ := m.Backend.Sessions(ctx, other)
			ss = append(ss, more...)
		}
	}
	return ss, err
}

// mutant is the bbolt backend with one rule broken, chosen by mode.
type mutant struct {
	store.Backend
	mode   string
	closed bool
}

func (m *mutant) Changes(ctx context.Context, conv string, p chat.Page) ([]chat.Change, bool, error) {
	if m.mode == "changes-inclusive" && p.After > 1 {
		p.After--
	}
	return m.Backend.Changes(ctx, conv, p)
}

func (m *mutant) Message(ctx context.Context, conv string, id, viewer chat.ID) (chat.Message, error) {
	if m.mode == "reactions-me-lost" {
		viewer = 0
	}
	return m.Backend.Message(ctx, conv, id, viewer)
}

func (m *mutant) ApplyChanges(ctx context.Context, cs []chat.Change) error {
	var keep []chat.Change
	for _, c := range cs {
		if m.mode == "delete-ignored" && c.Kind == chat.EventDelete || m.mode == "edit-ignored" && c.Kind == chat.EventEdit {
			continue
		}
		keep = append(keep, c)
	}
	return m.Backend.ApplyChanges(ctx, keep)
}

func (m *mutant) Messages(ctx context.Context, conv string, p chat.Page) ([]chat.Message, bool, error) {
	switch m.mode {
	case "inclusive-cursor":
		if p.Before != 0 {
			p.Before++
		}
		if p.After > 1 {
			p.After--
		}
	case "hole-after-cursor":
		// Skips the first message after a cursor, as a bucket walk that
		// loses a boundary would.
		if p.Before != 0 || p.After != 0 {
			msgs, more, err := m.Backend.Messages(ctx, conv, chat.Page{Before: p.Before, After: p.After, Limit: p.Limit + 1})
			if len(msgs) > 0 {
				msgs = msgs[1:]
			}
			return msgs, more, err
		}
	case "unknown-conv-error":
		if _, err := m.Backend.Conversation(ctx, conv); err != nil {
			return nil, false, errors.New("boom")
		}
	case "invalid-page-ok":
		if p.Limit < 1 {
			p.Limit = 1
		}
		if p.Before != 0 && p.After != 0 {
			p.After = 0
		}
	}
	msgs, more, err := m.Backend.Messages(ctx, conv, p)
	switch m.mode {
	case "more-when-full":
		more = len(msgs) == p.Limit
	case "more-never":
		more = false
	case "after-newest-first":
		if p.After != 0 {
			slices.Reverse(msgs)
		}
	case "times-to-seconds":
		for i := range msgs {
			msgs[i].SentAt = msgs[i].SentAt.Truncate(time.Second)
		}
	}
	return msgs, more, err
}

func (m *mutant) Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error) {
	if m.mode == "list-ignores-limit" {
		limit++
	}
	s, err := m.Backend.Conversations(ctx, user, limit)
	if err != nil {
		return s, err
	}
	switch m.mode {
	case "list-reversed":
		slices.Reverse(s)
	case "unread-counts-own", "unread-uncapped", "unread-off-by-one":
		for i := range s {
			all, _, err := m.Backend.Messages(ctx, s[i].ID, chat.Page{After: max(s[i].LastRead, 1), Limit: 10 * chat.UnreadCap})
			if err != nil {
				return nil, err
			}
			n := 0
			for _, msg := range all {
				if msg.Sender != user || m.mode == "unread-counts-own" {
					n++
				}
			}
			if m.mode == "unread-off-by-one" && n > 0 && s[i].LastRead != 0 {
				n-- // as if the mark's own message were excluded twice
			}
			if m.mode != "unread-uncapped" {
				n = min(n, chat.UnreadCap)
			}
			s[i].Unread = n
		}
	case "last-message-oldest":
		for i := range s {
			if s[i].LastMessage != nil {
				first, _, err := m.Backend.Messages(ctx, s[i].ID, chat.Page{After: 1, Limit: 1})
				if err != nil {
					return nil, err
				}
				s[i].LastMessage = &first[0]
			}
		}
	}
	return s, nil
}

func (m *mutant) MarkRead(ctx context.Context, conv string, user, msg chat.ID) (chat.ID, bool, error) {
	mark, moved, err := m.Backend.MarkRead(ctx, conv, user, msg)
	switch m.mode {
	case "mark-read-backward":
		return msg, true, err
	case "mark-read-moved-lies":
		return mark, true, err
	}
	return mark, moved, err
}

func (m *mutant) CreateConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	got, created, err := m.Backend.CreateConversation(ctx, c)
	if m.mode == "created-always" {
		created = true
	}
	return got, created, err
}

func (m *mutant) AddMembers(ctx context.Context, conv string, users []chat.ID, at time.Time) (chat.Conversation, []chat.ID, error) {
	c, added, err := m.Backend.AddMembers(ctx, conv, users, at)
	if m.mode == "added-all" {
		added = users
	}
	return c, added, err
}

func (m *mutant) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	c, err := m.Backend.Conversation(ctx, id)
	switch m.mode {
	case "members-unsorted":
		slices.Reverse(c.Members)
	case "members-truncated":
		c.Members = c.Members[:min(len(c.Members), 1000)]
	case "not-found-nil":
		if errors.Is(err, chat.ErrNotFound) {
			return chat.Conversation{ID: id}, nil
		}
	}
	return c, err
}

func (m *mutant) CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error) {
	stored, err := m.Backend.CreateAccount(ctx, a)
	if m.mode == "taken-swallowed" && errors.Is(err, chat.ErrUsernameTaken) {
		return a, nil
	}
	if m.mode == "retry-new-id" && err == nil {
		return a, nil // the retry's own ID, not the stored one
	}
	if m.mode == "retry-taken" && err == nil && stored.ID != a.ID {
		return chat.Account{}, fmt.Errorf("%w: %q", chat.ErrUsernameTaken, a.Username) // the old behaviour
	}
	return stored, err
}

func (m *mutant) Users(ctx context.Context, ids []chat.ID) ([]chat.User, error) {
	u, err := m.Backend.Users(ctx, ids)
	if m.mode == "users-sorted" {
		slices.SortFunc(u, func(a, b chat.User) int { return cmp.Compare(a.ID, b.ID) })
	}
	return u, err
}

func (m *mutant) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	if m.mode == "search-extra" {
		limit++
	}
	u, err := m.Backend.SearchUsers(ctx, prefix, limit)
	if m.mode == "search-z-bound" {
		// As if the range ended at prefix+"z" exclusive.
		u = slices.DeleteFunc(u, func(u chat.User) bool { return u.Username >= prefix+"z" })
	}
	return u, err
}

func (m *mutant) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	if m.mode == "save-drops-dups" && len(msgs) > 1 {
		// Keeps only the first message of each conversation in a batch.
		seen := map[string]bool{}
		var keep []chat.Message
		for _, msg := range msgs {
			if !seen[msg.Conversation] {
				seen[msg.Conversation] = true
				keep = append(keep, msg)
			}
		}
		msgs = keep
	}
	return m.Backend.SaveMessages(ctx, msgs)
}

func (m *mutant) Close() error {
	err := m.Backend.Close()
	if m.mode == "close-twice-error" {
		if m.closed {
			return errors.New("already closed")
		}
		m.closed = true
	}
	return err
}
