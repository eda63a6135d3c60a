package store

import (
	"context"
	"errors"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/prometheus/client_golang/prometheus"
)

// Backend op labels of chat_store_backend_latency_seconds and
// chat_store_backend_errors_total (a bounded set, see CONTRACT).
const (
	opSaveMessages  = "save_messages"
	opHistory       = "history"
	opConversations = "conversations"
	opRead          = "read"
	opAccount       = "account"
	opMembership    = "membership"
	opApplyChanges  = "apply_changes"
	opChanges       = "changes"
	opPush          = "push"
	opSession       = "session"
)

// metrics are the Service's Prometheus collectors, registered on the
// Registerer given to NewService.
type metrics struct {
	consumed      prometheus.Counter
	written       prometheus.Counter
	invalid       prometheus.Counter
	unknownKind   prometheus.Counter
	batchSize     prometheus.Histogram
	backendLat    *prometheus.HistogramVec
	backendErrors *prometheus.CounterVec
	requests      *prometheus.CounterVec
	pending       prometheus.Gauge
	ackPending    prometheus.Gauge
	redelivered   prometheus.Gauge
	ready         prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, ready func() bool) (*metrics, error) {
	m := &metrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_messages_consumed_total",
			Help: "Messages received from the JetStream consumer, redeliveries and invalid payloads included.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_messages_written_total",
			Help: "Messages written to the backend and then acknowledged.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_messages_invalid_total",
			Help: "Stream messages that were not a valid Message and were terminated unwritten.",
		}),
		unknownKind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_store_records_unknown_kind_total",
			Help: "Stream records of a kind this store cannot write (header Chat-Kind), terminated unwritten; also counted in chat_store_messages_invalid_total.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_store_write_batch_messages",
			Help:    "Messages per backend write batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
		}),
		backendLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_store_backend_latency_seconds",
			Help:    "Latency of backend calls by op.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms .. 8 s
		}, []string{"op"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_store_backend_errors_total",
			Help: "Backend calls that failed for another reason than a missing or invalid item, by op.",
		}, []string{"op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_store_requests_total",
			Help: "Store API requests over NATS by op and result (ok or an error code).",
		}, []string{"op", "result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_store_consumer_pending_messages",
			Help: "Messages of the stream not yet delivered to the store consumer (num_pending).",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_store_consumer_ack_pending_messages",
			Help: "Messages delivered to the store consumer and not yet acknowledged.",
		}),
		redelivered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_store_consumer_redelivered_messages",
			Help: "Messages redelivered to the store consumer and not yet acknowledged.",
		}),
	}
	m.ready = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_store_ready",
		Help: "1 while the store service can serve: NATS connected, consumer running, backend reachable.",
	}, func() float64 {
		if ready() {
			return 1
		}
		return 0
	})
	for _, c := range []prometheus.Collector{
		m.consumed, m.written, m.invalid, m.unknownKind, m.batchSize, m.backendLat, m.backendErrors,
		m.requests, m.pending, m.ackPending, m.redelivered, m.ready,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Children exist from the start, so dashboards and alerts see zeros
	// rather than no series at all.
	for _, op := range []string{opSaveMessages, opHistory, opConversations, opRead, opAccount, opMembership, opApplyChanges, opChanges, opPush, opSession} {
		m.backendLat.WithLabelValues(op)
		m.backendErrors.WithLabelValues(op)
	}
	for _, op := range []string{storeclient.OpSignup, storeclient.OpAccount, storeclient.OpLogin, storeclient.OpUsers, storeclient.OpSearch, storeclient.OpDirect, storeclient.OpGroup, storeclient.OpAddMembers, storeclient.OpConversation, storeclient.OpConversations, storeclient.OpHistory, storeclient.OpRead,
		storeclient.OpPutDevice, storeclient.OpDevices, storeclient.OpDeleteDevice, storeclient.OpMute, storeclient.OpMemberStates, storeclient.OpMembers, storeclient.OpMembership, storeclient.OpLeave} {
		m.requests.WithLabelValues(op, "ok")
	}
	for _, op := range storeclient.SessionOps {
		m.requests.WithLabelValues(op, "ok")
	}
	return m, nil
}

// observe records one backend call of op that started at start.
func (m *metrics) observe(op string, start time.Time, err error) {
	m.backendLat.WithLabelValues(op).Observe(time.Since(start).Seconds())
	// Answers such as "not found" or "username taken" are the backend
	// working; only failures count as errors.
	if err != nil && !errors.Is(err, chat.ErrNotFound) && !errors.Is(err, chat.ErrUsernameTaken) &&
		!errors.Is(err, chat.ErrInvalid) && !errors.Is(err, chat.ErrTooMany) && !errors.Is(err, chat.ErrConflict) {
		m.backendErrors.WithLabelValues(op).Inc()
	}
}

// instrumented wraps a Backend with latency and error metrics.
type instrumented struct {
	b Backend
	m *metrics
}

var _ Backend = instrumented{}

func (i instrumented) CreateAccount(ctx context.Context, a chat.Account) (chat.Account, error) {
	start := time.Now()
	stored, err := i.b.CreateAccount(ctx, a)
	i.m.observe(opAccount, start, err)
	return stored, err
}

func (i instrumented) AccountByUsername(ctx context.Context, username string) (chat.Account, error) {
	start := time.Now()
	a, err := i.b.AccountByUsername(ctx, username)
	i.m.observe(opAccount, start, err)
	return a, err
}

func (i instrumented) Users(ctx context.Context, ids []chat.ID) ([]chat.User, error) {
	start := time.Now()
	u, err := i.b.Users(ctx, ids)
	i.m.observe(opAccount, start, err)
	return u, err
}

func (i instrumented) SearchUsers(ctx context.Context, prefix string, limit int) ([]chat.User, error) {
	start := time.Now()
	u, err := i.b.SearchUsers(ctx, prefix, limit)
	i.m.observe(opAccount, start, err)
	return u, err
}

func (i instrumented) CreateConversation(ctx context.Context, c chat.Conversation) (chat.Conversation, bool, error) {
	start := time.Now()
	got, created, err := i.b.CreateConversation(ctx, c)
	i.m.observe(opMembership, start, err)
	return got, created, err
}

func (i instrumented) AddMembers(ctx context.Context, conversation string, users []chat.ID, at time.Time) (chat.Conversation, []chat.ID, error) {
	start := time.Now()
	c, added, err := i.b.AddMembers(ctx, conversation, users, at)
	i.m.observe(opMembership, start, err)
	return c, added, err
}

func (i instrumented) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	start := time.Now()
	c, err := i.b.Conversation(ctx, id)
	i.m.observe(opMembership, start, err)
	return c, err
}

func (i instrumented) Conversations(ctx context.Context, user chat.ID, limit int) ([]chat.Summary, error) {
	start := time.Now()
	s, err := i.b.Conversations(ctx, user, limit)
	i.m.observe(opConversations, start, err)
	return s, err
}

func (i instrumented) ConversationPage(ctx context.Context, user chat.ID, p chat.ListPage) ([]chat.Summary, bool, error) {
	start := time.Now()
	s, more, err := i.b.ConversationPage(ctx, user, p)
	i.m.observe(opConversations, start, err)
	return s, more, err
}

func (i instrumented) RemoveMember(ctx context.Context, conversation string, user chat.ID) (chat.Conversation, bool, error) {
	start := time.Now()
	c, was, err := i.b.RemoveMember(ctx, conversation, user)
	i.m.observe(opMembership, start, err)
	return c, was, err
}

func (i instrumented) Members(ctx context.Context, conversation string, after chat.ID, limit int) ([]chat.ID, bool, error) {
	start := time.Now()
	m, more, err := i.b.Members(ctx, conversation, after, limit)
	i.m.observe(opMembership, start, err)
	return m, more, err
}

func (i instrumented) SaveMessages(ctx context.Context, msgs []chat.Message) error {
	start := time.Now()
	err := i.b.SaveMessages(ctx, msgs)
	i.m.observe(opSaveMessages, start, err)
	return err
}

func (i instrumented) SaveMessagesReporting(ctx context.Context, msgs []chat.Message, stored func(string)) error {
	start := time.Now()
	err := saveReporting(ctx, i.b, msgs, stored)
	i.m.observe(opSaveMessages, start, err)
	return err
}

func (i instrumented) Messages(ctx context.Context, conversation string, p chat.Page) ([]chat.Message, bool, error) {
	start := time.Now()
	msgs, more, err := i.b.Messages(ctx, conversation, p)
	i.m.observe(opHistory, start, err)
	return msgs, more, err
}

func (i instrumented) MarkRead(ctx context.Context, conversation string, user chat.ID, msg chat.ID) (chat.ID, bool, error) {
	start := time.Now()
	mark, moved, err := i.b.MarkRead(ctx, conversation, user, msg)
	i.m.observe(opRead, start, err)
	return mark, moved, err
}

func (i instrumented) ApplyChanges(ctx context.Context, changes []chat.Change) error {
	start := time.Now()
	err := i.b.ApplyChanges(ctx, changes)
	i.m.observe(opApplyChanges, start, err)
	return err
}

func (i instrumented) Message(ctx context.Context, conversation string, id, viewer chat.ID) (chat.Message, error) {
	start := time.Now()
	m, err := i.b.Message(ctx, conversation, id, viewer)
	i.m.observe(opHistory, start, err)
	return m, err
}

func (i instrumented) Changes(ctx context.Context, conversation string, p chat.Page) ([]chat.Change, bool, error) {
	start := time.Now()
	cs, more, err := i.b.Changes(ctx, conversation, p)
	i.m.observe(opChanges, start, err)
	return cs, more, err
}

func (i instrumented) CreateSession(ctx context.Context, s chat.Session) error {
	start := time.Now()
	err := i.b.CreateSession(ctx, s)
	i.m.observe(opSession, start, err)
	return err
}

func (i instrumented) Session(ctx context.Context, id chat.ID) (chat.Session, error) {
	start := time.Now()
	s, err := i.b.Session(ctx, id)
	i.m.observe(opSession, start, err)
	return s, err
}

func (i instrumented) RotateSession(ctx context.Context, id chat.ID, gen uint32, hash []byte, seen time.Time) error {
	start := time.Now()
	err := i.b.RotateSession(ctx, id, gen, hash, seen)
	i.m.observe(opSession, start, err)
	return err
}

func (i instrumented) DeleteSession(ctx context.Context, user, id chat.ID) error {
	start := time.Now()
	err := i.b.DeleteSession(ctx, user, id)
	i.m.observe(opSession, start, err)
	return err
}

func (i instrumented) Sessions(ctx context.Context, user chat.ID) ([]chat.Session, error) {
	start := time.Now()
	s, err := i.b.Sessions(ctx, user)
	i.m.observe(opSession, start, err)
	return s, err
}

func (i instrumented) SetPasswordHash(ctx context.Context, username, hash string) error {
	start := time.Now()
	err := i.b.SetPasswordHash(ctx, username, hash)
	i.m.observe(opAccount, start, err)
	return err
}

// Close is the owner's business: the Service never closes the backend it
// was given.
func (i instrumented) Close() error { return nil }
