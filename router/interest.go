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

// ErrClosed is returned by an Interest that has been closed.
var ErrClosed = errors.New("router: closed")

// Kind says what a Delivery carries.
type Kind uint8

const (
	KindMessage Kind = iota + 1 // a stored message
	KindTyping                  // a member is typing
	KindRead                    // a member moved their read mark
	KindEvent                   // another ephemeral conversation event
)

// Delivery is one event for the local subscribers of a conversation. Frame
// is a complete WebSocket frame shared by every receiver: read-only.
type Delivery struct {
	Kind         Kind
	Conversation string
	// User is who caused it: the sender of a message, the typist.
	User  chat.ID
	Frame []byte
	// Received is when the gateway got it from NATS, for fan-out latency.
	Received time.Time
}

// Subscriber is a local party, a client connection, that wants a
// conversation's deliveries. Deliver must not block: it queues the frame.
type Subscriber interface {
	Deliver(d *Delivery)
}

// InterestConfig tunes an Interest. Zero values take the defaults.
type InterestConfig struct {
	// Buffer is how many NATS messages may wait for the dispatcher before
	// NATS drops them as a slow consumer (gaps in messages are then filled
	// from the stream). Default 65536.
	Buffer int
	// OnUserEvent receives the payload of an event sent to a local user
	// (chat.user.<id>), such as being added to a conversation. Called on the
	// dispatcher goroutine: it must not block for long.
	OnUserEvent func(user chat.ID, data []byte)
	// OnDelivered is told, after each fan-out, how many subscribers got it.
	OnDelivered func(d *Delivery, receivers int)
	// Publisher, when set, learns each conversation's newest stored message
	// so that this gateway's next send to it rarely conflicts.
	Publisher *Publisher
	// Stream is used to fill gaps in a conversation's messages. Optional.
	Stream jetstream.Stream
	Log    *zap.Logger
}

const interestShards = 64

// Interest is the interest table: which local subscribers want which
// conversations. It holds one NATS subscription per conversation while any
// local subscriber wants it (and one per locally connected user), and one
// dispatcher goroutine turns each received NATS message into one frame
// delivered to every local subscriber of its conversation, in stream order.
type Interest struct {
	nc   *nats.Conn
	cfg  InterestConfig
	log  *zap.Logger
	ch   chan *nats.Msg
	seed maphash.Seed

	shards [interestShards]interestShard

	umu   sync.Mutex
	users map[chat.ID]*userEntry

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type interestShard struct {
	mu    sync.RWMutex
	convs map[string]*convEntry
}

type convEntry struct {
	sub     *nats.Subscription
	subs    map[Subscriber]struct{}
	lastSeq uint64 // newest stream sequence delivered; dispatcher only
}

type userEntry struct {
	sub  *nats.Subscription
	refs int
}

// NewInterest starts an interest table on nc.
func NewInterest(nc *nats.Conn, cfg InterestConfig) *Interest {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 65536
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Interest{
		nc: nc, cfg: cfg, log: cfg.Log, ch: make(chan *nats.Msg, cfg.Buffer),
		seed: maphash.MakeSeed(), users: make(map[chat.ID]*userEntry),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	for i := range in.shards {
		in.shards[i].convs = make(map[string]*convEntry)
	}
	go in.dispatch()
	return in
}

func (in *Interest) shard(conv string) *interestShard {
	return &in.shards[maphash.String(in.seed, conv)%interestShards]
}

// Join adds s to conv's subscribers, subscribing to the conversation on
// NATS if s is the first local one. Joining twice is harmless.
func (in *Interest) Join(conv string, s Subscriber) error {
	if in.ctx.Err() != nil {
		return ErrClosed
	}
	sh := in.shard(conv)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.convs[conv]
	if e == nil {
		// ChanSubscribe: no goroutine per subscription, all conversations
		// feed the one dispatcher.
		sub, err := in.nc.ChanSubscribe(chat.ConvSubject(conv), in.ch)
		if err != nil {
			return fmt.Errorf("router: subscribe %s: %w", conv, err)
		}
		e = &convEntry{sub: sub, subs: make(map[Subscriber]struct{}, 2)}
		sh.convs[conv] = e
	}
	e.subs[s] = struct{}{}
	return nil
}

// Leave removes s from conv's subscribers; the last one out unsubscribes.
func (in *Interest) Leave(conv string, s Subscriber) {
	sh := in.shard(conv)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.convs[conv]
	if e == nil {
		return
	}
	delete(e.subs, s)
	if len(e.subs) == 0 {
		_ = e.sub.Unsubscribe()
		delete(sh.convs, conv)
	}
}

// Each calls fn for every local subscriber of conv. fn runs under the
// shard's read lock: it must not call back into the Interest.
func (in *Interest) Each(conv string, fn func(Subscriber)) {
	sh := in.shard(conv)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if e := sh.convs[conv]; e != nil {
		for s := range e.subs {
			fn(s)
		}
	}
}

// Subscribed reports how many conversations have local interest.
func (in *Interest) Subscribed() int {
	n := 0
	for i := range in.shards {
		sh := &in.shards[i]
		sh.mu.RLock()
		n += len(sh.convs)
		sh.mu.RUnlock()
	}
	return n
}

// JoinUser subscribes to events for user (reference counted: one per
// local connection of the user).
func (in *Interest) JoinUser(user chat.ID) error {
	if in.ctx.Err() != nil {
		return ErrClosed
	}
	in.umu.Lock()
	defer in.umu.Unlock()
	e := in.users[user]
	if e == nil {
		sub, err := in.nc.ChanSubscribe(chat.UserSubject(user), in.ch)
		if err != nil {
			return fmt.Errorf("router: subscribe user %d: %w", user, err)
		}
		e = &userEntry{sub: sub}
		in.users[user] = e
	}
	e.refs++
	return nil
}

// LeaveUser drops one reference taken by JoinUser.
func (in *Interest) LeaveUser(user chat.ID) {
	in.umu.Lock()
	defer in.umu.Unlock()
	e := in.users[user]
	if e == nil {
		return
	}
	if e.refs--; e.refs <= 0 {
		_ = e.sub.Unsubscribe()
		delete(in.users, user)
	}
}

// Close unsubscribes everything and stops the dispatcher. Safe twice.
func (in *Interest) Close() {
	in.once.Do(func() {
		in.cancel()
		for i := range in.shards {
			sh := &in.shards[i]
			sh.mu.Lock()
			for c, e := range sh.convs {
				_ = e.sub.Unsubscribe()
				delete(sh.convs, c)
			}
			sh.mu.Unlock()
		}
		in.umu.Lock()
		for u, e := range in.users {
			_ = e.sub.Unsubscribe()
			delete(in.users, u)
		}
		in.umu.Unlock()
		<-in.done
	})
}

func (in *Interest) dispatch() {
	defer close(in.done)
	for {
		select {
		case <-in.ctx.Done():
			return
		case m := <-in.ch:
			in.handle(m)
		}
	}
}

func (in *Interest) handle(m *nats.Msg) {
	now := time.Now()
	if rest, ok := strings.CutPrefix(m.Subject, chat.UserSubjectPrefix); ok {
		if in.cfg.OnUserEvent == nil {
			return
		}
		if u, err := chat.ParseID(rest); err == nil {
			in.cfg.OnUserEvent(u, m.Data)
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
	case "msg":
		in.handleMessage(conv, m, now)
	case "evt":
		d := &Delivery{Kind: KindEvent, Conversation: conv, Frame: TextFrame(m.Data), Received: now}
		switch m.Header.Get(chat.HdrKind) {
		case kindTyping:
			d.Kind = KindTyping
		case kindRead:
			d.Kind = KindRead
		}
		d.User, _ = chat.ParseID(m.Header.Get(chat.HdrUser))
		in.deliver(conv, d)
	}
}

func (in *Interest) handleMessage(conv string, m *nats.Msg, now time.Time) {
	seq := parseSeq(m.Header, chat.HdrNatsSeq)
	prev := parseSeq(m.Header, chat.HdrNatsLastSeq)
	sh := in.shard(conv)
	sh.mu.RLock()
	e := sh.convs[conv]
	var last uint64
	if e != nil {
		last = e.lastSeq
	}
	sh.mu.RUnlock()
	if e == nil {
		return // unsubscribed meanwhile
	}
	if last != 0 && seq <= last {
		return // already delivered (filled from the stream)
	}
	if last != 0 && prev > last {
		// Messages between last and seq never reached us (a NATS slow
		// consumer drop, a stream leader change): fetch them in order.
		in.fill(conv, last, seq, now)
	}
	in.deliverMessage(conv, seq, m.Header, m.Data, now)
}

func (in *Interest) fill(conv string, from, to uint64, now time.Time) {
	if in.cfg.Stream == nil {
		return
	}
	ctx, cancel := context.WithTimeout(in.ctx, 5*time.Second)
	defer cancel()
	for s := from + 1; s < to; {
		raw, err := in.cfg.Stream.GetMsg(ctx, s, jetstream.WithGetMsgSubject(chat.MsgSubject(conv)))
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				in.log.Warn("gap fill failed", zap.String("conversation", conv), zap.Error(err))
			}
			return
		}
		if raw.Sequence >= to {
			return
		}
		in.deliverMessage(conv, raw.Sequence, raw.Header, raw.Data, now)
		s = raw.Sequence + 1
	}
}

func (in *Interest) deliverMessage(conv string, seq uint64, h nats.Header, data []byte, now time.Time) {
	sender, _ := chat.ParseID(h.Get(chat.HdrSender))
	if in.cfg.Publisher != nil {
		if id, err := chat.ParseID(h.Get(chat.HdrMsgID)); err == nil {
			in.cfg.Publisher.Observe(conv, seq, id)
		}
	}
	sh := in.shard(conv)
	sh.mu.Lock()
	if e := sh.convs[conv]; e != nil && seq > e.lastSeq {
		e.lastSeq = seq
	}
	sh.mu.Unlock()
	in.deliver(conv, &Delivery{Kind: KindMessage, Conversation: conv, User: sender, Frame: messageFrame(data), Received: now})
}

func (in *Interest) deliver(conv string, d *Delivery) {
	n := 0
	in.Each(conv, func(s Subscriber) {
		s.Deliver(d)
		n++
	})
	if in.cfg.OnDelivered != nil {
		in.cfg.OnDelivered(d, n)
	}
}
