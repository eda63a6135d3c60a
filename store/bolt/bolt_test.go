package bolt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storetest"
	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The child of TestSurvivesKill writes until it is killed.
	if path := os.Getenv("BOLT_TEST_KILL_CHILD"); path != "" {
		os.Exit(killChild(path))
	}
	goleak.VerifyTestMain(m)
}

func openAt(t testing.TB, path string) *Backend {
	t.Helper()
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func openTemp(t testing.TB) *Backend {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "chat.db"))
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return openTemp(t) })
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestSurvivesCloseAndOpen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "dir", "chat.db") // Open makes the directory
	b := openAt(t, path)
	acct := chat.Account{User: chat.User{ID: 7, Username: "billy", DisplayName: "Billy"}, PasswordHash: "h", CreatedAt: t0}
	if _, err := b.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	conv := chat.Conversation{ID: "42", Kind: chat.Group, Title: "t", CreatedBy: 7, CreatedAt: t0, Members: []chat.ID{7, 8}}
	if _, _, err := b.CreateConversation(ctx, conv); err != nil {
		t.Fatal(err)
	}
	var msgs []chat.Message
	for i := range 10 {
		id := chat.FirstID(t0.Add(time.Duration(i)*time.Minute)) + 1
		msgs = append(msgs, chat.Message{ID: id, Conversation: "42", Sender: 8, Body: fmt.Sprint("m", i), SentAt: id.Time(), ClientID: fmt.Sprint("c", i)})
	}
	if err := b.SaveMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.MarkRead(ctx, "42", 7, msgs[3].ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Conversation(ctx, "42"); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Conversation after Close: err = %v, want ErrUnavailable", err)
	}

	b = openAt(t, path)
	got, err := b.AccountByUsername(ctx, "billy")
	if err != nil || got.ID != 7 || got.PasswordHash != "h" || !got.CreatedAt.Equal(t0) {
		t.Errorf("account after reopen = %+v, %v", got, err)
	}
	c, err := b.Conversation(ctx, "42")
	if err != nil || c.Title != "t" || len(c.Members) != 2 {
		t.Errorf("conversation after reopen = %+v, %v", c, err)
	}
	page, more, err := b.Messages(ctx, "42", chat.Page{After: 1, Limit: 100})
	if err != nil || more || len(page) != len(msgs) {
		t.Fatalf("messages after reopen: %d, %v, %v", len(page), more, err)
	}
	for i := range page {
		if page[i].ID != msgs[i].ID || page[i].Body != msgs[i].Body || !page[i].SentAt.Equal(msgs[i].SentAt) {
			t.Errorf("message %d after reopen = %+v, want %+v", i, page[i], msgs[i])
		}
	}
	s, err := b.Conversations(ctx, 7, 10)
	if err != nil || len(s) != 1 || s[0].LastRead != msgs[3].ID || s[0].Unread != 6 {
		t.Errorf("summary after reopen = %+v, %v", s, err)
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	openAt(t, path)
	start := time.Now()
	b, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		_ = b.Close()
		t.Fatal("a second Open of a held file succeeded")
	}
	if !errors.Is(err, bberrors.ErrTimeout) {
		t.Errorf("second Open: err = %v, want a lock timeout", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("Open waited %v despite a 50 ms lock timeout", time.Since(start))
	}
}

func TestOpenRefusesOtherVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keyVersion, []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := Open(path, Options{}); err == nil {
		_ = b.Close()
		t.Fatal("Open accepted a file of format version 99")
	}
}

func TestCanceledContext(t *testing.T) {
	b := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.CreateAccount(ctx, chat.Account{User: chat.User{ID: 1, Username: "abc"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateAccount with a canceled context: err = %v", err)
	}
	if _, _, err := b.Messages(ctx, "1", chat.Page{Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Messages with a canceled context: err = %v", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := t.Context()
	b := openTemp(t)
	if err := b.SaveMessages(ctx, []chat.Message{{ID: 1, Conversation: "a\x00b"}}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("SaveMessages with a NUL in the conversation: err = %v", err)
	}
	if err := b.SaveMessages(ctx, []chat.Message{{ID: 0, Conversation: "1"}}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("SaveMessages with ID 0: err = %v", err)
	}
	if _, _, err := b.CreateConversation(ctx, chat.Conversation{ID: "", Kind: chat.Group}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("CreateConversation without an ID: err = %v", err)
	}
	if _, _, err := b.CreateConversation(ctx, chat.Conversation{ID: "5", Kind: "channel"}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("CreateConversation of kind channel: err = %v", err)
	}
	if _, _, err := b.MarkRead(ctx, "5", 1, 10); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("MarkRead in an unknown conversation: err = %v, want ErrNotFound", err)
	}
}

// TestSurvivesKill kills -9 a process that is saving messages and checks
// that every save it reported done is in the file.
func TestSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	path := filepath.Join(t.TempDir(), "chat.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BOLT_TEST_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []chat.ID
	lines := bufio.NewScanner(out)
	for len(acked) < 200 && lines.Scan() {
		id, err := chat.ParseID(lines.Text())
		if err != nil {
			t.Fatalf("child said %q", lines.Text())
		}
		acked = append(acked, id)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d saves before it ended", len(acked))
	}

	b := openAt(t, path)
	for _, id := range acked {
		m, _, err := b.Messages(t.Context(), "1", chat.Page{After: id - 1, Limit: 1})
		if err != nil || len(m) != 1 || m[0].ID != id {
			t.Fatalf("acknowledged message %d lost after kill -9: %+v, %v", id, m, err)
		}
	}
}

// killChild saves messages one at a time and prints each ID once saved,
// until it is killed.
func killChild(path string) int {
	b, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 1; ; i++ {
		id := chat.FirstID(t0) + chat.ID(i)
		m := chat.Message{ID: id, Conversation: "1", Sender: 1, Body: "b" + strconv.Itoa(i), SentAt: t0, ClientID: "c"}
		if err := b.SaveMessages(context.Background(), []chat.Message{m}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(w, id)
		if err := w.Flush(); err != nil {
			return 0 // the parent stopped reading
		}
	}
}
