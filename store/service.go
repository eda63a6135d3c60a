package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
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

// drainBudget bounds how long a stopping Service keeps processing the
// messages its consumer had already fetched.
const drainBudget = 2 * time.Second

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
	// Prefetch is how many messages the consumer buffers ahead
	// (DefaultPrefetch).
	Prefetch int
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
	gen       *chat.Generator
	log       *zap.Logger
	m         *metrics
	ops       map[string]func(context.Context, []byte) (any, error)
	apiPrefix string // of the JetStream API, e.g. "$JS.API."
	msgPrefix string // FilterSubject without its "*"

	sem   chan struct{}
	floor *floorWatch

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
		gen:       gen,
		log:       log,
		apiPrefix: jsAPIPrefix(js.Options()),
		msgPrefix: strings.TrimSuffix(cfg.FilterSubject, "*"),
		sem:       make(chan struct{}, cfg.Concurrency),
		quit:      make(chan struct{}),
		hard:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.floor = newFloorWatch()
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
	s.ops = map[string]func(context.Context, []byte) (any, error){
		storeclient.OpSignup:        s.signup,
		storeclient.OpAccount:       s.account,
		storeclient.OpUsers:         s.users,
		storeclient.OpSearch:        s.search,
		storeclient.OpDirect:        s.direct,
		storeclient.OpGroup:         s.group,
		storeclient.OpAddMembers:    s.addMembers,
		storeclient.OpConversation:  s.conversation,
		storeclient.OpConversations: s.conversations,
		storeclient.OpHistory:       s.history,
		storeclient.OpRead:          s.read,
	}
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

// Ready reports whether the Service can serve: running, NATS connected,
// request subscription and consumer active, backend reachable (its Ping,
// when it has one, and the last batch write succeeded).
func (s *Service) Ready() bool {
	s.mu.Lock()
	up := s.running && !s.closed
	s.mu.Unlock()
	return up && s.nc.IsConnected() && s.subscribed.Load() && s.consuming.Load() &&
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
			s.handle(work, m)
		})
	})
	if err != nil {
		return fmt.Errorf("store: subscribe %s>: %w", chat.StoreSubjectPrefix, err)
	}
	sub.SetClosedHandler(func(string) { close(subDone) })
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

// handle answers one API request.
func (s *Service) handle(ctx context.Context, m *nats.Msg) {
	op := strings.TrimPrefix(m.Subject, chat.StoreSubjectPrefix)
	h, known := s.ops[op]
	label := op
	if !known {
		label = "unknown" // keeps the label set bounded
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()

	var body []byte
	var err error
	if !known {
		err = fmt.Errorf("%w: unknown op %q", chat.ErrInvalid, op)
	} else {
		var resp any
		if resp, err = h(ctx, m.Data); err == nil {
			body, err = json.Marshal(resp)
		}
	}
	result := "ok"
	if err != nil {
		if storeclient.ErrorCode(err) == storeclient.CodeInternal &&
			(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			err = fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
		}
		result = storeclient.ErrorCode(err)
		if result == storeclient.CodeInternal || result == storeclient.CodeUnavailable {
			s.log.Warn("store request failed", zap.String("op", label), zap.Error(err))
		}
		body = storeclient.EncodeError(err)
	}
	s.m.requests.WithLabelValues(label, result).Inc()
	if m.Reply == "" {
		return
	}
	if err := m.Respond(body); err != nil {
		s.log.Debug("store reply failed", zap.String("op", label), zap.Error(err))
	}
}

// now is the time of new rows: UTC, at the millisecond precision every time
// of the protocol has, so a row reads back as it was answered.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: request: %v", chat.ErrInvalid, err)
	}
	return nil
}

func (s *Service) signup(ctx context.Context, data []byte) (any, error) {
	var req storeclient.SignupRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	a := req.Account
	a.Username = strings.ToLower(a.Username)
	switch {
	case !chat.ValidUsername(a.Username):
		return nil, fmt.Errorf("%w: username %q", chat.ErrInvalid, a.Username)
	case a.PasswordHash == "":
		return nil, fmt.Errorf("%w: empty password hash", chat.ErrInvalid)
	case utf8.RuneCountInString(a.DisplayName) > chat.MaxDisplayName || !utf8.ValidString(a.DisplayName):
		return nil, fmt.Errorf("%w: display name", chat.ErrInvalid)
	}
	if a.DisplayName == "" {
		a.DisplayName = a.Username
	}
	if a.ID == 0 {
		a.ID = s.gen.Next()
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now()
	}
	if err := s.b.CreateAccount(ctx, a); err != nil {
		return nil, err
	}
	return storeclient.SignupResponse{User: a.User}, nil
}

func (s *Service) account(ctx context.Context, data []byte) (any, error) {
	var req storeclient.AccountRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	u := strings.ToLower(req.Username)
	if !chat.ValidUsername(u) {
		return nil, fmt.Errorf("%w: no account %q", chat.ErrNotFound, req.Username)
	}
	a, err := s.b.AccountByUsername(ctx, u)
	if err != nil {
		return nil, err
	}
	return storeclient.AccountResponse{Account: a}, nil
}

func (s *Service) users(ctx context.Context, data []byte) (any, error) {
	var req storeclient.UsersRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if len(req.IDs) > s.cfg.MaxIDs {
		return nil, fmt.Errorf("%w: %d ids, at most %d", chat.ErrInvalid, len(req.IDs), s.cfg.MaxIDs)
	}
	resp := storeclient.UsersResponse{Users: []chat.User{}}
	if len(req.IDs) == 0 {
		return resp, nil
	}
	users, err := s.b.Users(ctx, req.IDs)
	if err != nil {
		return nil, err
	}
	if users != nil {
		resp.Users = users
	}
	return resp, nil
}

func (s *Service) search(ctx context.Context, data []byte) (any, error) {
	var req storeclient.SearchRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	resp := storeclient.SearchResponse{Users: []chat.User{}}
	prefix := strings.ToLower(req.Prefix)
	if len(prefix) > 32 || strings.IndexFunc(prefix, func(r rune) bool { return r > 127 || !chat.UsernameByte(byte(r)) }) >= 0 {
		return resp, nil // no username can start with it
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	users, err := s.b.SearchUsers(ctx, prefix, limit)
	if err != nil {
		return nil, err
	}
	if users != nil {
		resp.Users = users
	}
	return resp, nil
}

// checkUsers returns ErrNotFound unless every user of ids exists.
func (s *Service) checkUsers(ctx context.Context, ids []chat.ID) error {
	users, err := s.b.Users(ctx, ids)
	if err != nil {
		return err
	}
	if len(users) == len(ids) {
		return nil
	}
	found := make(map[chat.ID]bool, len(users))
	for _, u := range users {
		found[u.ID] = true
	}
	for _, id := range ids {
		if !found[id] {
			return fmt.Errorf("%w: user %s", chat.ErrNotFound, id)
		}
	}
	return nil
}

func (s *Service) direct(ctx context.Context, data []byte) (any, error) {
	var req storeclient.DirectRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	a, b := req.A, req.B
	switch {
	case a == 0 || b == 0:
		return nil, fmt.Errorf("%w: direct needs two users", chat.ErrInvalid)
	case a == b:
		return nil, fmt.Errorf("%w: direct conversation with oneself", chat.ErrInvalid)
	}
	id := chat.DirectID(a, b)
	if c, err := s.b.Conversation(ctx, id); err == nil {
		return storeclient.DirectResponse{Conversation: c}, nil
	} else if !errors.Is(err, chat.ErrNotFound) {
		return nil, err
	}
	if err := s.checkUsers(ctx, []chat.ID{a, b}); err != nil {
		return nil, err
	}
	lo, hi := min(a, b), max(a, b)
	c, created, err := s.b.CreateConversation(ctx, chat.Conversation{
		ID: id, Kind: chat.Direct, CreatedBy: a, CreatedAt: now(), Members: []chat.ID{lo, hi},
	})
	if err != nil {
		return nil, err
	}
	if created {
		s.notify(c)
	}
	return storeclient.DirectResponse{Conversation: c, Created: created}, nil
}

// sortedIDs returns ids sorted ascending without duplicates; ErrInvalid for
// a zero ID.
func sortedIDs(ids []chat.ID) ([]chat.ID, error) {
	out := slices.Clone(ids)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == 0 {
		return nil, fmt.Errorf("%w: user id 0", chat.ErrInvalid)
	}
	return out, nil
}

func (s *Service) group(ctx context.Context, data []byte) (any, error) {
	var req storeclient.GroupRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Creator == 0 {
		return nil, fmt.Errorf("%w: group needs a creator", chat.ErrInvalid)
	}
	if !utf8.ValidString(req.Title) || utf8.RuneCountInString(req.Title) > chat.MaxTitle {
		return nil, fmt.Errorf("%w: title", chat.ErrInvalid)
	}
	if len(req.Members) >= 2*s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", chat.ErrTooMany, len(req.Members), s.cfg.MaxMembers)
	}
	members, err := sortedIDs(append(slices.Clip(req.Members), req.Creator))
	if err != nil {
		return nil, err
	}
	if len(members) > s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", chat.ErrTooMany, len(members), s.cfg.MaxMembers)
	}
	if err := s.checkUsers(ctx, members); err != nil {
		return nil, err
	}
	c, _, err := s.b.CreateConversation(ctx, chat.Conversation{
		ID: s.gen.Next().String(), Kind: chat.Group, Title: req.Title, CreatedBy: req.Creator,
		CreatedAt: now(), Members: members,
	})
	if err != nil {
		return nil, err
	}
	s.notify(c)
	return storeclient.GroupResponse{Conversation: c}, nil
}

func isMember(c chat.Conversation, u chat.ID) bool {
	_, ok := slices.BinarySearch(c.Members, u)
	if !ok {
		// Members should be sorted; do not trust it for access control.
		ok = slices.Contains(c.Members, u)
	}
	return ok
}

// memberConversation returns conversation id if user is a member; the same
// ErrNotFound otherwise, so that its existence is not disclosed.
func (s *Service) memberConversation(ctx context.Context, id string, user chat.ID) (chat.Conversation, error) {
	if !chat.ValidConversationID(id) {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %q", chat.ErrInvalid, id)
	}
	c, err := s.b.Conversation(ctx, id)
	if err != nil {
		return chat.Conversation{}, err
	}
	if !isMember(c, user) {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %s", chat.ErrNotFound, id)
	}
	return c, nil
}

func (s *Service) addMembers(ctx context.Context, data []byte) (any, error) {
	var req storeclient.AddMembersRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if len(req.Users) == 0 {
		return nil, fmt.Errorf("%w: no users to add", chat.ErrInvalid)
	}
	if len(req.Users) >= 2*s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d users, at most %d members", chat.ErrTooMany, len(req.Users), s.cfg.MaxMembers)
	}
	c, err := s.memberConversation(ctx, req.Conversation, req.By)
	if err != nil {
		return nil, err
	}
	if c.Kind != chat.Group {
		return nil, fmt.Errorf("%w: cannot add members to a %s conversation", chat.ErrInvalid, c.Kind)
	}
	users, err := sortedIDs(req.Users)
	if err != nil {
		return nil, err
	}
	users = slices.DeleteFunc(users, func(u chat.ID) bool { return isMember(c, u) })
	if len(users) == 0 {
		return storeclient.AddMembersResponse{Conversation: c, Added: []chat.ID{}}, nil // adding again changes nothing
	}
	// Two concurrent adds may together pass the limit a little; the limit
	// bounds fan-out cost, not an invariant.
	if len(c.Members)+len(users) > s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", chat.ErrTooMany, len(c.Members)+len(users), s.cfg.MaxMembers)
	}
	if err := s.checkUsers(ctx, users); err != nil {
		return nil, err
	}
	c, added, err := s.b.AddMembers(ctx, c.ID, users, now())
	if err != nil {
		return nil, err
	}
	if added == nil {
		added = []chat.ID{}
	}
	if len(added) > 0 {
		s.notify(c)
	}
	return storeclient.AddMembersResponse{Conversation: c, Added: added}, nil
}

func (s *Service) conversation(ctx context.Context, data []byte) (any, error) {
	var req storeclient.ConversationRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if !chat.ValidConversationID(req.ID) {
		return nil, fmt.Errorf("%w: conversation %q", chat.ErrInvalid, req.ID)
	}
	c, err := s.b.Conversation(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	return storeclient.ConversationResponse{Conversation: c}, nil
}

func (s *Service) conversations(ctx context.Context, data []byte) (any, error) {
	var req storeclient.ConversationsRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.User == 0 {
		return nil, fmt.Errorf("%w: user id 0", chat.ErrInvalid)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultConversationsLimit
	}
	limit = min(limit, maxConversationsLimit)
	list, err := s.b.Conversations(ctx, req.User, limit)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []chat.Summary{}
	}
	return storeclient.ConversationsResponse{Summaries: list}, nil
}

func (s *Service) history(ctx context.Context, data []byte) (any, error) {
	var req storeclient.HistoryRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	switch {
	case !chat.ValidConversationID(req.Conversation):
		return nil, fmt.Errorf("%w: conversation %q", chat.ErrInvalid, req.Conversation)
	case req.Before != 0 && req.After != 0:
		return nil, fmt.Errorf("%w: both before and after", chat.ErrInvalid)
	case req.Limit < 0:
		return nil, fmt.Errorf("%w: limit %d", chat.ErrInvalid, req.Limit)
	}
	p := chat.Page{Before: req.Before, After: req.After, Limit: req.Limit}
	if p.Limit == 0 {
		p.Limit = defaultHistoryLimit
	}
	p.Limit = min(p.Limit, maxHistoryLimit)
	if err := s.awaitStored(ctx, req.Conversation); err != nil {
		return nil, err
	}
	msgs, more, err := s.b.Messages(ctx, req.Conversation, p)
	if err != nil {
		return nil, err
	}
	if msgs == nil {
		msgs = []chat.Message{}
	}
	return storeclient.HistoryResponse{Messages: msgs, More: more}, nil
}

func (s *Service) read(ctx context.Context, data []byte) (any, error) {
	var req storeclient.ReadRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.User == 0 || req.MessageID == 0 {
		return nil, fmt.Errorf("%w: read needs a user and a message", chat.ErrInvalid)
	}
	if _, err := s.memberConversation(ctx, req.Conversation, req.User); err != nil {
		return nil, err
	}
	mark, moved, err := s.b.MarkRead(ctx, req.Conversation, req.User, req.MessageID)
	if err != nil {
		return nil, err
	}
	return storeclient.ReadResponse{Mark: mark, Moved: moved}, nil
}

// notify tells every member that c was created or its members changed.
// Core NATS: a gateway that misses it (disconnected) learns the change from
// the next conversation list.
func (s *Service) notify(c chat.Conversation) {
	body, err := json.Marshal(storeclient.UserEvent{Type: "conversation", Conversation: &c})
	if err != nil {
		s.log.Error("encode conversation event", zap.Error(err))
		return
	}
	for _, u := range c.Members {
		if err := s.nc.Publish(chat.UserSubject(u), body); err != nil {
			s.log.Warn("publish conversation event", zap.String("conversation", c.ID), zap.Error(err))
			return
		}
	}
}

// awaitStored makes history read-your-writes although the store writes
// behind the stream: it returns once the consumer has acked (so the backend
// holds) the last message published to the conversation before the call,
// or ErrUnavailable after HistoryWait.
func (s *Service) awaitStored(ctx context.Context, conversation string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HistoryWait)
	defer cancel()
	seq, err := s.lastSeq(ctx, s.msgPrefix+conversation)
	if err != nil {
		return fmt.Errorf("%w: last message of %s: %w", chat.ErrUnavailable, conversation, err)
	}
	if seq == 0 {
		return nil
	}
	if err := s.floor.wait(ctx, seq); err != nil {
		return fmt.Errorf("%w: store behind the stream (sequence %d of %s not yet stored): %w",
			chat.ErrUnavailable, seq, conversation, err)
	}
	return nil
}

// lastSeq returns the stream sequence of the last message on subject, 0 when
// there is none. It asks through the JetStream API, which the stream leader
// answers: a direct get (what jetstream's GetLastMsgForSubject uses when the
// stream allows it) may be answered by a follower that is not yet current,
// and its stale sequence would let a page miss an acked message.
func (s *Service) lastSeq(ctx context.Context, subject string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return 0, err
	}
	msg, err := s.nc.RequestWithContext(ctx, s.apiPrefix+"STREAM.MSG.GET."+s.cfg.Stream, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("stream message get: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, resp.Error
	case resp.Message == nil:
		return 0, jetstream.ErrInvalidJetStreamResponse
	}
	return resp.Message.Seq, nil
}

// pollLoop refreshes the consumer info: every HistoryPoll while history
// requests wait for the ack floor, every InfoInterval otherwise (gauges).
// One poller serves all waiters.
func (s *Service) pollLoop(ctx context.Context) {
	var last time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.floor.wake:
			interval := s.cfg.InfoInterval
			if s.floor.waiting() {
				interval = s.cfg.HistoryPoll
			}
			if d := time.Until(last.Add(interval)); d > 0 {
				t.Reset(d)
				continue
			}
		case <-t.C:
		}
		last = time.Now()
		s.refreshInfo(ctx)
		if s.floor.waiting() {
			t.Reset(s.cfg.HistoryPoll)
		} else {
			t.Reset(s.cfg.InfoInterval)
		}
	}
}

func (s *Service) refreshInfo(ctx context.Context) {
	cons := s.cons.Load()
	if cons == nil {
		s.floor.publish(0, false)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	info, err := (*cons).Info(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug("consumer info", zap.Error(err))
		}
		s.floor.publish(0, false)
		return
	}
	s.floor.publish(info.AckFloor.Stream, true)
	s.m.pending.Set(float64(info.NumPending))
	s.m.ackPending.Set(float64(info.NumAckPending))
	s.m.redelivered.Set(float64(info.NumRedelivered))
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

// floorWatch shares the consumer's ack floor (stream sequence) among
// history requests waiting for it.
type floorWatch struct {
	wake chan struct{} // pokes the poller; capacity 1

	mu      sync.Mutex
	floor   uint64
	known   bool          // floor comes from a successful poll
	waiters int           // requests waiting in wait
	changed chan struct{} // closed and replaced after every poll
}

func newFloorWatch() *floorWatch {
	return &floorWatch{wake: make(chan struct{}, 1), changed: make(chan struct{})}
}

func (f *floorWatch) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *floorWatch) waiting() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiters > 0
}

// publish records a poll result and wakes the waiters. The latest value
// wins, not the largest: a consumer that was recreated starts again at 0.
func (f *floorWatch) publish(floor uint64, ok bool) {
	f.mu.Lock()
	if ok {
		f.floor, f.known = floor, true
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// wait returns once the ack floor reaches seq, or ctx's error.
func (f *floorWatch) wait(ctx context.Context, seq uint64) error {
	f.mu.Lock()
	if f.known && f.floor >= seq {
		f.mu.Unlock()
		return nil
	}
	f.waiters++
	defer func() {
		f.mu.Lock()
		f.waiters--
		f.mu.Unlock()
	}()
	for {
		ch := f.changed
		f.mu.Unlock()
		f.poke()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
		if f.known && f.floor >= seq {
			f.mu.Unlock()
			return nil
		}
	}
}

// waiters returns how many history requests wait for the ack floor.
func (s *Service) waiters() int {
	s.floor.mu.Lock()
	defer s.floor.mu.Unlock()
	return s.floor.waiters
}

// consumeLoop sets the consumer up and consumes until stop ends; after a
// failure it starts again after SetupRetry. It returns an error only when
// the NATS connection is closed for good.
func (s *Service) consumeLoop(stop, work context.Context) error {
	for {
		err := s.consume(stop, work)
		s.consuming.Store(false)
		if stop.Err() != nil {
			return nil
		}
		if s.nc.IsClosed() {
			return fmt.Errorf("store: consumer: %w", nats.ErrConnectionClosed)
		}
		s.log.Warn("store consumer failed; retrying", zap.Error(err), zap.Duration("in", s.cfg.SetupRetry))
		if !sleepCtx(stop, s.cfg.SetupRetry) {
			return nil
		}
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

// consume creates (or updates) the durable consumer and writes what it
// delivers in batches until stop ends or the consumer fails.
func (s *Service) consume(stop, work context.Context) error {
	ctx, cancel := context.WithTimeout(stop, s.cfg.RequestTimeout)
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "chat store: writes messages to the database",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    -1, // a message is never given up on: it is terminated only when invalid
		MaxAckPending: s.cfg.MaxAckPending,
		FilterSubject: s.cfg.FilterSubject,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err)
	}
	s.cons.Store(&cons)
	s.floor.poke()
	iter, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.Prefetch))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer iter.Stop()
	s.consuming.Store(true)

	batch := make([]jetstream.Msg, 0, s.cfg.BatchSize)
	for {
		m, err := iter.Next(jetstream.NextContext(stop))
		if err != nil {
			if stop.Err() != nil {
				s.drain(work, iter)
				return nil
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				continue // the iterator re-issues its pull requests itself
			}
			return fmt.Errorf("consume: %w", err)
		}
		batch = append(batch[:0], m)
		linger := time.Now().Add(s.cfg.BatchLinger)
		for len(batch) < s.cfg.BatchSize {
			d := min(time.Until(linger), s.cfg.BatchIdle)
			if d <= 0 {
				break
			}
			m, err := iter.Next(jetstream.NextMaxWait(d))
			if err != nil {
				break // a real error shows again on the next blocking Next
			}
			batch = append(batch, m)
		}
		s.process(work, batch)
	}
}

// drain stops fetching and writes what was already fetched, so that a
// stopping replica does not leave messages to wait AckWait for redelivery
// (and history requests elsewhere to wait for them).
func (s *Service) drain(work context.Context, iter jetstream.MessagesContext) {
	iter.Drain()
	ctx, cancel := context.WithTimeout(work, drainBudget)
	defer cancel()
	var batch []jetstream.Msg
	for {
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			break
		}
		batch = append(batch, m)
		if len(batch) == s.cfg.BatchSize {
			s.process(work, batch)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		s.process(work, batch)
	}
}

// decodeStreamMessage decodes a message of the stream and checks that it
// names itself consistently with its subject.
func (s *Service) decodeStreamMessage(m jetstream.Msg) (chat.Message, error) {
	var msg chat.Message
	if err := json.Unmarshal(m.Data(), &msg); err != nil {
		return chat.Message{}, err
	}
	conv := strings.TrimPrefix(m.Subject(), s.msgPrefix)
	switch {
	case msg.ID == 0:
		return chat.Message{}, errors.New("message without id")
	case msg.Sender == 0:
		return chat.Message{}, errors.New("message without sender")
	case msg.Conversation != conv:
		return chat.Message{}, fmt.Errorf("conversation %q on subject %q", msg.Conversation, m.Subject())
	case !chat.ValidConversationID(conv):
		return chat.Message{}, fmt.Errorf("invalid conversation %q", conv)
	}
	return msg, nil
}

// process writes one batch and acks it, or hands it back to JetStream.
func (s *Service) process(work context.Context, batch []jetstream.Msg) {
	s.m.consumed.Add(float64(len(batch)))
	msgs := make([]chat.Message, 0, len(batch))
	keep := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		msg, err := s.decodeStreamMessage(m)
		if err != nil {
			s.terminate(m, err)
			continue
		}
		msgs = append(msgs, msg)
		keep = append(keep, m)
	}
	if len(msgs) > 0 {
		s.write(work, msgs, keep)
	}
}

// write saves msgs (delivered as ms) and acks them.
func (s *Service) write(work context.Context, msgs []chat.Message, ms []jetstream.Msg) {
	err := s.save(work, msgs, ms)
	switch {
	case errors.Is(err, chat.ErrInvalid) && len(msgs) > 1:
		// The backend refused one of them; find it, so that one bad
		// message does not block the stream.
		for i := range msgs {
			s.write(work, msgs[i:i+1], ms[i:i+1])
		}
		return
	case errors.Is(err, chat.ErrInvalid):
		s.terminate(ms[0], err)
		return
	case err != nil:
		s.saveOK.Store(false)
		s.log.Error("store write failed; messages left for redelivery",
			zap.Int("messages", len(msgs)), zap.Error(err))
		for _, m := range ms {
			_ = m.NakWithDelay(s.cfg.RedeliverDelay)
		}
		return
	}
	s.saveOK.Store(true)
	s.m.written.Add(float64(len(msgs)))
	s.m.batchSize.Observe(float64(len(msgs)))
	var ackErr error
	for _, m := range ms {
		if err := m.Ack(); err != nil && ackErr == nil {
			ackErr = err
		}
	}
	if ackErr != nil {
		// Written but not acked: JetStream redelivers, the write is idempotent.
		s.log.Warn("ack failed", zap.Error(ackErr))
	}
	if s.floor.waiting() {
		s.floor.poke()
	}
}

func (s *Service) terminate(m jetstream.Msg, reason error) {
	s.m.invalid.Inc()
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	s.log.Warn("terminating invalid stream message", zap.String("subject", m.Subject()),
		zap.Uint64("stream_seq", seq), zap.Int("bytes", len(m.Data())), zap.Error(reason))
	if err := m.TermWithReason("chat store: invalid message"); err != nil {
		s.log.Warn("term failed", zap.Error(err))
	}
}

// save writes msgs with bounded retries. While it retries, the messages'
// ack deadlines are pushed back so that JetStream does not hand them to
// another replica meanwhile.
func (s *Service) save(work context.Context, msgs []chat.Message, ms []jetstream.Msg) error {
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(work, s.cfg.SaveTimeout)
		err := s.b.SaveMessages(ctx, msgs)
		cancel()
		if err == nil || errors.Is(err, chat.ErrInvalid) {
			return err
		}
		s.saveOK.Store(false)
		if attempt >= s.cfg.SaveAttempts || work.Err() != nil {
			return err
		}
		s.log.Warn("store write failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
		if !sleepCtx(work, backoff) {
			return err
		}
		backoff = min(2*backoff, maxBackoff)
		for _, m := range ms {
			_ = m.InProgress()
		}
	}
}
