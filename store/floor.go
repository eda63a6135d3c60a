package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

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
