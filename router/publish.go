package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
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
	ids    IDSource
	now    func() time.Time

	mu    sync.Mutex
	convs map[string]*convTail
}

// convTail is what this gateway knows of a conversation's newest message,
// and its publishes waiting for their turn.
type convTail struct {
	mu      sync.Mutex
	known   bool
	lastSeq uint64
	lastID  chat.ID
	lastNum chat.Number // the newest record's number: the next message's is lastNum.Next
	used    time.Time
	// One publish to the conversation at a time from this gateway: busy
	// while one is on the way; sends that arrive meanwhile wait in queue
	// and go together, as one atomic batch, when it is done.
	busy  bool
	queue []*pubReq
}

// pubReq is one record waiting to be published.
type pubReq struct {
	kind   chat.EventKind
	sender chat.ID
	msgID  string
	encode func(id chat.ID, at time.Time) []byte
	// done receives the outcome, or lead: the request is first in line
	// and publishes the next batch itself.
	done chan pubResult
}

type pubResult struct {
	lead   bool
	id     chat.ID
	at     time.Time
	dupSeq uint64
	err    error
}

// IDSource makes message IDs, or refuses (an error) when it cannot make
// them unique now. *NodeIDs is the one processes use.
type IDSource interface {
	NextAfter(floor chat.ID) (chat.ID, error)
}

// fixedNode makes IDs with a node number held for good (tests, tools).
type fixedNode struct{ g *chat.Generator }

func (f fixedNode) NextAfter(floor chat.ID) (chat.ID, error) { return f.g.NextAfter(floor), nil }

// NewPublisher returns a publisher that takes IDs from ids, a node number
// that nobody else uses.
func NewPublisher(js jetstream.JetStream, stream jetstream.Stream, ids *chat.Generator) *Publisher {
	return NewPublisherFrom(js, stream, fixedNode{ids})
}

// NewPublisherFrom returns a publisher that takes IDs from ids: with
// NodeIDs, a send fails (chat.ErrUnavailable) while no node-ID lease is
// certainly held.
func NewPublisherFrom(js jetstream.JetStream, stream jetstream.Stream, ids IDSource) *Publisher {
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

// Observe records a stored record seen on the fan-out subscription (its
// sequence, ID and number), so the next publish to its conversation rarely
// conflicts.
func (p *Publisher) Observe(conv string, seq uint64, id chat.ID, num chat.Number) {
	p.mu.Lock()
	t := p.convs[conv]
	p.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	if seq > t.lastSeq {
		t.known, t.lastSeq, t.lastID, t.lastNum = true, seq, id, num
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
		t.mu.Lock()
		idle := !t.busy && len(t.queue) == 0
		t.mu.Unlock()
		if old && idle {
			delete(p.convs, c)
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
//
// This gateway has one publish to a conversation on the way at a time;
// records that arrive meanwhile are published together next, as one atomic
// batch whose first message carries the expected sequence: one JetStream
// round trip for all of them, IDs still in stream order. The caller whose
// record is first in line publishes the batch; the others wait for it.
func (p *Publisher) publish(ctx context.Context, conv string, kind chat.EventKind, sender chat.ID, msgID string,
	encode func(id chat.ID, at time.Time) []byte) (id chat.ID, at time.Time, dupSeq uint64, err error) {
	t := p.tail(conv)
	req := &pubReq{kind: kind, sender: sender, msgID: msgID, encode: encode, done: make(chan pubResult, 1)}
	t.mu.Lock()
	t.used = p.now()
	t.queue = append(t.queue, req)
	lead := !t.busy
	if lead {
		t.busy = true
	}
	t.mu.Unlock()
	if !lead {
		var r pubResult
		select {
		case r = <-req.done:
		case <-ctx.Done():
			if t.withdraw(req) {
				return 0, time.Time{}, 0, fmt.Errorf("router: publish: %w", ctx.Err())
			}
			// Already in a batch on the way, or handed the turn to lead
			// the next one, which others wait for: see it through.
			r = <-req.done
		}
		if !r.lead {
			return r.id, r.at, r.dupSeq, r.err
		}
	}
	p.lead(ctx, conv, t)
	r := <-req.done
	return r.id, r.at, r.dupSeq, r.err
}

// withdraw takes req out of the queue if no batch has taken it and it has
// not been handed the turn; it reports whether it did.
func (t *convTail) withdraw(req *pubReq) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(req.done) > 0 {
		return false // handed the turn (sent under t.mu)
	}
	i := slices.Index(t.queue, req)
	if i < 0 {
		return false // in a batch on the way
	}
	t.queue = slices.Delete(t.queue, i, i+1)
	return true
}

// maxBatch bounds the records of one atomic batch (JetStream's own limit
// is larger).
const maxBatch = 100

// lead publishes the batch at the head of t's queue, then passes the turn
// to the next record in line, if any.
func (p *Publisher) lead(ctx context.Context, conv string, t *convTail) {
	t.mu.Lock()
	n := min(len(t.queue), maxBatch)
	batch := append([]*pubReq(nil), t.queue[:n]...)
	t.queue = append(t.queue[:0], t.queue[n:]...)
	t.mu.Unlock()

	// Others' records ride on this call: a caller that gives up must not
	// cancel them.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	results := p.publishBatch(bctx, conv, t, batch)
	cancel()
	for i, r := range results {
		batch[i].done <- r
	}

	t.mu.Lock()
	if len(t.queue) > 0 {
		t.queue[0].done <- pubResult{lead: true}
	} else {
		t.busy = false
	}
	t.mu.Unlock()
}

// publishBatch publishes the records in order and returns each one's
// outcome.
func (p *Publisher) publishBatch(ctx context.Context, conv string, t *convTail, batch []*pubReq) []pubResult {
	results := make([]pubResult, len(batch))
	if len(batch) > 1 {
		err := p.publishAtomic(ctx, conv, t, batch, results)
		if err == nil {
			return results
		}
		if !errors.Is(err, errBatchRefused) {
			for i := range results {
				results[i] = pubResult{err: err}
			}
			return results
		}
		// A resend inside the batch (a duplicate fails it whole), or
		// batches refused: one at a time, which answers duplicates too.
	}
	for i, r := range batch {
		id, at, dupSeq, err := p.publishOne(ctx, conv, t, r)
		results[i] = pubResult{id: id, at: at, dupSeq: dupSeq, err: err}
	}
	return results
}

// errBatchRefused: JetStream would not take the records as one batch.
var errBatchRefused = errors.New("router: atomic batch refused")

// currentTail returns what is known of t's newest record, asking the
// stream when nothing is.
func (p *Publisher) currentTail(ctx context.Context, conv string, t *convTail) (uint64, chat.ID, chat.Number, error) {
	t.mu.Lock()
	known, lastSeq, lastID, lastNum := t.known, t.lastSeq, t.lastID, t.lastNum
	t.mu.Unlock()
	if known {
		return lastSeq, lastID, lastNum, nil
	}
	lastSeq, lastID, lastNum, err := p.loadTail(ctx, chat.MsgSubject(conv))
	if err != nil {
		return 0, 0, chat.Number{}, err
	}
	t.mu.Lock()
	if lastSeq >= t.lastSeq {
		t.known, t.lastSeq, t.lastID, t.lastNum = true, lastSeq, lastID, lastNum
	}
	t.mu.Unlock()
	return lastSeq, lastID, lastNum, nil
}

// conflicted forgets t's tail after another gateway got in first and
// waits a random while, growing, so that gateways racing for one busy
// conversation take turns instead of colliding.
func (p *Publisher) conflicted(ctx context.Context, t *convTail, attempt int) error {
	t.mu.Lock()
	t.known = false
	t.mu.Unlock()
	return sleepCtx(ctx, time.Duration(rand.Int64N(int64(attempt+1)*int64(200*time.Microsecond))))
}

func (p *Publisher) stored(t *convTail, seq uint64, id chat.ID, num chat.Number) {
	t.mu.Lock()
	if seq > t.lastSeq {
		t.known, t.lastSeq, t.lastID, t.lastNum = true, seq, id, num
	}
	t.mu.Unlock()
}

// record builds the NATS message of one record that follows a record
// numbered last, and returns the number it carries: a message's is the
// next, other records carry last unchanged.
func (p *Publisher) record(subject string, r *pubReq, id chat.ID, at time.Time, last chat.Number) (*nats.Msg, chat.Number) {
	nm := &nats.Msg{Subject: subject, Data: r.encode(id, at), Header: nats.Header{}}
	nm.Header.Set(chat.HdrKind, string(r.kind))
	nm.Header.Set(chat.HdrMsgID, id.String())
	nm.Header.Set(chat.HdrSender, r.sender.String())
	num := last
	if r.kind == chat.EventMessage {
		num = last.Next(id)
	}
	if num.Numbered() {
		nm.Header.Set(chat.HdrNum, strconv.FormatUint(num.N, 10))
		nm.Header.Set(chat.HdrNumBase, num.Base.String())
	}
	return nm, num
}

// publishOne publishes one record on its own.
func (p *Publisher) publishOne(ctx context.Context, conv string, t *convTail, r *pubReq) (id chat.ID, at time.Time, dupSeq uint64, err error) {
	subject := chat.MsgSubject(conv)
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		lastSeq, lastID, lastNum, err := p.currentTail(ctx, conv, t)
		if err != nil {
			return 0, time.Time{}, 0, err
		}
		if id, err = p.ids.NextAfter(lastID); err != nil {
			return 0, time.Time{}, 0, fmt.Errorf("router: publish: %w", err)
		}
		at = p.now().UTC().Truncate(time.Millisecond)
		nm, num := p.record(subject, r, id, at, lastNum)
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(lastSeq)}
		if r.msgID != "" {
			opts = append(opts, jetstream.WithMsgID(r.msgID))
		}
		ack, perr := p.js.PublishMsg(ctx, nm, opts...)
		if perr != nil {
			if isWrongLastSeq(perr) {
				if err := p.conflicted(ctx, t, attempt); err != nil {
					return 0, time.Time{}, 0, err
				}
				continue
			}
			return 0, time.Time{}, 0, fmt.Errorf("router: publish: %w", perr)
		}
		if ack.Duplicate {
			return 0, time.Time{}, ack.Sequence, nil
		}
		p.stored(t, ack.Sequence, id, num)
		return id, at, 0, nil
	}
	return 0, time.Time{}, 0, ErrConflict
}

// publishAtomic publishes the records as one JetStream atomic batch: all
// stored, contiguous and in order, or none. The first carries the expected
// last sequence of the subject, so a batch is refused whole when another
// gateway got in first, and is then built again above the new tail.
func (p *Publisher) publishAtomic(ctx context.Context, conv string, t *convTail, batch []*pubReq, results []pubResult) error {
	subject := chat.MsgSubject(conv)
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		lastSeq, lastID, lastNum, err := p.currentTail(ctx, conv, t)
		if err != nil {
			return err
		}
		batchID := nuid.Next()
		var commit *nats.Msg
		prev, num := lastID, lastNum
		for i, r := range batch {
			id, err := p.ids.NextAfter(prev)
			if err != nil {
				return fmt.Errorf("router: publish: %w", err)
			}
			at := p.now().UTC().Truncate(time.Millisecond)
			prev = id
			results[i] = pubResult{id: id, at: at}
			var nm *nats.Msg
			nm, num = p.record(subject, r, id, at, num)
			nm.Header.Set(hdrBatchID, batchID)
			nm.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
			if r.msgID != "" {
				nm.Header.Set(jetstream.MsgIDHeader, r.msgID)
			}
			if i == 0 {
				nm.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(lastSeq, 10))
			}
			if i == len(batch)-1 {
				nm.Header.Set(hdrBatchCommit, "1")
				commit = nm
				break
			}
			if err := p.js.Conn().PublishMsg(nm); err != nil {
				return fmt.Errorf("router: publish: %w", err)
			}
		}
		ack, perr := p.js.PublishMsg(ctx, commit)
		if perr != nil {
			switch {
			case isWrongLastSeq(perr):
				if err := p.conflicted(ctx, t, attempt); err != nil {
					return err
				}
				continue
			case isBatchRefusal(perr):
				return errBatchRefused
			}
			return fmt.Errorf("router: publish: %w", perr)
		}
		p.stored(t, ack.Sequence, prev, num)
		return nil
	}
	return ErrConflict
}

// The headers of JetStream's atomic batch publish (NATS 2.12 and later).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// isBatchRefusal reports a batch JetStream would not take as one, though
// its records one at a time may be fine: it holds a duplicate (a resend),
// or batching is off or at its limit.
func isBatchRefusal(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10201, // atomic publish batch contains duplicate message id
		10174, // atomic publish is disabled
		10210, // too many inflight
		10176, // batch is incomplete
		10199: // batch is too large
		return true
	}
	return false
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
	seq, id, num, err := p.loadTail(ctx, chat.MsgSubject(conv))
	if err != nil {
		return 0, err
	}
	if t != nil {
		t.mu.Lock()
		if seq > t.lastSeq {
			t.known, t.lastSeq, t.lastID, t.lastNum = true, seq, id, num
		}
		t.mu.Unlock()
	}
	return id, nil
}

// loadTail asks the stream for a conversation's newest record: its
// sequence, ID and number. A record without a (well-formed) number, or none
// at all (every record of the conversation aged out of the stream), makes
// the next message start a new run of numbers.
func (p *Publisher) loadTail(ctx context.Context, subject string) (uint64, chat.ID, chat.Number, error) {
	raw, err := p.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, chat.Number{}, nil
	}
	if err != nil {
		return 0, 0, chat.Number{}, fmt.Errorf("router: last message of %s: %w", subject, err)
	}
	id, err := chat.ParseID(raw.Header.Get(chat.HdrMsgID))
	if err != nil {
		var m chat.Message
		if jerr := json.Unmarshal(raw.Data, &m); jerr != nil {
			return 0, 0, chat.Number{}, fmt.Errorf("router: last message of %s: %w", subject, jerr)
		}
		id = m.ID
	}
	num, _ := chat.ParseNumber(raw.Header.Get(chat.HdrNum), raw.Header.Get(chat.HdrNumBase))
	return raw.Sequence, id, num, nil
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
