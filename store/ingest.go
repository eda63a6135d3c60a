package store

import (
	"context"
	"errors"
	"fmt"

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
