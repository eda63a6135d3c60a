package router

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ErrClosed is returned by a Feed that has been closed.
var ErrClosed = errors.New("router: closed")

// Kind says what an Event carries.
type Kind uint8

const (
	KindMessage Kind = iota + 1 // a stored stream record (Event.Record says which kind)
	KindTyping                  // a member is typing
	KindRead                    // a member moved their read mark
	KindEvent                   // another ephemeral conversation event
)

// Event is one thing that happened in a conversation, as it came off NATS.
// Data is the payload as published: for a stored record the client's JSON of
// it, for an ephemeral event the client frame's JSON. Read-only: the Feed
// hands the same Event to its one handler and forgets it.
type Event struct {
	Kind         Kind
	Record       chat.EventKind // for KindMessage: what the stream record is
	Conversation string
	// User is who caused it: the sender of a message, the typist.
	User chat.ID
	Data []byte
	// Received is when this process got it from NATS, for fan-out latency.
	Received time.Time
}

// FeedConfig tunes a Feed. Zero values take the defaults.
type FeedConfig struct {
	// Buffer is how many NATS messages may wait for the dispatcher before
	// NATS drops them as a slow consumer (gaps in messages are then filled
	// from the stream). Default 65536.
	Buffer int
	// OnEvent receives every conversation event, on the dispatcher
	// goroutine, in stream order per conversation. It must not block.
	OnEvent func(ev *Event)
	// OnIdle, when set, is called on the dispatcher goroutine once it has
	// handled every event waiting (and at least every maxEventsPerIdle
	// events while a backlog lasts): a handler may defer per-event work,
	// such as waking connections' writers, until then, so that under load
	// one wake-up carries several events.
	OnIdle func()
	// OnUserEvent receives the payload of an event sent to a subscribed user
	// (chat.user.<id>), such as being added to a conversation. Called on the
	// dispatcher goroutine: it must not block for long.
	OnUserEvent func(user chat.ID, data []byte)
	// Publisher, when set, learns each conversation's newest stored message
	// so that this process's next send to it rarely conflicts.
	Publisher *Publisher
	// Stream is used to fill gaps in a conversation's messages. Optional.
	Stream jetstream.Stream
	Log    *zap.Logger
}

const feedShards = 64

// Feed holds this process's NATS subscriptions, one per conversation and
// one per user it is told to follow, and turns what arrives into Events for
// one handler. All subscriptions feed one dispatcher goroutine through a
// shared channel (ChanSubscribe), so a hundred thousand conversations cost
// no goroutines. Messages are delivered in stream order: a gap in a
// conversation's sequence is filled from the stream before later messages.
//
// Who locally wants which conversation is the caller's business (the
// gateway's registry): Subscribe and Unsubscribe are not reference counted.
type Feed struct {
	nc   *nats.Conn
	cfg  FeedConfig
	log  *zap.Logger
	ch   chan *nats.Msg
	seed maphash.Seed

	shards [feedShards]feedShard

	umu   sync.Mutex
	users map[chat.ID]*nats.Subscription

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type feedShard struct {
	mu    sync.Mutex
	convs map[string]*convSub
}

type convSub struct {
	sub     *nats.Subscription
	lastSeq uint64 // newest stream sequence delivered; dispatcher only
}

// NewFeed starts a feed on nc.
func NewFeed(nc *nats.Conn, cfg FeedConfig) *Feed {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 65536
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(*Event) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Feed{
		nc: nc, cfg: cfg, log: cfg.Log, ch: make(chan *nats.Msg, cfg.Buffer),
		seed: maphash.MakeSeed(), users: make(map[chat.ID]*nats.Subscription),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	for i := range f.shards {
		f.shards[i].convs = make(map[string]*convSub)
	}
	go f.dispatch()
	return f
}

func (f *Feed) shard(conv string) *feedShard {
	return &f.shards[maphash.String(f.seed, conv)%feedShards]
}

// Subscribe starts receiving conv's events. Subscribing twice is harmless.
func (f *Feed) Subscribe(conv string) error {
	if f.ctx.Err() != nil {
		return ErrClosed
	}
	sh := f.shard(conv)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.convs[conv] != nil {
		return nil
	}
	sub, err := f.nc.ChanSubscribe(chat.ConvSubject(conv), f.ch)
	if err != nil {
		return fmt.Errorf("router: subscribe %s: %w", conv, err)
	}
	sh.convs[conv] = &convSub{sub: sub}
	return nil
}

// Unsubscribe stops receiving conv's events.
func (f *Feed) Unsubscribe(conv string) {
	sh := f.shard(conv)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.convs[conv]; e != nil {
		_ = e.sub.Unsubscribe()
		delete(sh.convs, conv)
	}
}

// Subscribed reports how many conversations are subscribed.
func (f *Feed) Subscribed() int {
	n := 0
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		n += len(sh.convs)
		sh.mu.Unlock()
	}
	return n
}

// SubscribeUser starts receiving user's events. Subscribing twice is
// harmless.
func (f *Feed) SubscribeUser(user chat.ID) error {
	if f.ctx.Err() != nil {
		return ErrClosed
	}
	f.umu.Lock()
	defer f.umu.Unlock()
	if f.users[user] != nil {
		return nil
	}
	sub, err := f.nc.ChanSubscribe(chat.UserSubject(user), f.ch)
	if err != nil {
		return fmt.Errorf("router: subscribe user %d: %w", user, err)
	}
	f.users[user] = sub
	return nil
}

// UnsubscribeUser stops receiving user's events.
func (f *Feed) UnsubscribeUser(user chat.ID) {
	f.umu.Lock()
	defer f.umu.Unlock()
	if sub := f.users[user]; sub != nil {
		_ = sub.Unsubscribe()
		delete(f.users, user)
	}
}

// Close unsubscribes everything and stops the dispatcher. Safe twice.
func (f *Feed) Close() {
	f.once.Do(func() {
		f.cancel()
		for i := range f.shards {
			sh := &f.shards[i]
			sh.mu.Lock()
			for c, e := range sh.convs {
				_ = e.sub.Unsubscribe()
				delete(sh.convs, c)
			}
			sh.mu.Unlock()
		}
		f.umu.Lock()
		for u, sub := range f.users {
			_ = sub.Unsubscribe()
			delete(f.users, u)
		}
		f.umu.Unlock()
		<-f.done
	})
}

// maxEventsPerIdle bounds how long OnIdle waits while events keep coming:
// the latency one batch adds.
const maxEventsPerIdle = 64

func (f *Feed) dispatch() {
	defer close(f.done)
	if f.cfg.OnIdle != nil {
		defer f.cfg.OnIdle() // nothing deferred is left behind
	}
	handled := 0
	for {
		select {
		case <-f.ctx.Done():
			return
		case m := <-f.ch:
			f.handle(m)
			handled++
			if f.cfg.OnIdle != nil && (len(f.ch) == 0 || handled >= maxEventsPerIdle) {
				f.cfg.OnIdle()
				handled = 0
			}
		}
	}
}

func (f *Feed) handle(m *nats.Msg) {
	now := time.Now()
	if rest, ok := strings.CutPrefix(m.Subject, chat.UserSubjectPrefix); ok {
		if f.cfg.OnUserEvent == nil {
			return
		}
		if u, err := chat.ParseID(rest); err == nil {
			f.cfg.OnUserEvent(u, m.Data)
		}
		return
	}
	rest, ok := strings.CutPrefix(m.Subject, chat.ConvSubjectPrefix)
	if !ok {
		return
	}
	conv, suffix, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	switch suffix {
	case chat.ConvMsgSuffix:
		f.handleRecord(conv, m, now)
	case chat.ConvEvtSuffix:
		ev := &Event{Kind: KindEvent, Conversation: conv, Data: m.Data, Received: now}
		switch m.Header.Get(chat.HdrKind) {
		case kindTyping:
			ev.Kind = KindTyping
		case kindRead:
			ev.Kind = KindRead
		}
		ev.User, _ = chat.ParseID(m.Header.Get(chat.HdrUser))
		f.cfg.OnEvent(ev)
	}
}

func (f *Feed) handleRecord(conv string, m *nats.Msg, now time.Time) {
	seq := parseSeq(m.Header, chat.HdrNatsSeq)
	prev := parseSeq(m.Header, chat.HdrNatsLastSeq)
	sh := f.shard(conv)
	sh.mu.Lock()
	e := sh.convs[conv]
	var last uint64
	if e != nil {
		last = e.lastSeq
	}
	sh.mu.Unlock()
	if e == nil {
		return // unsubscribed meanwhile
	}
	if last != 0 && seq <= last {
		return // already delivered (filled from the stream)
	}
	if last != 0 && prev > last {
		// Records between last and seq never reached us (a NATS slow
		// consumer drop, a stream leader change): fetch them in order.
		f.fill(conv, last, seq, now)
	}
	f.deliverRecord(conv, seq, m.Header, m.Data, now)
}

func (f *Feed) fill(conv string, from, to uint64, now time.Time) {
	if f.cfg.Stream == nil {
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	for s := from + 1; s < to; {
		raw, err := f.cfg.Stream.GetMsg(ctx, s, jetstream.WithGetMsgSubject(chat.MsgSubject(conv)))
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				f.log.Warn("gap fill failed", zap.String("conversation", conv), zap.Error(err))
			}
			return
		}
		if raw.Sequence >= to {
			return
		}
		f.deliverRecord(conv, raw.Sequence, raw.Header, raw.Data, now)
		s = raw.Sequence + 1
	}
}

func (f *Feed) deliverRecord(conv string, seq uint64, h nats.Header, data []byte, now time.Time) {
	sender, _ := chat.ParseID(h.Get(chat.HdrSender))
	if f.cfg.Publisher != nil {
		if id, err := chat.ParseID(h.Get(chat.HdrMsgID)); err == nil {
			num, _ := chat.ParseNumber(h.Get(chat.HdrNum), h.Get(chat.HdrNumBase))
			f.cfg.Publisher.Observe(conv, seq, id, num)
		}
	}
	sh := f.shard(conv)
	sh.mu.Lock()
	if e := sh.convs[conv]; e != nil && seq > e.lastSeq {
		e.lastSeq = seq
	}
	sh.mu.Unlock()
	f.cfg.OnEvent(&Event{
		Kind: KindMessage, Record: chat.RecordKind(h.Get(chat.HdrKind)), Conversation: conv,
		User: sender, Data: data, Received: now,
	})
}
