package cassandra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/goleak"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/schema"
	"github.com/chatcluster/chat/store"
	"github.com/chatcluster/chat/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env.keyspace != "" {
		dropKeyspace(env.hosts, env.keyspace)
	}
	if code == 0 {
		if err := goleak.Find(gocqlEventHandler); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// gocqlEventHandler: gocql handles a schema event (our DROP KEYSPACE) in a
// goroutine that a closed session does not wait for; it ends by itself.
var gocqlEventHandler = goleak.IgnoreAnyFunction("github.com/gocql/gocql.(*Session).handleSchemaEvent")

// env is the keyspace the tests of this process share: migrating costs
// seconds, so it is done once and each test empties the tables instead.
var env struct {
	once     sync.Once
	hosts    []string
	keyspace string
	admin    *gocql.Session
	err      error
}

// testHosts returns the Cassandra of CHAT_TEST_CASSANDRA, skipping when it
// is unset and failing when it is set but does not answer.
func testHosts(t testing.TB) []string {
	t.Helper()
	v := os.Getenv("CHAT_TEST_CASSANDRA")
	if v == "" {
		t.Skip("set CHAT_TEST_CASSANDRA (schema/cassandra.sh start)")
	}
	hosts := ParseHosts(v)
	addr := hosts[0]
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "9042")
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("CHAT_TEST_CASSANDRA=%s does not answer: %v", v, err)
	}
	c.Close()
	return hosts
}

func setup(t testing.TB) {
	t.Helper()
	hosts := testHosts(t)
	env.once.Do(func() {
		var b [4]byte
		_, _ = rand.Read(b[:])
		env.hosts = hosts
		env.keyspace = "store_test_" + hex.EncodeToString(b[:])
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if env.err = schema.Migrate(ctx, schema.Config{Hosts: hosts, Keyspace: env.keyspace, Consistency: gocql.One}); env.err != nil {
			return
		}
		cl := gocql.NewCluster(hosts...)
		cl.Keyspace = env.keyspace
		cl.Timeout = time.Minute
		env.admin, env.err = cl.CreateSession()
	})
	if env.err != nil {
		t.Fatalf("preparing keyspace %s: %v", env.keyspace, env.err)
	}
}

// dataTables are emptied between tests; settings and the migration
// bookkeeping stay.
var dataTables = []string{"users", "users_by_username", "users_by_initial", "username_initials", "users_by_prefix", "username_prefixes",
	"conversations", "conversation_members", "user_conversations",
	"conversation_buckets", "messages", "message_reactions", "message_changes", "change_buckets",
	"devices", "user_devices", "conversation_mutes",
	"sessions", "user_sessions", "conversation_counts", "user_conversation_counts", "own_messages",
	"user_activity", "user_big_groups", "user_activity_ready"}

// openEmpty returns a backend on the shared keyspace with every data table
// truncated.
func openEmpty(t testing.TB) *Backend {
	t.Helper()
	setup(t)
	var wg sync.WaitGroup
	errs := make([]error, len(dataTables))
	for i, tbl := range dataTables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = env.admin.Query("TRUNCATE " + tbl).Exec()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("truncating: %v", err)
	}
	b, err := Open(t.Context(), Config{Hosts: env.hosts, Keyspace: env.keyspace, Consistency: gocql.One})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func dropKeyspace(hosts []string, ks string) {
	if env.admin != nil {
		env.admin.Close()
	}
	cl := gocql.NewCluster(hosts...)
	cl.Timeout = time.Minute
	s, err := cl.CreateSession()
	if err != nil {
		return
	}
	defer s.Close()
	_ = s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return openEmpty(t) })
}

func TestPing(t *testing.T) {
	b := openEmpty(t)
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	b.Close()
	if err := b.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ping after Close: err = %v, want ErrUnavailable", err)
	}
}

func TestOpenRefusesOtherBucketWidth(t *testing.T) {
	b := openEmpty(t) // fixes the keyspace's width at the default
	_ = b
	_, err := Open(t.Context(), Config{Hosts: env.hosts, Keyspace: env.keyspace, Consistency: gocql.One, BucketWidth: 24 * time.Hour})
	if !errors.Is(err, ErrSchema) {
		t.Errorf("Open with another bucket width: err = %v, want ErrSchema", err)
	}
}

func TestOpenRefusesUnmigratedKeyspace(t *testing.T) {
	setup(t)
	_, err := Open(t.Context(), Config{Hosts: env.hosts, Keyspace: "system_auth", Consistency: gocql.One})
	if !errors.Is(err, ErrSchema) {
		t.Errorf("Open(system_auth): err = %v, want ErrSchema", err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := Open(t.Context(), Config{}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Open without hosts: err = %v, want ErrInvalid", err)
	}
	if _, err := Open(t.Context(), Config{Hosts: []string{"x"}, Keyspace: "a;b"}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Open with a bad keyspace: err = %v, want ErrInvalid", err)
	}
	if _, err := Open(t.Context(), Config{Hosts: []string{"x"}, BucketWidth: time.Microsecond}); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("Open with a sub-millisecond bucket: err = %v, want ErrInvalid", err)
	}
	for in, want := range map[string]gocql.Consistency{"LOCAL_QUORUM": gocql.LocalQuorum, "one": gocql.One, " quorum ": gocql.Quorum} {
		if got, err := ParseConsistency(in); err != nil || got != want {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseConsistency("most"); !errors.Is(err, chat.ErrInvalid) {
		t.Errorf("ParseConsistency(most): err = %v", err)
	}
	if got := ParseHosts(" a:1, ,b "); strings.Join(got, "|") != "a:1|b" {
		t.Errorf("ParseHosts = %q", got)
	}
}

func TestBucket(t *testing.T) {
	b := &Backend{widthMS: (10 * 24 * time.Hour).Milliseconds()}
	day := 24 * time.Hour
	cases := []struct {
		at   time.Time
		want int
	}{
		{chat.Epoch, 0},
		{chat.Epoch.Add(10*day - time.Millisecond), 0},
		{chat.Epoch.Add(10 * day), 1},
		{chat.Epoch.Add(365 * day), 36},
	}
	for _, c := range cases {
		if got := b.bucket(chat.FirstID(c.at) + 4095); got != c.want {
			t.Errorf("bucket(%v) = %d, want %d", c.at, got, c.want)
		}
	}
}

// TestMessagesBeforeConversation: messages saved before their conversation
// exists (not a path the service takes, but JetStream redelivery after a
// restore could) leave last-message cells in the conversations row; the
// conversation must still be created, once, and list its last message.
func TestMessagesBeforeConversation(t *testing.T) {
	b := openEmpty(t)
	ctx := t.Context()
	id := chat.FirstID(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	m := chat.Message{ID: id, Conversation: "42", Sender: 7, Body: "early", SentAt: id.Time(), ClientID: "c"}
	if err := b.SaveMessages(ctx, []chat.Message{m}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Conversation(ctx, "42"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("Conversation before creation: err = %v, want ErrNotFound", err)
	}
	c := chat.Conversation{ID: "42", Kind: chat.Group, Title: "t", CreatedBy: 7, CreatedAt: id.Time().Add(-time.Hour), Members: []chat.ID{7, 8}}
	errs := make([]error, 5)
	created := make([]bool, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created[i], errs[i] = b.CreateConversation(ctx, c)
		}()
	}
	wg.Wait()
	n := 0
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("CreateConversation %d: %v", i, errs[i])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d callers created the conversation, want 1", n)
	}
	got, err := b.Conversation(ctx, "42")
	if err != nil || got.Title != "t" || len(got.Members) != 2 {
		t.Fatalf("Conversation = %+v, %v", got, err)
	}
	s, err := b.Conversations(ctx, 8, 10)
	if err != nil || len(s) != 1 {
		t.Fatalf("Conversations = %+v, %v", s, err)
	}
	if s[0].LastMessage == nil || s[0].LastMessage.Body != "early" || s[0].Unread != 1 {
		t.Errorf("summary %+v, want the early message, unread 1", s[0])
	}
}
