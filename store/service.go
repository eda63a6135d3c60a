package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults of ServiceConfig.
const (
	DefaultStream         = chat.StreamName
	DefaultDurable        = chat.StoreDurable
	DefaultFilterSubject  = chat.MsgSubjects
	DefaultAckWait        = 30 * time.Second
	DefaultMaxAckPending  = 20000
	DefaultBatchSize      = 500
	DefaultBatchLinger    = 20 * time.Millisecond
	DefaultBatchIdle      = time.Millisecond
	DefaultPrefetch       = 1000
	DefaultWritesInFlight = 16
	DefaultSaveAttempts   = 5
	DefaultSaveTimeout    = 5 * time.Second
	DefaultRetryBackoff   = 50 * time.Millisecond
	DefaultRedeliverDelay = time.Second
	DefaultConcurrency    = 64
	DefaultRequestTimeout = 5 * time.Second
	DefaultHistoryWait    = 3 * time.Second
	DefaultHistoryPoll    = 2 * time.Millisecond
	DefaultInfoInterval   = 5 * time.Second
	DefaultSetupRetry     = time.Second
	DefaultMaxMembers     = chat.MaxGroupMembers
	DefaultMaxIDs         = 5000
	DefaultMaxSessions    = chat.MaxSessions
	// DefaultGroupsPerHour: groups one user may create in an hour.
	DefaultGroupsPerHour = 50
	// DefaultMembersPerHour: members one user may add in an hour (one
	// group of the largest size).
	DefaultMembersPerHour = chat.MaxGroupMembers
	// DefaultMaxGroupsPerUser: the groups one user may be in (hello
	// lists at most 1,000 conversations; the rest are paged).
	DefaultMaxGroupsPerUser = 1000
)

// Limits of request fields, as in PROTOCOL.md.
const (
	defaultHistoryLimit       = 50
	maxHistoryLimit           = 200
	defaultSearchLimit        = 20
	maxSearchLimit            = 100
	defaultConversationsLimit = 1000
	maxConversationsLimit     = 10000
)

// maxBackoff caps the wait between two attempts of one backend write.
const maxBackoff = time.Second

// ErrClosed is returned by Run after Shutdown.
var ErrClosed = errors.New("store: service closed")

// ServiceConfig configures a Service. Zero values take the documented
// defaults.
type ServiceConfig struct {
	// Stream is the JetStream stream of messages (DefaultStream). The
	// Service does not create it: the router package owns its
	// configuration.
	Stream string
	// Durable names the durable pull consumer that all replicas share
	// (DefaultDurable). Created or updated on Run.
	Durable string
	// FilterSubject is the consumer's filter (DefaultFilterSubject); it must
	// end in ".*": the last token is the conversation ID.
	FilterSubject string
	// AckWait is the consumer's ack wait (DefaultAckWait): a message not
	// acked within it is redelivered.
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered and not yet acked, all
	// replicas together (DefaultMaxAckPending).
	MaxAckPending int
	// BatchSize caps the messages of one backend write (DefaultBatchSize).
	BatchSize int
	// BatchLinger is the longest a batch collects messages after its first
	// (DefaultBatchLinger).
	BatchLinger time.Duration
	// BatchIdle ends a batch early when no message came for that long
	// (DefaultBatchIdle): a quiet stream is written at once, a busy one
	// fills its batches while the previous write runs.
	BatchIdle time.Duration
	// Prefetch bounds the messages delivered to this replica and not yet
	// written and acked (DefaultPrefetch). Keep it at least
	// WritesInFlight × BatchSize, or writes wait for deliveries.
	Prefetch int
	// WritesInFlight bounds the batch writes running at once
	// (DefaultWritesInFlight). Little's law sizes it: rate × write
	// latency ÷ batch size, e.g. 100k msg/s × 20 ms ÷ 500 = 4, with room
	// for latency spikes; each write is then spread over partitions by the
	// backend itself. A conversation is in one write at a time.
	WritesInFlight int
	// SaveAttempts bounds the tries of one batch write before its messages
	// are handed back to JetStream for redelivery (DefaultSaveAttempts).
	SaveAttempts int
	// SaveTimeout bounds one batch write (DefaultSaveTimeout).
	SaveTimeout time.Duration
	// RetryBackoff is the first wait between write attempts; it doubles up
	// to one second (DefaultRetryBackoff).
	RetryBackoff time.Duration
	// RedeliverDelay is how long JetStream waits before it redelivers a
	// batch whose write failed (DefaultRedeliverDelay).
	RedeliverDelay time.Duration
	// Concurrency bounds the requests handled at once (DefaultConcurrency).
	Concurrency int
	// RequestTimeout bounds the handling of one request
	// (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// HistoryWait is how long a history request waits for the consumer to
	// store every message published before it; then ErrUnavailable
	// (DefaultHistoryWait).
	HistoryWait time.Duration
	// HistoryPoll is the interval of consumer info polls while history
	// requests wait (DefaultHistoryPoll).
	HistoryPoll time.Duration
	// InfoInterval is the interval of consumer gauge refreshes and backend
	// pings (DefaultInfoInterval).
	InfoInterval time.Duration
	// SetupRetry is the wait before the consumer is set up again after it
	// failed, for instance while the stream does not exist yet
	// (DefaultSetupRetry).
	SetupRetry time.Duration
	// MaxMembers bounds a group's members (DefaultMaxMembers).
	MaxMembers int
	// MaxIDs bounds the IDs of one users request (DefaultMaxIDs).
	MaxIDs int
	// MaxSessions bounds one user's sessions: a new one ends the least
	// recently seen beyond it (DefaultMaxSessions).
	MaxSessions int
	// MaxPasswordChecks bounds concurrent password checks (argon2id: 19 MiB
	// and tens of milliseconds each); more wait. Default GOMAXPROCS.
	MaxPasswordChecks int
	// GroupsPerHour bounds the groups one user creates in a clock hour,
	// cluster-wide (DefaultGroupsPerHour).
	GroupsPerHour int
	// MembersPerHour bounds the members one user adds to groups in a clock
	// hour, a new group's included, cluster-wide (DefaultMembersPerHour).
	MembersPerHour int
	// MaxGroupsPerUser bounds the groups one user is a member of: adding
	// a user at the bound fails for the one who adds (DefaultMaxGroupsPerUser).
	MaxGroupsPerUser int
	// KVReplicas are the replicas of the store's key-value buckets (users'
	// settings, blocks and limit counters): 3 in a cluster. Default 1.
	KVReplicas int
}

func (c *ServiceConfig) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.FilterSubject == "" {
		c.FilterSubject = DefaultFilterSubject
	}
	def(&c.AckWait, DefaultAckWait)
	defInt(&c.MaxAckPending, DefaultMaxAckPending)
	defInt(&c.BatchSize, DefaultBatchSize)
	def(&c.BatchLinger, DefaultBatchLinger)
	def(&c.BatchIdle, DefaultBatchIdle)
	defInt(&c.Prefetch, DefaultPrefetch)
	defInt(&c.WritesInFlight, DefaultWritesInFlight)
	defInt(&c.SaveAttempts, DefaultSaveAttempts)
	def(&c.SaveTimeout, DefaultSaveTimeout)
	def(&c.RetryBackoff, DefaultRetryBackoff)
	def(&c.RedeliverDelay, DefaultRedeliverDelay)
	defInt(&c.Concurrency, DefaultConcurrency)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.HistoryWait, DefaultHistoryWait)
	def(&c.HistoryPoll, DefaultHistoryPoll)
	def(&c.InfoInterval, DefaultInfoInterval)
	def(&c.SetupRetry, DefaultSetupRetry)
	defInt(&c.MaxMembers, DefaultMaxMembers)
	defInt(&c.MaxIDs, DefaultMaxIDs)
	defInt(&c.MaxSessions, DefaultMaxSessions)
	defInt(&c.MaxPasswordChecks, runtime.GOMAXPROCS(0))
	defInt(&c.GroupsPerHour, DefaultGroupsPerHour)
	defInt(&c.MembersPerHour, DefaultMembersPerHour)
	defInt(&c.MaxGroupsPerUser, DefaultMaxGroupsPerUser)
	defInt(&c.KVReplicas, 1)
}

// pinger is what a backend implements when it can tell whether its database
// is reachable.
type pinger interface {
	Ping(context.Context) error
}

// Service serves a Backend over NATS: it writes the message stream into the
// backend through a durable JetStream consumer shared by all replicas, and
// answers the request/reply API of api.go on chat.store.<op>.
type Service struct {
	cfg       ServiceConfig
	b         Backend // instrumented
	ping      pinger  // nil when the backend cannot be pinged
	nc        *nats.Conn
	js        jetstream.JetStream
	ids       atomic.Pointer[idSource] // of new user and group IDs
	log       *zap.Logger
	m         *metrics
	ops       map[string]handler // by op, see handlers
	kinds     map[chat.EventKind]recordWriter
	apiPrefix string // of the JetStream API, e.g. "$JS.API."
	msgPrefix string // FilterSubject without its "*"

	sem    chan struct{}
	checks chan struct{} // bounds concurrent password checks (accounts.go)
	floor  *floorWatch
	convs  *convCache // hot conversations, see convcache.go
	kv     kvBuckets  // users' settings and limit counters, see consent.go

	cons       atomic.Pointer[jetstream.Consumer]
	consuming  atomic.Bool
	subscribed atomic.Bool
	backendOK  atomic.Bool // last ping succeeded (always true without Ping)
	saveOK     atomic.Bool // last batch write succeeded

	mu       sync.Mutex
	running  bool
	closed   bool
	quit     chan struct{} // closed by Shutdown
	hard     chan struct{} // closed when a Shutdown's ctx expired
	hardOnce sync.Once
	done     chan struct{} // closed when Run has stopped everything
}

// NewService returns a Service for backend b. node (0..MaxNode) seeds the
// Generator of new user and group IDs and must be unique among running
// services and gateways. Metrics are registered on reg (a private registry
// when nil). The Service never closes b.
func NewService(cfg ServiceConfig, b Backend, nc *nats.Conn, js jetstream.JetStream, node int,
	reg prometheus.Registerer, log *zap.Logger) (*Service, error) {
	cfg.setDefaults()
	if b == nil || nc == nil || js == nil {
		return nil, fmt.Errorf("%w: NewService needs a backend, a NATS connection and JetStream", chat.ErrInvalid)
	}
	if !strings.HasSuffix(cfg.FilterSubject, ".*") {
		return nil, fmt.Errorf("%w: filter subject %q must end in .*", chat.ErrInvalid, cfg.FilterSubject)
	}
	gen, err := chat.NewGenerator(node)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Service{
		cfg:       cfg,
		nc:        nc,
		js:        js,
		log:       log,
		apiPrefix: jsAPIPrefix(js.Options()),
		msgPrefix: strings.TrimSuffix(cfg.FilterSubject, "*"),
		sem:       make(chan struct{}, cfg.Concurrency),
		checks:    make(chan struct{}, cfg.MaxPasswordChecks),
		quit:      make(chan struct{}),
		hard:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.floor = newFloorWatch()
	s.setIDs(fixedIDs{gen})
	if p, ok := b.(pinger); ok {
		s.ping = p
	} else {
		s.backendOK.Store(true)
	}
	s.saveOK.Store(true)
	s.m, err = newMetrics(reg, s.Ready)
	if err != nil {
		return nil, fmt.Errorf("store: register metrics: %w", err)
	}
	s.b = instrumented{b: b, m: s.m}
	s.convs = newConvCache(s.b)
	s.ops = s.handlers()
	s.kinds = s.recordKinds()
	return s, nil
}

func jsAPIPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	default:
		return jetstream.DefaultAPIPrefix
	}
}

// Ready reports whether the Service can serve: running, a node ID held (see
// Process), NATS connected,
// request subscription and consumer active, backend reachable (its Ping,
// when it has one, and the last batch write succeeded).
func (s *Service) Ready() bool {
	s.mu.Lock()
	up := s.running && !s.closed
	s.mu.Unlock()
	return up && (*s.ids.Load()).Held() && s.nc.IsConnected() && s.subscribed.Load() && s.consuming.Load() &&
		s.backendOK.Load() && s.saveOK.Load()
}

// Run serves until ctx is done, Shutdown is called or the NATS connection
// closes (then it returns an error). Before it returns it stops everything
// it started: requests already received are answered, messages already
// fetched are written, every goroutine has ended. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.running:
		s.mu.Unlock()
		return fmt.Errorf("%w: Run called twice", chat.ErrInvalid)
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.done)

	// work bounds whatever must finish cleanly (requests, batch writes): it
	// ends only on a hard stop or when Run returns. stop ends fetching.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop, cancelStop := context.WithCancel(ctx)
	defer cancelStop()

	subDone := make(chan struct{})
	var handlers sync.WaitGroup
	sub, err := s.nc.QueueSubscribe(chat.StoreSubjectPrefix+">", chat.StoreQueueGroup, func(m *nats.Msg) {
		// The dispatcher only waits for a free slot; the work runs on the
		// slot's goroutine.
		select {
		case s.sem <- struct{}{}:
		case <-work.Done():
			return
		}
		handlers.Go(func() {
			defer func() { <-s.sem }()
			s.serve(work, m)
		})
	})
	if err != nil {
		return fmt.Errorf("store: subscribe %s>: %w", chat.StoreSubjectPrefix, err)
	}
	sub.SetClosedHandler(func(string) { close(subDone) })
	changes, err := s.subscribeChanges()
	if err != nil {
		_ = sub.Unsubscribe()
		<-subDone
		return fmt.Errorf("store: subscribe %s: %w", chat.ConvChangedSubject, err)
	}
	defer func() { _ = changes.Unsubscribe() }()
	s.subscribed.Store(true)

	var wg sync.WaitGroup // everything but the request handlers
	wg.Go(func() {
		select {
		case <-s.hard:
			cancelWork()
		case <-work.Done():
		}
	})
	fatal := make(chan error, 1)
	var consumer sync.WaitGroup
	consumer.Go(func() {
		if err := s.consumeLoop(stop, work); err != nil {
			fatal <- err
		}
	})
	// The pollers outlive the handlers: a history request being drained
	// still waits for the ack floor.
	pollCtx, cancelPoll := context.WithCancel(work)
	defer cancelPoll()
	wg.Go(func() { s.pollLoop(pollCtx) })
	if s.ping != nil {
		wg.Go(func() { s.pingLoop(pollCtx) })
	}

	var runErr error
	select {
	case <-ctx.Done():
	case <-s.quit:
	case runErr = <-fatal:
	}
	s.log.Info("store service stopping")
	s.subscribed.Store(false)
	// Drain answers the requests NATS already handed us; a hard stop cuts
	// it short. The consumer keeps writing meanwhile, so that history
	// requests among them can still see their messages stored.
	if err := sub.Drain(); err != nil {
		_ = sub.Unsubscribe()
	}
	select {
	case <-subDone:
	case <-work.Done():
		_ = sub.Unsubscribe()
		<-subDone
	}
	handlers.Wait()
	cancelStop()
	consumer.Wait()
	cancelPoll()
	cancelWork()
	wg.Wait()
	s.log.Info("store service stopped")
	return runErr
}

// Shutdown stops a running Service and waits until Run has stopped
// everything. When ctx ends first, requests and writes in progress are
// cancelled (unacked messages are redelivered), Shutdown still waits for the
// goroutines to end and returns ctx's error. Safe to call twice, and
// without Run.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	running := s.running
	s.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.hardOnce.Do(func() { close(s.hard) })
		<-s.done
		return ctx.Err()
	}
}

// pingLoop keeps backendOK current for a backend that can be pinged.
func (s *Service) pingLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		err := s.ping.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("backend ping failed", zap.Error(err))
		}
		s.backendOK.Store(err == nil)
		t.Reset(s.cfg.InfoInterval)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// idSource makes new user and group IDs: *router.NodeIDs in a Process,
// which refuses (chat.ErrUnavailable) while its lease is not certainly held.
type idSource interface {
	Next() (chat.ID, error)
	Held() bool
}

// fixedIDs makes IDs with a node number given to NewService.
type fixedIDs struct{ g *chat.Generator }

func (f fixedIDs) Next() (chat.ID, error) { return f.g.Next(), nil }
func (f fixedIDs) Held() bool             { return true }

// setIDs replaces the source of new IDs.
func (s *Service) setIDs(src idSource) { s.ids.Store(&src) }

// nextID is a new user or group ID, or ErrUnavailable while no node ID is
// certainly held: an ID made with a lost node ID may collide with another
// process's.
func (s *Service) nextID() (chat.ID, error) {
	return (*s.ids.Load()).Next()
}
