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

// Publish stores m (Conversation, Sender, Body, ClientID set) in the stream
// and returns it as stored, with its ID and time. When the same sender has
// already sent the same ClientID to the conversation within the
// deduplication window it returns that first message instead; dup says so.
func (p *Publisher) Publish(ctx context.Context, m chat.Message) (stored chat.Message, dup bool, err error) {
	t := p.tail(m.Conversation)
	t.pub.Lock()
	defer t.pub.Unlock()

	subject := chat.MsgSubject(m.Conversation)
	msgID := chat.MsgIDHeader(m.Conversation, m.Sender, m.ClientID)
	buf := make([]byte, 0, 160+len(m.Body))
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		t.mu.Lock()
		known, lastSeq, lastID := t.known, t.lastSeq, t.lastID
		t.used = p.now()
		t.mu.Unlock()
		if !known {
			if lastSeq, lastID, err = p.loadTail(ctx, subject); err != nil {
				return chat.Message{}, false, err
			}
			t.mu.Lock()
			if lastSeq >= t.lastSeq {
				t.known, t.lastSeq, t.lastID = true, lastSeq, lastID
			}
			t.mu.Unlock()
		}

		m.ID = p.ids.NextAfter(lastID)
		m.SentAt = p.now().UTC().Truncate(time.Millisecond)
		buf = m.AppendJSON(buf[:0])
		nm := &nats.Msg{Subject: subject, Data: buf, Header: nats.Header{}}
		nm.Header.Set(chat.HdrKind, string(chat.EventMessage))
		nm.Header.Set(chat.HdrMsgID, m.ID.String())
		nm.Header.Set(chat.HdrSender, m.Sender.String())
		ack, perr := p.js.PublishMsg(ctx, nm,
			jetstream.WithMsgID(msgID),
			jetstream.WithExpectLastSequencePerSubject(lastSeq))
		if perr != nil {
			if isWrongLastSeq(perr) {
				t.mu.Lock()
				t.known = false
				t.mu.Unlock()
				// Back off a random while, growing, so that gateways racing
				// for one busy conversation take turns instead of colliding.
				if err := sleepCtx(ctx, time.Duration(rand.Int64N(int64(attempt+1)*int64(200*time.Microsecond)))); err != nil {
					return chat.Message{}, false, err
				}
				continue
			}
			return chat.Message{}, false, fmt.Errorf("router: publish: %w", perr)
		}
		if ack.Duplicate {
			orig, gerr := p.original(ctx, ack.Sequence)
			return orig, true, gerr
		}
		t.mu.Lock()
		if ack.Sequence > t.lastSeq {
			t.known, t.lastSeq, t.lastID = true, ack.Sequence, m.ID
		}
		t.mu.Unlock()
		return m, false, nil
	}
	return chat.Message{}, false, ErrConflict
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

// original fetches the message a duplicate send refers to.
func (p *Publisher) original(ctx context.Context, seq uint64) (chat.Message, error) {
	raw, err := p.stream.GetMsg(ctx, seq)
	if err != nil {
		return chat.Message{}, fmt.Errorf("router: original of duplicate at %d: %w", seq, err)
	}
	var m chat.Message
	if err := json.Unmarshal(raw.Data, &m); err != nil {
		return chat.Message{}, fmt.Errorf("router: original of duplicate at %d: %w", seq, err)
	}
	return m, nil
}

func parseSeq(h nats.Header, key string) uint64 {
	v, _ := strconv.ParseUint(h.Get(key), 10, 64)
	return v
}
