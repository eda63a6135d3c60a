package schema

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
)

func TestMain(m *testing.M) {
	// gocql handles a schema event (our DROP KEYSPACE) in a goroutine that a
	// closed session does not wait for; it ends by itself.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/gocql/gocql.(*Session).handleSchemaEvent"))
}

func TestMigrationsParse(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("migrations = %+v", ms)
	}
	if Latest() != ms[len(ms)-1].Version {
		t.Errorf("Latest() = %d", Latest())
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			if strings.Contains(s, ";") || strings.Contains(s, "--") {
				t.Errorf("%d: statement not split cleanly: %q", m.Version, s)
			}
			if !strings.Contains(s, "IF NOT EXISTS") && !setsTableOption(s) {
				t.Errorf("%d: statement is not idempotent: %q", m.Version, firstLine(s))
			}
		}
	}
}

// setsTableOption reports an ALTER TABLE that only sets options
// ("ALTER TABLE t WITH compaction = ..."): running it twice leaves the same
// table, so it needs no IF NOT EXISTS.
func setsTableOption(stmt string) bool {
	f := strings.Fields(stmt)
	return len(f) > 4 && strings.EqualFold(f[0], "ALTER") && strings.EqualFold(f[1], "TABLE") &&
		strings.EqualFold(f[3], "WITH") && !strings.ContainsAny(f[2], "()")
}

func TestSetsTableOption(t *testing.T) {
	for s, want := range map[string]bool{
		"ALTER TABLE messages WITH compaction = {'class': 'LeveledCompactionStrategy'}": true,
		"ALTER TABLE messages ADD body text":                                            false,
		"ALTER TABLE messages ADD IF NOT EXISTS body text":                              false,
		"DROP TABLE messages":                                                           false,
		"ALTER TABLE messages WITH":                                                     false,
	} {
		if got := setsTableOption(s); got != want {
			t.Errorf("setsTableOption(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- c\nCREATE TABLE a (\n  x int PRIMARY KEY\n);\n\n-- d\nCREATE TABLE b (y int PRIMARY KEY) WITH x = 1;\nTRAILING")
	want := []string{"CREATE TABLE a (\n  x int PRIMARY KEY\n)", "CREATE TABLE b (y int PRIMARY KEY) WITH x = 1", "TRAILING"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitStatements = %q, want %q", got, want)
	}
}

func TestReplicationCQL(t *testing.T) {
	cases := []struct {
		rf   int
		spec string
		want string
		err  bool
	}{
		{1, "", "{'class': 'SimpleStrategy', 'replication_factor': 1}", false},
		{3, "", "{'class': 'SimpleStrategy', 'replication_factor': 3}", false},
		{3, "dc1:3, dc2:2", "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}", false},
		{0, "", "", true},
		{1, "dc1", "", true},
		{1, "dc1:0", "", true},
		{1, "dc1:3,dc1:3", "", true},
		{1, "d'c:3", "", true},
	}
	for _, c := range cases {
		got, err := ReplicationCQL(c.rf, c.spec)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ReplicationCQL(%d, %q) = %q, %v; want %q, error %v", c.rf, c.spec, got, err, c.want, c.err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ReplicationCQL(%d, %q): error %v is not ErrInvalid", c.rf, c.spec, err)
		}
	}
}

func TestConfigRejectsBadKeyspace(t *testing.T) {
	for _, ks := range []string{"chat; DROP", "1chat", "a-b", strings.Repeat("k", 49)} {
		if err := Migrate(t.Context(), Config{Hosts: []string{"127.0.0.1"}, Keyspace: ks}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Migrate(keyspace %q): err = %v, want ErrInvalid", ks, err)
		}
	}
}

// testHosts returns the Cassandra of CHAT_TEST_CASSANDRA, skipping when it is
// unset and failing when it is set but does not answer.
func testHosts(t *testing.T) []string {
	t.Helper()
	env := os.Getenv("CHAT_TEST_CASSANDRA")
	if env == "" {
		t.Skip("set CHAT_TEST_CASSANDRA (schema/cassandra.sh start)")
	}
	hosts := strings.Split(env, ",")
	addr := hosts[0]
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "9042")
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("CHAT_TEST_CASSANDRA=%s does not answer: %v", env, err)
	}
	c.Close()
	return hosts
}

func randomKeyspace(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "schema_test_" + hex.EncodeToString(b[:])
}

func dropKeyspace(t *testing.T, hosts []string, ks string) {
	cl := gocql.NewCluster(hosts...)
	cl.Timeout = time.Minute
	s, err := cl.CreateSession()
	if err != nil {
		t.Errorf("dropping %s: %v", ks, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
		t.Errorf("dropping %s: %v", ks, err)
	}
}

// TestMigrateConcurrent runs Migrate from several goroutines at once (as
// several pods would), then once more, against a real node: every run must
// succeed, each version must be recorded once, and every table must exist.
func TestMigrateConcurrent(t *testing.T) {
	hosts := testHosts(t)
	ks := randomKeyspace(t)
	t.Cleanup(func() { dropKeyspace(t, hosts, ks) })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	var logMu sync.Mutex
	var waited bool
	cfg := Config{Hosts: hosts, Keyspace: ks, Consistency: gocql.One, Logf: func(f string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if strings.Contains(f, "waiting for the migration lease") {
			waited = true
		}
		t.Logf(f, a...)
	}}
	const n = 3
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Migrate(ctx, cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
	}
	if err := Migrate(ctx, cfg); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	logMu.Lock()
	t.Logf("a migrator waited for the lease: %v", waited)
	logMu.Unlock()

	cl := gocql.NewCluster(hosts...)
	cl.Keyspace = ks
	cl.Timeout = 30 * time.Second
	s, err := cl.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	// Every version once: version is the primary key, so count rows and
	// compare who recorded each.
	var rows int
	iter := s.Query(`SELECT version, checksum, applied_by FROM schema_migrations`).Iter()
	var v int
	var sum, by string
	seen := map[int]bool{}
	for iter.Scan(&v, &sum, &by) {
		rows++
		if seen[v] {
			t.Errorf("version %d recorded twice", v)
		}
		seen[v] = true
		if sum != ms[v-1].Checksum {
			t.Errorf("version %d: checksum %s, want %s", v, sum, ms[v-1].Checksum)
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", rows, len(ms))
	}

	want := []string{"settings", "users", "users_by_username", "users_by_initial", "username_initials",
		"conversations", "conversation_members", "user_conversations",
		"conversation_buckets", "messages", "schema_migrations", "schema_lease",
		"conversation_bucket_levels", "users_by_prefix", "username_prefixes"}
	have := map[string]bool{}
	iter = s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, ks).Iter()
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("table %s.%s missing (have %v)", ks, w, have)
		}
	}
	// Compaction is chosen per table (0006): the often-overwritten rows are
	// Leveled, the change log TimeWindow.
	for table, class := range map[string]string{
		"conversations":   "LeveledCompactionStrategy",
		"messages":        "LeveledCompactionStrategy",
		"message_changes": "TimeWindowCompactionStrategy",
		"users":           "SizeTieredCompactionStrategy",
	} {
		var compaction map[string]string
		if err := s.Query(`SELECT compaction FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`, ks, table).
			Scan(&compaction); err != nil {
			t.Fatalf("compaction of %s: %v", table, err)
		}
		if !strings.HasSuffix(compaction["class"], class) {
			t.Errorf("compaction of %s = %v, want %s", table, compaction, class)
		}
	}
	// The tables work: a message row round-trips.
	if err := s.Query(`INSERT INTO messages (conversation_id, bucket, message_id, body) VALUES ('c', 1, 2, 'x')`).Exec(); err != nil {
		t.Fatal(err)
	}
	var body string
	if err := s.Query(`SELECT body FROM messages WHERE conversation_id = 'c' AND bucket = 1`).Scan(&body); err != nil || body != "x" {
		t.Errorf("messages row = %q, %v", body, err)
	}
	// The lease was released.
	var owners int
	if err := s.Query(`SELECT count(*) FROM schema_lease`).Scan(&owners); err != nil || owners != 0 {
		t.Errorf("schema_lease rows after Migrate = %d, %v; want 0", owners, err)
	}
}

// TestMigrateRefusesChangedMigration records a wrong checksum for version 1
// and expects Migrate to refuse rather than silently diverge.
func TestMigrateRefusesChangedMigration(t *testing.T) {
	hosts := testHosts(t)
	ks := randomKeyspace(t)
	t.Cleanup(func() { dropKeyspace(t, hosts, ks) })
	cfg := Config{Hosts: hosts, Keyspace: ks, Consistency: gocql.One}
	if err := Migrate(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	cl := gocql.NewCluster(hosts...)
	cl.Keyspace = ks
	s, err := cl.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Query(`UPDATE schema_migrations SET checksum = 'bogus' WHERE version = 1`).Exec(); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(t.Context(), cfg); !errors.Is(err, ErrChanged) {
		t.Errorf("Migrate after a changed migration: err = %v, want ErrChanged", err)
	}
}
