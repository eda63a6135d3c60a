package cassandra

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/chatcluster/chat"
	"github.com/gocql/gocql"
)

// Defaults for Config's zero values.
const (
	DefaultKeyspace    = "chat"
	DefaultBucketWidth = 10 * 24 * time.Hour
	// DefaultTimeout is above Cassandra's own request timeouts (2 s for
	// writes, 5 s for reads, 10 s for range reads by default), so that a
	// slow node answers with a typed, retryable timeout before the client
	// gives up on the connection's request.
	DefaultTimeout     = 12 * time.Second
	DefaultMaxInFlight = 64
	// DefaultMaxWritesInFlight is Config.MaxWritesInFlight's default.
	DefaultMaxWritesInFlight = 64
	DefaultRetries           = 3
	DefaultNumConns          = 2
	// DefaultSpeculativeDelay is Config.SpeculativeDelay's default: well
	// above a healthy read (a few milliseconds), well below a stalled
	// replica (a GC pause, a node going down: seconds).
	DefaultSpeculativeDelay = 100 * time.Millisecond
	// DefaultSpeculativeAttempts is Config.SpeculativeAttempts' default.
	DefaultSpeculativeAttempts = 1
)

// Config says how to reach Cassandra and how to store.
type Config struct {
	// Hosts are contact points, "host" or "host:port" (9042 when no port).
	Hosts []string
	// Keyspace, migrated with schema.Migrate beforehand; DefaultKeyspace
	// when empty.
	Keyspace string
	// Consistency of reads and writes; LocalQuorum when zero (the zero
	// gocql.Consistency, Any, is never wanted). One suits a single dev node,
	// although LocalQuorum works there too (a quorum of one replica).
	Consistency gocql.Consistency
	// SerialConsistency of the lightweight transactions that make usernames
	// unique and conversations and memberships created once; Serial when
	// zero, so that uniqueness holds across data centres. LocalSerial is
	// faster with several data centres but lets each claim a username.
	SerialConsistency gocql.SerialConsistency
	// LocalDC, when set, keeps queries in that data centre
	// (DC-aware round robin behind the token-aware policy).
	LocalDC string
	// BucketWidth is the widest time span of one messages partition (a
	// hot conversation gets narrower ones, buckets.go);
	// DefaultBucketWidth when zero. It is fixed for a keyspace when a
	// backend first opens it: opening with another width fails, because
	// messages already stored would no longer be found.
	BucketWidth time.Duration
	// BucketRows is how many messages a bucket of a conversation should
	// hold at most at the conversation's recent rate, which sets its width
	// (buckets.go); DefaultBucketRows when zero.
	BucketRows int
	// Timeout of one query; DefaultTimeout when zero.
	Timeout time.Duration
	// ConnectTimeout of the initial connection; Timeout when zero.
	ConnectTimeout time.Duration
	// NumConns is the number of connections per host; DefaultNumConns
	// when zero.
	NumConns int
	// MaxInFlight bounds the queries this backend runs at once for fan-outs
	// (message batches, conversation lists, user lookups), across all
	// callers; DefaultMaxInFlight when zero.
	MaxInFlight int
	// MaxWritesInFlight bounds the message writes (batches and
	// conversation-row updates) this backend runs at once, apart from
	// MaxInFlight so that reads and writes do not queue behind each other;
	// DefaultMaxWritesInFlight when zero.
	MaxWritesInFlight int
	// Retries of a failed idempotent query, with exponential backoff;
	// DefaultRetries when zero, none when negative.
	Retries int
	// SpeculativeDelay is how long a read (a SELECT) waits for its replica
	// before the same read is also sent to the next host of its plan, the
	// first answer winning (see speculative.go); DefaultSpeculativeDelay
	// when zero, no speculation when negative. Writes never speculate.
	SpeculativeDelay time.Duration
	// SpeculativeAttempts bounds the extra executions of one read;
	// DefaultSpeculativeAttempts when zero, none when negative. Never
	// more than the other hosts up.
	SpeculativeAttempts int
	// Username and Password, when set, authenticate with Cassandra's
	// PasswordAuthenticator.
	Username, Password string
}

var keyspaceRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

func (c Config) withDefaults() (Config, error) {
	if len(c.Hosts) == 0 {
		return c, fmt.Errorf("%w: no Cassandra hosts", chat.ErrInvalid)
	}
	if c.Keyspace == "" {
		c.Keyspace = DefaultKeyspace
	}
	if !keyspaceRE.MatchString(c.Keyspace) {
		return c, fmt.Errorf("%w: keyspace name %q", chat.ErrInvalid, c.Keyspace)
	}
	if c.Consistency == gocql.Any {
		c.Consistency = gocql.LocalQuorum
	}
	if c.SerialConsistency == 0 {
		c.SerialConsistency = gocql.Serial
	}
	if c.BucketWidth == 0 {
		c.BucketWidth = DefaultBucketWidth
	}
	if c.BucketWidth < time.Millisecond || c.BucketWidth%time.Millisecond != 0 {
		return c, fmt.Errorf("%w: bucket width %v (whole milliseconds, at least one)", chat.ErrInvalid, c.BucketWidth)
	}
	if c.BucketRows < 0 {
		return c, fmt.Errorf("%w: bucket rows %d", chat.ErrInvalid, c.BucketRows)
	}
	if c.BucketRows == 0 {
		c.BucketRows = DefaultBucketRows
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = c.Timeout
	}
	if c.NumConns <= 0 {
		c.NumConns = DefaultNumConns
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxWritesInFlight <= 0 {
		c.MaxWritesInFlight = DefaultMaxWritesInFlight
	}
	if c.SpeculativeDelay == 0 {
		c.SpeculativeDelay = DefaultSpeculativeDelay
	}
	if c.SpeculativeAttempts == 0 {
		c.SpeculativeAttempts = DefaultSpeculativeAttempts
	}
	if c.SpeculativeDelay < 0 || c.SpeculativeAttempts < 0 {
		c.SpeculativeDelay, c.SpeculativeAttempts = 0, 0
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	return c, nil
}

// ParseConsistency parses a consistency level name such as "LOCAL_QUORUM"
// or "one" (for flags and environment variables).
func ParseConsistency(s string) (gocql.Consistency, error) {
	c, err := gocql.ParseConsistencyWrapper(strings.ToUpper(strings.TrimSpace(s)))
	if err != nil {
		return 0, fmt.Errorf("%w: consistency %q", chat.ErrInvalid, s)
	}
	return c, nil
}

// ParseHosts splits a comma-separated host list, dropping blanks.
func ParseHosts(s string) []string {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// retryPolicy retries only idempotent queries (gocql's policies would retry
// any query), with exponential backoff. Timeouts are retried on the same
// coordinator; an unavailable or overloaded one is left for the next host;
// errors that would recur (syntax, invalid request, ...) are not retried.
type retryPolicy struct {
	backoff gocql.ExponentialBackoffRetryPolicy
}

func newRetryPolicy(retries int) *retryPolicy {
	return &retryPolicy{backoff: gocql.ExponentialBackoffRetryPolicy{NumRetries: retries, Min: 50 * time.Millisecond, Max: 2 * time.Second}}
}

func (r *retryPolicy) Attempt(q gocql.RetryableQuery) bool {
	if iq, ok := q.(interface{ IsIdempotent() bool }); !ok || !iq.IsIdempotent() {
		return false
	}
	if q.Context() != nil && q.Context().Err() != nil {
		return false
	}
	return r.backoff.Attempt(q)
}

func (r *retryPolicy) GetRetryType(err error) gocql.RetryType {
	var (
		unavailable *gocql.RequestErrUnavailable
		writeTO     *gocql.RequestErrWriteTimeout
		readTO      *gocql.RequestErrReadTimeout
		re          gocql.RequestError
	)
	switch {
	case errors.As(err, &unavailable):
		return gocql.RetryNextHost
	case errors.As(err, &writeTO), errors.As(err, &readTO):
		return gocql.Retry
	case errors.As(err, &re):
		switch re.Code() {
		case gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping, gocql.ErrCodeTruncate:
			return gocql.RetryNextHost
		case gocql.ErrCodeServer, gocql.ErrCodeCASWriteUnknown:
			return gocql.Retry
		default:
			return gocql.Rethrow
		}
	}
	// Client-side timeouts and broken connections.
	return gocql.Retry
}
