// Package schema holds the chat's Cassandra schema as versioned CQL
// migrations (migrations/NNNN_name.cql, embedded in the binary) and applies
// them with Migrate, which `chat migrate` and the Kubernetes schema Job run.
//
// Migrate is idempotent and safe to run from several processes at once: it
// creates the keyspace, takes a lease (a lightweight-transaction row with a
// TTL) so that only one process changes the schema at a time, applies the
// migrations not yet recorded in schema_migrations, waits for schema
// agreement after each statement, and releases the lease.
package schema

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

//go:embed migrations/*.cql
var migrationFS embed.FS

// ErrInvalid reports a bad Config or a malformed migration.
var ErrInvalid = errors.New("schema: invalid")

// ErrChanged reports a migration whose text differs from the text recorded
// when it was applied: migrations are append-only.
var ErrChanged = errors.New("schema: applied migration changed")

// ErrLeaseLost reports that another process took the migration lease while
// this one held it (its TTL ran out).
var ErrLeaseLost = errors.New("schema: migration lease lost")

// Migration is one versioned CQL file.
type Migration struct {
	Version    int
	Name       string   // the file name without the version and extension
	Statements []string // in file order, without the trailing semicolons
	Checksum   string   // hex SHA-256 of the file
}

// Defaults for Config's zero values.
const (
	DefaultKeyspace = "chat"
	DefaultTimeout  = 60 * time.Second
	DefaultLeaseTTL = 2 * time.Minute
)

// Config says where and how to migrate.
type Config struct {
	// Hosts are contact points, "host" or "host:port" (port 9042 if none).
	Hosts []string
	// Keyspace to create and migrate; DefaultKeyspace when empty.
	Keyspace string
	// ReplicationFactor for SimpleStrategy; 1 when zero. Ignored when
	// Replication is set.
	ReplicationFactor int
	// Replication, when set, is a NetworkTopologyStrategy spec such as
	// "dc1:3,dc2:3". An existing keyspace keeps its replication: changing
	// it needs ALTER KEYSPACE and a repair, which is an operator's decision.
	Replication string
	// Consistency of the bookkeeping reads and writes; Quorum when zero
	// (the zero gocql.Consistency is Any, which is never wanted here).
	Consistency gocql.Consistency
	// Timeout of each statement, schema agreement included; DefaultTimeout
	// when zero.
	Timeout time.Duration
	// LeaseTTL is how long the migration lease lives unless renewed (it is
	// renewed before every statement); DefaultLeaseTTL when zero.
	LeaseTTL time.Duration
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
}

var (
	keyspaceRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)
	dcRE       = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)
	fileRE     = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.cql$`)
)

func (c Config) withDefaults() (Config, error) {
	if len(c.Hosts) == 0 {
		return c, fmt.Errorf("%w: no Cassandra hosts", ErrInvalid)
	}
	if c.Keyspace == "" {
		c.Keyspace = DefaultKeyspace
	}
	if !keyspaceRE.MatchString(c.Keyspace) {
		return c, fmt.Errorf("%w: keyspace name %q", ErrInvalid, c.Keyspace)
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.ReplicationFactor < 0 {
		return c, fmt.Errorf("%w: replication factor %d", ErrInvalid, c.ReplicationFactor)
	}
	if c.Consistency == gocql.Any {
		c.Consistency = gocql.Quorum
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c, nil
}

// ReplicationCQL returns the replication map of a CREATE KEYSPACE for a
// factor (SimpleStrategy) or, when spec is not empty, a
// NetworkTopologyStrategy spec "dc1:3,dc2:3".
func ReplicationCQL(factor int, spec string) (string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		if factor < 1 {
			return "", fmt.Errorf("%w: replication factor %d", ErrInvalid, factor)
		}
		return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", factor), nil
	}
	var b strings.Builder
	b.WriteString("{'class': 'NetworkTopologyStrategy'")
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		dc, n, ok := strings.Cut(strings.TrimSpace(part), ":")
		dc = strings.TrimSpace(dc)
		rf, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || !dcRE.MatchString(dc) || err != nil || rf < 1 || seen[dc] {
			return "", fmt.Errorf("%w: replication %q: want dc:factor[,dc:factor...]", ErrInvalid, spec)
		}
		seen[dc] = true
		fmt.Fprintf(&b, ", '%s': %d", dc, rf)
	}
	b.WriteString("}")
	return b.String(), nil
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%w: migration file name %q (want NNNN_name.cql)", ErrInvalid, e.Name())
		}
		text, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(text)
		stmts := splitStatements(string(text))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("%w: migration %s has no statements", ErrInvalid, e.Name())
		}
		ms = append(ms, Migration{Version: v, Name: m[2], Statements: stmts, Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := range ms {
		if ms[i].Version != i+1 {
			return nil, fmt.Errorf("%w: migration versions must run 1, 2, 3...; found %d at position %d", ErrInvalid, ms[i].Version, i+1)
		}
	}
	return ms, nil
}

// Latest returns the newest embedded migration version, which a backend
// requires to be applied before it opens.
func Latest() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// splitStatements drops "--" comment lines and splits on semicolons that end
// a line. Our migrations hold DDL only, with no semicolon inside a string.
func splitStatements(text string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmts = append(stmts, strings.TrimSpace(s))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// Migrate creates cfg.Keyspace if needed and applies every migration not yet
// recorded in it. See the package documentation.
func Migrate(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	migrations, err := Migrations()
	if err != nil {
		return err
	}
	replication, err := ReplicationCQL(cfg.ReplicationFactor, cfg.Replication)
	if err != nil {
		return err
	}

	// The keyspace may not exist yet, and gocql cannot switch keyspaces on
	// a session, so the first session has none and creates it.
	boot, err := newSession(cfg, "")
	if err != nil {
		return err
	}
	err = ddl(ctx, boot, cfg, fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", cfg.Keyspace, replication))
	boot.Close()
	if err != nil {
		return err
	}

	s, err := newSession(cfg, cfg.Keyspace)
	if err != nil {
		return err
	}
	defer s.Close()

	// The bookkeeping tables are created before any lease exists, by every
	// process that runs Migrate. Two coordinators creating one table at the
	// same moment would otherwise give it two different table IDs (a known
	// Cassandra hazard); a table ID derived from the names makes both
	// creations the same table.
	for _, stmt := range []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version int PRIMARY KEY, name text, checksum text, applied_at timestamp, applied_by text
		) WITH ID = %s`, tableID(cfg.Keyspace, "schema_migrations")),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS schema_lease (
			name text PRIMARY KEY, owner text, taken_at timestamp
		) WITH ID = %s`, tableID(cfg.Keyspace, "schema_lease")),
	} {
		if err := ddl(ctx, s, cfg, stmt); err != nil {
			return err
		}
	}

	applied, err := appliedVersions(ctx, s, cfg)
	if err != nil {
		return err
	}
	if err := checkApplied(migrations, applied); err != nil {
		return err
	}
	if len(applied) == len(migrations) {
		cfg.Logf("schema: keyspace %s is at version %d", cfg.Keyspace, len(migrations))
		return nil
	}

	owner := leaseOwner()
	if err := takeLease(ctx, s, cfg, owner); err != nil {
		return err
	}
	defer func() {
		// Release with a fresh context: ctx may be the reason we stop.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
		defer cancel()
		_, _ = s.Query(`DELETE FROM schema_lease WHERE name = 'migrate' IF owner = ?`, owner).
			WithContext(rctx).SerialConsistency(gocql.Serial).Consistency(cfg.Consistency).MapScanCAS(map[string]any{})
	}()

	// Another process may have finished while we waited for the lease.
	if applied, err = appliedVersions(ctx, s, cfg); err != nil {
		return err
	}
	if err := checkApplied(migrations, applied); err != nil {
		return err
	}
	for _, m := range migrations {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		cfg.Logf("schema: applying %04d_%s to %s", m.Version, m.Name, cfg.Keyspace)
		for _, stmt := range m.Statements {
			if err := renewLease(ctx, s, cfg, owner); err != nil {
				return err
			}
			if err := ddl(ctx, s, cfg, stmt); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		// IF NOT EXISTS: should a lease ever be lost, the version is still
		// recorded once, by whoever finished first.
		if _, err := s.Query(`INSERT INTO schema_migrations (version, name, checksum, applied_at, applied_by)
			VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`, m.Version, m.Name, m.Checksum, time.Now().UTC(), owner).
			WithContext(ctx).SerialConsistency(gocql.Serial).Consistency(cfg.Consistency).
			MapScanCAS(map[string]any{}); err != nil {
			return fmt.Errorf("schema: recording migration %d: %w", m.Version, err)
		}
	}
	cfg.Logf("schema: keyspace %s is at version %d", cfg.Keyspace, len(migrations))
	return nil
}

// Applied returns the versions recorded in a migrated keyspace (version to
// checksum), read with s bound to that keyspace, at s's consistency.
func Applied(ctx context.Context, s *gocql.Session) (map[int]string, error) {
	return appliedVersions(ctx, s, Config{Timeout: DefaultTimeout})
}

func newSession(cfg Config, keyspace string) (*gocql.Session, error) {
	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Keyspace = keyspace
	cl.Consistency = cfg.Consistency
	cl.Timeout = cfg.Timeout
	cl.ConnectTimeout = 10 * time.Second
	cl.MaxWaitSchemaAgreement = cfg.Timeout
	cl.NumConns = 1
	s, err := cl.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("schema: connecting to %v: %w", cfg.Hosts, err)
	}
	return s, nil
}

// ddl runs one schema statement and waits until every node agrees on the
// schema, so the next statement (or the backend) sees its effect everywhere.
func ddl(ctx context.Context, s *gocql.Session, cfg Config, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := s.Query(stmt).WithContext(ctx).Exec(); err != nil {
		return fmt.Errorf("schema: %s: %w", firstLine(stmt), err)
	}
	if err := s.AwaitSchemaAgreement(ctx); err != nil {
		return fmt.Errorf("schema: waiting for agreement after %s: %w", firstLine(stmt), err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

func appliedVersions(ctx context.Context, s *gocql.Session, cfg Config) (map[int]string, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	q := s.Query(`SELECT version, checksum FROM schema_migrations`).WithContext(ctx)
	if cfg.Consistency != gocql.Any { // Any: the session's own
		q = q.Consistency(cfg.Consistency)
	}
	iter := q.Iter()
	applied := map[int]string{}
	var v int
	var sum string
	for iter.Scan(&v, &sum) {
		applied[v] = sum
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("schema: reading schema_migrations: %w", err)
	}
	return applied, nil
}

func checkApplied(ms []Migration, applied map[int]string) error {
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok && sum != m.Checksum {
			return fmt.Errorf("%w: %04d_%s was applied with checksum %s, the embedded file has %s",
				ErrChanged, m.Version, m.Name, sum, m.Checksum)
		}
	}
	for v := range applied {
		if v > len(ms) {
			return fmt.Errorf("%w: the keyspace has migration %d, newer than this binary's %d", ErrInvalid, v, len(ms))
		}
	}
	return nil
}

// takeLease waits until this process holds the migration lease. The lease
// row expires by itself (TTL) should its holder die.
func takeLease(ctx context.Context, s *gocql.Session, cfg Config, owner string) error {
	ttl := int(cfg.LeaseTTL / time.Second)
	wait := 200 * time.Millisecond
	for {
		qctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		prev := map[string]any{}
		applied, err := s.Query(`INSERT INTO schema_lease (name, owner, taken_at) VALUES ('migrate', ?, ?) IF NOT EXISTS USING TTL ?`,
			owner, time.Now().UTC(), ttl).WithContext(qctx).SerialConsistency(gocql.Serial).
			Consistency(cfg.Consistency).MapScanCAS(prev)
		cancel()
		if err != nil {
			return fmt.Errorf("schema: taking the migration lease: %w", err)
		}
		if applied || prev["owner"] == owner {
			return nil
		}
		cfg.Logf("schema: waiting for the migration lease held by %v", prev["owner"])
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("schema: waiting for the migration lease: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func renewLease(ctx context.Context, s *gocql.Session, cfg Config, owner string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	applied, err := s.Query(`UPDATE schema_lease USING TTL ? SET owner = ?, taken_at = ? WHERE name = 'migrate' IF owner = ?`,
		int(cfg.LeaseTTL/time.Second), owner, time.Now().UTC(), owner).WithContext(ctx).
		SerialConsistency(gocql.Serial).Consistency(cfg.Consistency).MapScanCAS(map[string]any{})
	if err != nil {
		return fmt.Errorf("schema: renewing the migration lease: %w", err)
	}
	if !applied {
		return ErrLeaseLost
	}
	return nil
}

func leaseOwner() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// tableID derives a stable table UUID (name-based, RFC 4122 version 5 style)
// from the keyspace and table names.
func tableID(keyspace, table string) string {
	h := sha1.Sum([]byte("chatcluster schema table " + keyspace + "." + table))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
