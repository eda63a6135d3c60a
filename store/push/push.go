// Package push notifies members who are offline of new messages: a durable
// JetStream consumer on the message stream beside the store's ingest. For
// each message it waits a short delay, then, for each member other than the
// sender who has no connection online (router presence) and has not read
// the message (the store's read marks), sends to each of their devices:
// through the operator's push gateway (Matrix push gateway API) or by Web
// Push straight to the browser. A conversation the member muted gets a
// notification without text.
//
// Nothing is lost across restarts: a message is acked only once every
// notification for it was sent, found gone or dead-lettered. Nothing is sent
// twice: each sent notification is recorded in a key-value bucket
// (chat.PushSentBucket) keyed by message and device, so a message
// redelivered after a crash skips the devices already notified. The one
// window left is between an endpoint's answer and that record (a crash
// there resends once); Web Push requests carry a Topic per message so a
// push service collapses such a resend if the browser has not fetched the
// first. See docs/PUSH.md.
package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

var (
	// ErrConfig is a configuration the service cannot start with.
	ErrConfig = errors.New("push: bad configuration")
	// ErrGone is a device the endpoint says no longer exists (Web Push 404
	// or 410, a pushkey the gateway rejected): it is removed from the store.
	ErrGone = errors.New("push: device gone")
	// errPermanent is an answer retrying will not change: dead-lettered at
	// once.
	errPermanent = errors.New("push: refused")
)

// Defaults of Config.
const (
	DefaultDelay        = 3 * time.Second
	DefaultMaxAge       = time.Hour
	DefaultWorkers      = 32
	DefaultMaxPending   = 4096
	DefaultHTTPTimeout  = 10 * time.Second
	DefaultMaxAttempts  = 6
	DefaultBackoffBase  = 500 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultWebPushTTL   = 24 * time.Hour
	DefaultSentTTL      = 48 * time.Hour
	DefaultBodyMax      = 1000
	DefaultVAPIDSubject = "mailto:push@localhost"
)

// Online tells whether a user has a connection anywhere: router.Presence.
type Online interface {
	Online(user chat.ID) bool
}

// Config configures a Service. Zero values take the defaults.
type Config struct {
	// Stream is the message stream (chat.StreamName) and Durable this
	// service's consumer on it (chat.PushDurable). A new consumer starts at
	// the stream's end: history is not notified.
	Stream, Durable string
	// Delay is how long after a message's sent_at an offline member is
	// notified, so that a member who reads it meanwhile is not (default
	// DefaultDelay).
	Delay time.Duration
	// MaxAge: a message first seen later than this after it was sent (a
	// long outage of this service) is not notified (default DefaultMaxAge).
	MaxAge time.Duration
	// Workers decide and send in parallel (default DefaultWorkers).
	Workers int
	// MaxPending bounds the messages held unacked, waiting out the delay
	// or being sent (JetStream's MaxAckPending; default DefaultMaxPending).
	MaxPending int
	// GatewayURL is the push gateway's notify URL, e.g.
	// https://sygnal.example.net/_matrix/push/v1/notify. Empty: gateway
	// devices are dead-lettered.
	GatewayURL string
	// VAPID signs Web Push requests. Nil: webpush devices are
	// dead-lettered.
	VAPID *VAPIDKeys
	// VAPIDSubject is the contact push services see (default
	// DefaultVAPIDSubject; RFC 8292 wants a mailto: or https: URL).
	VAPIDSubject string
	// WebPushTTL is how long a push service keeps an undelivered Web Push
	// notification (default DefaultWebPushTTL).
	WebPushTTL time.Duration
	// HTTPTimeout bounds one send (default DefaultHTTPTimeout).
	HTTPTimeout time.Duration
	// MaxAttempts, BackoffBase, BackoffMax: a failed send is retried up to
	// MaxAttempts tries in all, waiting a random time up to
	// min(BackoffMax, BackoffBase*2^try) between them (full jitter).
	MaxAttempts             int
	BackoffBase, BackoffMax time.Duration
	// SentTTL is how long the record of a sent notification is kept
	// (default DefaultSentTTL; longer than any redelivery can take).
	SentTTL time.Duration
	// Replicas of the sent-notifications bucket (default 1; 3 in a
	// cluster, like the stream).
	Replicas int
	// BodyMax bounds the bytes of message text a notification carries
	// (default DefaultBodyMax): push payloads are limited to 4 KiB.
	BodyMax int
	// HTTPClient sends; default one with HTTPTimeout.
	HTTPClient *http.Client
	Log        *zap.Logger
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Stream == "" {
		c.Stream = chat.StreamName
	}
	if c.Durable == "" {
		c.Durable = chat.PushDurable
	}
	def(&c.Delay, DefaultDelay)
	def(&c.MaxAge, DefaultMaxAge)
	def(&c.HTTPTimeout, DefaultHTTPTimeout)
	def(&c.BackoffBase, DefaultBackoffBase)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.WebPushTTL, DefaultWebPushTTL)
	def(&c.SentTTL, DefaultSentTTL)
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.BodyMax <= 0 {
		c.BodyMax = DefaultBodyMax
	}
	if c.VAPIDSubject == "" {
		c.VAPIDSubject = DefaultVAPIDSubject
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.HTTPTimeout}
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Notification is what a device is told, and the Web Push payload (JSON).
// Muted notifications carry no Body, SenderName or Title.
type Notification struct {
	MessageID    chat.ID   `json:"message_id"`
	Conversation string    `json:"conversation"`
	Sender       chat.ID   `json:"sender"`
	SenderName   string    `json:"sender_name,omitempty"`
	Title        string    `json:"title,omitempty"`
	Body         string    `json:"body,omitempty"`
	SentAt       time.Time `json:"sent_at"`
	Muted        bool      `json:"muted,omitempty"`
}

// item is a message held until its deadline.
type item struct {
	m        jetstream.Msg
	msg      chat.Message
	deadline time.Time
}

// Service is a running push notifier.
type Service struct {
	cfg    Config
	log    *zap.Logger
	store  *storeclient.Client
	online Online
	kv     jetstream.KeyValue
	m      *metrics
	gw     *gateway
	web    *webPush

	cc      jetstream.ConsumeContext
	pending chan item // received, waiting for the delayer
	due     chan item // past their deadline, for the workers
	stop    chan struct{}
	work    context.Context // sends; cancelled when Shutdown's ctx ends
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped atomic.Bool
}

// Start creates the consumer and the sent-notifications bucket and starts
// notifying. nc carries the consumer, st reaches the store, online is the
// cluster's presence.
func Start(ctx context.Context, nc *nats.Conn, st *storeclient.Client, online Online, reg prometheus.Registerer, cfg Config) (*Service, error) {
	cfg.setDefaults()
	if nc == nil || st == nil || online == nil {
		return nil, fmt.Errorf("%w: a NATS connection, a store client and presence are needed", ErrConfig)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("push: metrics: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      chat.PushSentBucket,
		Description: "chat push: notifications sent, by message and device",
		TTL:         cfg.SentTTL,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("push: bucket %s: %w", chat.PushSentBucket, err)
	}
	s := &Service{
		cfg:     cfg,
		log:     cfg.Log,
		store:   st,
		online:  online,
		kv:      kv,
		m:       m,
		gw:      &gateway{client: cfg.HTTPClient, url: cfg.GatewayURL},
		pending: make(chan item, cfg.MaxPending),
		due:     make(chan item),
		stop:    make(chan struct{}),
	}
	if cfg.VAPID != nil {
		s.web = &webPush{client: cfg.HTTPClient, keys: *cfg.VAPID, subject: cfg.VAPIDSubject, ttl: cfg.WebPushTTL}
	}
	s.work, s.cancel = context.WithCancel(context.Background())

	cons, err := s.consumer(ctx, js)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.wg.Add(1 + cfg.Workers)
	go s.delayer()
	for range cfg.Workers {
		go s.worker()
	}
	s.cc, err = cons.Consume(s.receive, jetstream.PullMaxMessages(min(cfg.MaxPending, 512)))
	if err != nil {
		close(s.stop)
		s.cancel()
		s.wg.Wait()
		return nil, fmt.Errorf("push: consume: %w", err)
	}
	return s, nil
}

// consumer creates the durable consumer, or finds it: an existing one keeps
// its position (and its DeliverNew start), so a restart resumes where the
// last acknowledged message left off.
func (s *Service) consumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	// Long enough for a message to wait out the delay and one send; each
	// further try reports progress (InProgress resets the wait), so a
	// crashed instance's messages come back after about this long.
	ackWait := s.cfg.Delay + 2*s.cfg.HTTPTimeout + 10*time.Second
	cons, err := js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "chat push: notifies offline members",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: s.cfg.MaxPending,
		FilterSubject: chat.MsgSubjects,
	})
	if err != nil {
		return nil, fmt.Errorf("push: consumer %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err)
	}
	return cons, nil
}

// receive runs on the consumer's goroutine: decode, and queue for the
// delayer. It never blocks for long: pending holds MaxPending, as many as
// JetStream hands out unacked.
func (s *Service) receive(m jetstream.Msg) {
	if chat.RecordKind(m.Headers().Get(chat.HdrKind)) != chat.EventMessage {
		s.m.messages.WithLabelValues("skipped").Inc()
		_ = m.Ack()
		return
	}
	var msg chat.Message
	if err := decodeMessage(m.Data(), &msg); err != nil {
		s.log.Warn("push: undecodable stream record", zap.String("subject", m.Subject()), zap.Error(err))
		s.m.messages.WithLabelValues("skipped").Inc()
		_ = m.Term()
		return
	}
	if time.Since(msg.SentAt) > s.cfg.MaxAge {
		s.m.messages.WithLabelValues("stale").Inc()
		_ = m.Ack()
		return
	}
	if s.stopped.Load() {
		_ = m.Nak()
		return
	}
	s.m.pending.Inc()
	select {
	case s.pending <- item{m: m, msg: msg, deadline: msg.SentAt.Add(s.cfg.Delay)}:
	case <-s.stop:
		s.m.pending.Dec()
		_ = m.Nak()
	}
}

// delayer hands each message to the workers at its deadline. Messages
// arrive nearly in deadline order (deadline = sent_at + Delay, and the
// stream is in sent order), so one FIFO and one timer suffice; a
// redelivered message has its deadline behind it and passes at once.
func (s *Service) delayer() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var it item
		select {
		case it = <-s.pending:
		case <-s.stop:
			return
		}
		if d := time.Until(it.deadline); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-s.stop:
				s.handBack(it)
				return
			}
		}
		select {
		case s.due <- it:
		case <-s.stop:
			s.handBack(it)
			return
		}
	}
}

func (s *Service) worker() {
	defer s.wg.Done()
	for {
		select {
		case it := <-s.due:
			s.handle(it)
		case <-s.stop:
			return
		}
	}
}

// handle decides one message and acks it, or hands it back when the store
// or the bucket did not answer.
func (s *Service) handle(it item) {
	defer s.m.pending.Dec()
	result, err := s.deliver(s.work, it.msg, func() { _ = it.m.InProgress() })
	if err != nil {
		if s.work.Err() == nil {
			s.log.Warn("push: message handed back", zap.String("conversation", it.msg.Conversation), zap.Stringer("id", it.msg.ID), zap.Error(err))
		}
		s.m.naks.Inc()
		_ = it.m.NakWithDelay(s.cfg.BackoffBase)
		return
	}
	s.m.messages.WithLabelValues(result).Inc()
	if err := it.m.Ack(); err != nil {
		// A lost ack redelivers; the sent records make that harmless.
		s.log.Debug("push: ack", zap.Error(err))
	}
}

// handBack returns a message to JetStream at once, so the next instance
// need not wait AckWait for it.
func (s *Service) handBack(it item) {
	s.m.pending.Dec()
	_ = it.m.Nak()
}

// Shutdown stops receiving, lets the sends in flight finish until ctx
// ends, and hands every undecided message back to JetStream. Safe twice.
func (s *Service) Shutdown(ctx context.Context) error {
	if s == nil || !s.stopped.CompareAndSwap(false, true) {
		return nil
	}
	s.cc.Stop()
	close(s.stop)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel() // sends in flight fail; their messages are handed back
		<-done
		err = ctx.Err()
	}
	s.cancel()
	for {
		select {
		case it := <-s.pending:
			s.handBack(it)
		default:
			return err
		}
	}
}
