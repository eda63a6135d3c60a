package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Edits, deletions and reactions: the writer of their stream records and
// the two ops that read what they did.

// writeChanges is the writer of chat.EventEdit, EventDelete and EventReact
// records: it applies them (the backend makes order and replays harmless)
// and settles each as writeMessages does: acked once applied, terminated
// when invalid, handed back when the backend failed.
func (s *Service) writeChanges(work context.Context, ms []jetstream.Msg) {
	cs := make([]chat.Change, 0, len(ms))
	keep := make([]jetstream.Msg, 0, len(ms))
	for _, m := range ms {
		c, err := s.decodeStreamChange(m)
		if err != nil {
			s.terminate(m, err)
			continue
		}
		cs = append(cs, c)
		keep = append(keep, m)
	}
	if len(cs) > 0 {
		s.applyChanges(work, cs, keep)
	}
}

func (s *Service) applyChanges(work context.Context, cs []chat.Change, ms []jetstream.Msg) {
	err := s.retry(work, ms, func(ctx context.Context) error { return s.b.ApplyChanges(ctx, cs) })
	switch {
	case errors.Is(err, chat.ErrInvalid) && len(cs) > 1:
		for i := range cs {
			s.applyChanges(work, cs[i:i+1], ms[i:i+1])
		}
		return
	case errors.Is(err, chat.ErrInvalid):
		s.terminate(ms[0], err)
		return
	case err != nil:
		s.saveOK.Store(false)
		s.log.Error("applying changes failed; left for redelivery", zap.Int("changes", len(cs)), zap.Error(err))
		for _, m := range ms {
			_ = m.NakWithDelay(s.cfg.RedeliverDelay)
		}
		return
	}
	s.saveOK.Store(true)
	s.m.written.Add(float64(len(cs)))
	for _, m := range ms {
		if err := m.Ack(); err != nil {
			s.log.Warn("ack failed", zap.Error(err)) // redelivered; applying is idempotent
			break
		}
	}
	if s.floor.waiting() {
		s.floor.poke()
	}
}

// retry runs write with the bounded retries and backoff of message writes,
// keeping the records' ack deadlines pushed back meanwhile.
func (s *Service) retry(work context.Context, ms []jetstream.Msg, write func(context.Context) error) error {
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(work, s.cfg.SaveTimeout)
		err := write(ctx)
		cancel()
		if err == nil || errors.Is(err, chat.ErrInvalid) {
			return err
		}
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

// decodeStreamChange decodes a change record and checks it against its
// subject and header.
func (s *Service) decodeStreamChange(m jetstream.Msg) (chat.Change, error) {
	var c chat.Change
	if err := json.Unmarshal(m.Data(), &c); err != nil {
		return chat.Change{}, err
	}
	conv := strings.TrimPrefix(m.Subject(), s.msgPrefix)
	switch {
	case c.Kind != chat.RecordKind(m.Headers().Get(chat.HdrKind)):
		return chat.Change{}, fmt.Errorf("change of kind %q under header %q", c.Kind, m.Headers().Get(chat.HdrKind))
	case c.Conversation != conv || !chat.ValidConversationID(conv):
		return chat.Change{}, fmt.Errorf("change in %q on subject %q", c.Conversation, m.Subject())
	case c.User == 0:
		return chat.Change{}, errors.New("change without a user")
	}
	c.Message = nil // never part of a record
	return c, nil
}

// message answers one message, read-your-writes: a gateway checks an edit,
// deletion or reaction against it, so it must include every change the
// stream already holds.
func (s *Service) message(ctx context.Context, req storeclient.MessageRequest) (any, error) {
	if !chat.ValidConversationID(req.Conversation) || req.ID == 0 {
		return nil, fmt.Errorf("%w: message %d in %q", chat.ErrInvalid, req.ID, req.Conversation)
	}
	if err := s.awaitStored(ctx, req.Conversation); err != nil {
		return nil, err
	}
	m, err := s.b.Message(ctx, req.Conversation, req.ID, req.Viewer)
	if err != nil {
		return nil, err
	}
	return storeclient.MessageResponse{Message: m}, nil
}

// changes answers a page of the change log, read-your-writes as history.
func (s *Service) changes(ctx context.Context, req storeclient.ChangesRequest) (any, error) {
	if !chat.ValidConversationID(req.Conversation) || req.Limit < 0 {
		return nil, fmt.Errorf("%w: changes of %q, limit %d", chat.ErrInvalid, req.Conversation, req.Limit)
	}
	p := chat.Page{After: max(req.After, 1), Limit: req.Limit, Viewer: req.Viewer}
	if p.Limit == 0 {
		p.Limit = defaultHistoryLimit
	}
	p.Limit = min(p.Limit, maxHistoryLimit)
	if err := s.awaitStored(ctx, req.Conversation); err != nil {
		return nil, err
	}
	cs, more, err := s.b.Changes(ctx, req.Conversation, p)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		cs = []chat.Change{}
	}
	return storeclient.ChangesResponse{Changes: cs, More: more}, nil
}
