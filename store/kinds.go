package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/chatcluster/chat"
	"github.com/nats-io/nats.go/jetstream"
)

// recordWriter writes a batch of stream records of one kind, all delivered
// by the consumer, and settles each of them: acked once written, terminated
// when invalid, handed back to JetStream when the write failed.
type recordWriter func(work context.Context, ms []jetstream.Msg)

// recordKinds is the table of what the store does with each kind of stream
// record (chat.EventKind, from the chat.HdrKind header). A new kind (an
// edit, a delete, a reaction) is one payload type, one writer and one line
// here; a kind missing here is terminated as a poison message.
func (s *Service) recordKinds() map[chat.EventKind]recordWriter {
	return map[chat.EventKind]recordWriter{
		chat.EventMessage: s.writeMessages,
		chat.EventEdit:    s.writeChanges,
		chat.EventDelete:  s.writeChanges,
		chat.EventReact:   s.writeChanges,
	}
}

// dispatch hands each record of batch to the writer of its kind, in batch
// order per kind.
func (s *Service) dispatch(work context.Context, batch []jetstream.Msg) {
	s.m.consumed.Add(float64(len(batch)))
	if len(batch) == 0 {
		return
	}
	first := chat.RecordKind(batch[0].Headers().Get(chat.HdrKind))
	same := true
	for _, m := range batch[1:] {
		if chat.RecordKind(m.Headers().Get(chat.HdrKind)) != first {
			same = false
			break
		}
	}
	if same { // the common case: no grouping to allocate
		s.writeKind(work, first, batch)
		return
	}
	var order []chat.EventKind
	groups := make(map[chat.EventKind][]jetstream.Msg)
	for _, m := range batch {
		k := chat.RecordKind(m.Headers().Get(chat.HdrKind))
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	for _, k := range order {
		s.writeKind(work, k, groups[k])
	}
}

func (s *Service) writeKind(work context.Context, k chat.EventKind, ms []jetstream.Msg) {
	w, ok := s.kinds[k]
	if !ok {
		// Written by a newer publisher than this store knows, or garbage:
		// either way nothing here can write it, and keeping it would block
		// the consumer. Counted apart from invalid payloads so that a
		// rollout in the wrong order shows on a dashboard.
		s.m.unknownKind.Add(float64(len(ms)))
		for _, m := range ms {
			s.terminate(m, fmt.Errorf("%w: unknown record kind %q", chat.ErrInvalid, k))
		}
		return
	}
	w(work, ms)
}

// writeMessages is the writer of EventMessage records.
func (s *Service) writeMessages(work context.Context, ms []jetstream.Msg) {
	msgs := make([]chat.Message, 0, len(ms))
	keep := make([]jetstream.Msg, 0, len(ms))
	for _, m := range ms {
		msg, err := s.decodeStreamMessage(m)
		if err != nil {
			s.terminate(m, err)
			continue
		}
		msgs = append(msgs, msg)
		keep = append(keep, m)
	}
	if len(msgs) > 0 {
		s.write(work, msgs, keep)
	}
}

// decodeStreamMessage decodes a message of the stream and checks that it
// names itself consistently with its subject.
func (s *Service) decodeStreamMessage(m jetstream.Msg) (chat.Message, error) {
	var msg chat.Message
	if err := json.Unmarshal(m.Data(), &msg); err != nil {
		return chat.Message{}, err
	}
	conv := strings.TrimPrefix(m.Subject(), s.msgPrefix)
	switch {
	case msg.ID == 0:
		return chat.Message{}, errors.New("message without id")
	case msg.Sender == 0:
		return chat.Message{}, errors.New("message without sender")
	case msg.Conversation != conv:
		return chat.Message{}, fmt.Errorf("conversation %q on subject %q", msg.Conversation, m.Subject())
	case !chat.ValidConversationID(conv):
		return chat.Message{}, fmt.Errorf("invalid conversation %q", conv)
	}
	// A malformed number costs the message only its number (it is then
	// counted as one published before numbering), not its place in history.
	msg.Number, _ = chat.ParseNumber(m.Headers().Get(chat.HdrNum), m.Headers().Get(chat.HdrNumBase))
	return msg, nil
}
