package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict is returned when a conversation's publishes kept colliding
// with other gateways' and the send gave up; the client may retry.
var ErrConflict = errors.New("router: too many concurrent publishes to one conversation")

// maxPublishAttempts bounds the optimistic-concurrency retries of one send.
const maxPublishAttempts = 32

// Publisher makes sends durable. IDs within a conversation must grow in the
// order the stream stores them (clients receive messages in ID order), yet
// several gateways assign IDs concurrently with clocks that differ a little.
// So each publish names the conversation's last stream sequence it knows
// (Nats-Expected-Last-Subject-Sequence) with an ID above that message's: if
// another gateway got in first, JetStream refuses, we learn the new last
// message and try again. Within one gateway, sends to one conversation queue
// behind each other so they never collide among themselves.
type Publisher struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	ids    *chat.Generator
	now    func() time.Time

	mu    sync.Mutex
	convs map[string]*convTail
}

// convTail is what this gateway knows of a conversation's newest message.
type convTail struct {
	pub sync.Mutex // serialises this gateway's publishes to the conversation

	mu      sync.Mutex
	known   bool
	lastSeq uint64
	lastID  chat.ID
	used    time.Time
}

// NewPublisher returns a publisher that takes IDs from ids.
func NewPublisher(js jetstream.JetStream, stream jetstream.Stream, ids *chat.Generator) *Publisher {
	return &Publisher{js: js, stream: stream, ids: ids, now: time.Now, convs: make(map[string]*convTail)}
}

func (p *Publisher) tail(conv string) *convTail {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.convs[conv]
	if t == nil {
		t = &convTail{}
		p.convs[conv] = t
	}
	return t
}

// Observe records a stored message seen on the fan-out subscription, so the
// next publish to its conversation rarely conflicts.
func (p *Publisher) Observe(conv string, seq uint64, id chat.ID) {
	p.mu.Lock()
	t := p.convs[conv]
	p.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	if seq > t.lastSeq {
		t.known, t.lastSeq, t.lastID = true, seq, id
	}
	t.mu.Unlock()
}

// Forget drops tails unused for longer than idle, bounding memory.
func (p *Publisher) Forget(idle time.Duration) {
	cut := p.now().Add(-idle)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, t := range p.convs {
		t.mu.Lock()
		old := t.used.Before(cut)
		t.mu.Unlock()
		if old && t.pub.TryLock() {
			delete(p.convs, c)
			t.pub.Unlock()
		}
	}
}

// Publish stores m (Conversation, Sender, Body, ClientID set; ReplyTo and
// Reply when it answers a message) in the stream and returns it as stored,
// with its ID and time. When the same sender has already sent the same
// ClientID to the conversation within the deduplication window it returns
// that first message instead; dup says so.
func (p *Publisher) Publish(ctx context.Context, m chat.Message) (stored chat.Message, dup bool, err error) {
	msgID := chat.MsgIDHeader(m.Conversation, m.Sender, m.ClientID)
	buf := make([]byte, 0, 160+len(m.Body))
	id, at, dupSeq, err := p.publish(ctx, m.Conversation, chat.EventMessage, m.Sender, msgID, func(id chat.ID, at time.Time) []byte {
		m.ID, m.SentAt = id, at
		buf = m.AppendJSON(buf[:0])
		return buf
	})
	if err != nil {
		return chat.Message{}, false, err
	}
	if dupSeq != 0 {
		var orig chat.Message
		err := p.original(ctx, dupSeq, &orig)
		return orig, true, err
	}
	m.ID, m.SentAt = id, at
	return m, false, nil
}

// PublishChange stores c (Conversation, Kind, MessageID, User, ClientID and
// its kind's fields set) in the stream as a record of its kind, with an ID
// from the same sequence as the conversation's messages (above its newest
// record's): the change cursor. A resent ClientID of the same user and kind
// returns the first change; dup says so. Without a ClientID nothing is
// deduplicated (a deletion without one is harmless to repeat).
func (p *Publisher) PublishChange(ctx context.Context, c chat.Change) (stored chat.Change, dup bool, err error) {
	if !c.Kind.IsChange() {
		return chat.Change{}, false, fmt.Errorf("router: %q is not a change", c.Kind)
	}
	msgID := ""
	if c.ClientID != "" {
		msgID = chat.ChangeIDHeader(c.Conversation, c.User, c.Kind, c.ClientID)
	}
	c.Message = nil
	buf := make([]byte, 0, 200+len(c.Body))
	id, at, dupSeq, err := p.publish(ctx, c.Conversation, c.Kind, c.User, msgID, func(id chat.ID, at time.Time) []byte {
		c.ID, c.At = id, at
		buf = c.AppendJSON(buf[:0])
		return buf
	})
	if err != nil {
		return chat.Change{}, false, err
	}
	if dupSeq != 0 {
		var orig chat.Change
		err := p.original(ctx, dupSeq, &orig)
		return orig, true, err
	}
	c.ID, c.At = id, at
	return c, false, nil
}

// publish appends one record of kind to conv's subject: encode makes its
// payload for the ID and time it is given. The ID is above the newest
// record's of the conversation (Nats-Expected-Last-Subject-Sequence makes
// that hold across gateways). dupSeq is the original's sequence when
// JetStream recognised msgID as a duplicate; msgID "" disables that.
func (p *Publisher) publish(ctx context.Context, conv string, kind chat.EventKind, sender chat.ID, msgID string,
	encode func(id chat.ID, at time.Time) []byte) (id chat.ID, at time.Time, dupSeq uint64, err error) {
	t := p.tail(conv)
	t.pub.Lock()
	defer t.pub.Unlock()

	subject := chat.MsgSubject(conv)
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		t.mu.Lock()
		known, lastSeq, lastID := t.known, t.lastSeq, t.lastID
		t.used = p.now()
		t.mu.Unlock()
		if !known {
			if lastSeq, lastID, err = p.loadTail(ctx, subject); err != nil {
				return 0, time.Time{}, 0, err
			}
			t.mu.Lock()
			if lastSeq >= t.lastSeq {
				t.known, t.lastSeq, t.lastID = true, lastSeq, lastID
			}
			t.mu.Unlock()
		}

		id = p.ids.NextAfter(lastID)
		at = p.now().UTC().Truncate(time.Millisecond)
		nm := &nats.Msg{Subject: subject, Data: encode(id, at), Header: nats.Header{}}
		nm.Header.Set(chat.HdrKind, string(kind))
		nm.Header.Set(chat.HdrMsgID, id.String())
		nm.Header.Set(chat.HdrSender, sender.String())
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(lastSeq)}
		if msgID != "" {
			opts = append(opts, jetstream.WithMsgID(msgID))
		}
		ack, perr := p.js.PublishMsg(ctx, nm, opts...)
		if perr != nil {
			if isWrongLastSeq(perr) {
				t.mu.Lock()
				t.known = false
				t.mu.Unlock()
				// Back off a random while, growing, so that gateways racing
				// for one busy conversation take turns instead of colliding.
				if err := sleepCtx(ctx, time.Duration(rand.Int64N(int64(attempt+1)*int64(200*time.Microsecond)))); err != nil {
					return 0, time.Time{}, 0, err
				}
				continue
			}
			return 0, time.Time{}, 0, fmt.Errorf("router: publish: %w", perr)
		}
		if ack.Duplicate {
			return 0, time.Time{}, ack.Sequence, nil
		}
		t.mu.Lock()
		if ack.Sequence > t.lastSeq {
			t.known, t.lastSeq, t.lastID = true, ack.Sequence, id
		}
		t.mu.Unlock()
		return id, at, 0, nil
	}
	return 0, time.Time{}, 0, ErrConflict
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("router: publish: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Newest returns the ID of conv's newest message in the stream, 0 when the
// stream holds none of it (none sent, or all past the stream's MaxAge).
// Every acked message is in the stream, even one the store has not written
// yet, so this is the newest a client can know of. A tail this gateway
// already knows answers when it is at least atLeast; otherwise the stream
// is asked (and the tail refreshed).
func (p *Publisher) Newest(ctx context.Context, conv string, atLeast chat.ID) (chat.ID, error) {
	p.mu.Lock()
	t := p.convs[conv]
	p.mu.Unlock()
	if t != nil {
		t.mu.Lock()
		known, id := t.known, t.lastID
		t.mu.Unlock()
		if known && id != 0 && id >= atLeast {
			return id, nil
		}
	}
	seq, id, err := p.loadTail(ctx, chat.MsgSubject(conv))
	if err != nil {
		return 0, err
	}
	if t != nil {
		t.mu.Lock()
		if seq > t.lastSeq {
			t.known, t.lastSeq, t.lastID = true, seq, id
		}
		t.mu.Unlock()
	}
	return id, nil
}

// loadTail asks the stream for a conversation's newest message.
func (p *Publisher) loadTail(ctx context.Context, subject string) (uint64, chat.ID, error) {
	raw, err := p.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("router: last message of %s: %w", subject, err)
	}
	id, err := chat.ParseID(raw.Header.Get(chat.HdrMsgID))
	if err != nil {
		var m chat.Message
		if jerr := json.Unmarshal(raw.Data, &m); jerr != nil {
			return 0, 0, fmt.Errorf("router: last message of %s: %w", subject, jerr)
		}
		id = m.ID
	}
	return raw.Sequence, id, nil
}

// original fetches the record a duplicate publish refers to into v.
func (p *Publisher) original(ctx context.Context, seq uint64, v any) error {
	raw, err := p.stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("router: original of duplicate at %d: %w", seq, err)
	}
	if err := json.Unmarshal(raw.Data, v); err != nil {
		return fmt.Errorf("router: original of duplicate at %d: %w", seq, err)
	}
	return nil
}

func parseSeq(h nats.Header, key string) uint64 {
	v, _ := strconv.ParseUint(h.Get(key), 10, 64)
	return v
}
