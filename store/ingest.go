package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

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
	s.consuming.Store(true)
	return newPipeline(s, cons).run(stop, work)
}

// write saves msgs (delivered as ms) and acks them: each conversation's
// messages as soon as the backend reports them stored (ReportingSaver),
// not after the slowest conversation of the batch, and never before.
func (s *Service) write(work context.Context, msgs []chat.Message, ms []jetstream.Msg) {
	w := newAcker(msgs, ms)
	err := s.save(work, w)
	pend := w.pending()
	switch {
	case err == nil:
	case errors.Is(err, chat.ErrInvalid) && len(pend) > 1:
		// The backend refused one of them; find it, so that one bad
		// message does not block the stream.
		for _, i := range pend {
			s.write(work, msgs[i:i+1], ms[i:i+1])
		}
		return
	case errors.Is(err, chat.ErrInvalid) && len(pend) == 1:
		s.terminate(ms[pend[0]], err)
		return
	case errors.Is(err, chat.ErrInvalid):
		return // every message was stored after all
	default:
		s.saveOK.Store(false)
		s.log.Error("store write failed; messages left for redelivery",
			zap.Int("messages", len(pend)), zap.Error(err))
		for _, i := range pend {
			_ = ms[i].NakWithDelay(s.cfg.RedeliverDelay)
		}
		return
	}
	s.saveOK.Store(true)
	s.m.written.Add(float64(len(msgs)))
	s.m.batchSize.Observe(float64(len(msgs)))
	w.ackAll(pend)
	if err := w.ackErr(); err != nil {
		// Written but not acked: JetStream redelivers, the write is idempotent.
		s.log.Warn("ack failed", zap.Error(err))
	}
	s.pokeFloor()
}

func (s *Service) pokeFloor() {
	if s.floor.waiting() {
		s.floor.poke()
	}
}

// acker acks a batch's messages by conversation as the backend reports
// them stored, from the backend's goroutines.
type acker struct {
	msgs   []chat.Message
	ms     []jetstream.Msg
	byConv map[string][]int

	mu       sync.Mutex
	acked    []bool
	firstErr error
}

func newAcker(msgs []chat.Message, ms []jetstream.Msg) *acker {
	w := &acker{msgs: msgs, ms: ms, byConv: map[string][]int{}, acked: make([]bool, len(msgs))}
	for i, m := range msgs {
		w.byConv[m.Conversation] = append(w.byConv[m.Conversation], i)
	}
	return w
}

// stored acks conv's messages.
func (w *acker) stored(conv string) { w.ackAll(w.byConv[conv]) }

func (w *acker) ackAll(idx []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, i := range idx {
		if w.acked[i] {
			continue
		}
		w.acked[i] = true
		if err := w.ms[i].Ack(); err != nil && w.firstErr == nil {
			w.firstErr = err
		}
	}
}

// pending lists the messages not acked yet.
func (w *acker) pending() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for i, a := range w.acked {
		if !a {
			out = append(out, i)
		}
	}
	return out
}

func (w *acker) ackErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstErr
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
//
// Each attempt writes only the messages not acked yet: a conversation
// reported stored by an attempt that then failed elsewhere is not written
// again.
func (s *Service) save(work context.Context, w *acker) error {
	backoff := s.cfg.RetryBackoff
	stored := func(conv string) {
		w.stored(conv)
		s.pokeFloor()
	}
	for attempt := 1; ; attempt++ {
		pend := w.pending()
		if len(pend) == 0 {
			return nil
		}
		msgs := w.msgs
		if len(pend) < len(w.msgs) {
			msgs = make([]chat.Message, len(pend))
			for k, i := range pend {
				msgs[k] = w.msgs[i]
			}
		}
		ctx, cancel := context.WithTimeout(work, s.cfg.SaveTimeout)
		err := saveReporting(ctx, s.b, msgs, stored)
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
		for _, i := range w.pending() {
			_ = w.ms[i].InProgress()
		}
	}
}
