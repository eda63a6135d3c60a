package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// handler answers one op of the request/reply API: data is the request's
// JSON, the result is encoded as the reply.
type handler func(ctx context.Context, data []byte) (any, error)

// handle makes a handler of fn, which takes its op's request type: the
// decoding (a body that is not that JSON is ErrInvalid) lives here once, so a
// handler starts from a typed request and only checks what its op needs.
func handle[Req any](fn func(context.Context, Req) (any, error)) handler {
	return func(ctx context.Context, data []byte) (any, error) {
		var req Req
		if err := decode(data, &req); err != nil {
			return nil, err
		}
		return fn(ctx, req)
	}
}

// handlers is the table of ops: a new op is one request type, one method
// and one line here.
func (s *Service) handlers() map[string]handler {
	return map[string]handler{
		storeclient.OpSignup:        handle(s.signup),
		storeclient.OpAccount:       handle(s.account),
		storeclient.OpLogin:         handle(s.login),
		storeclient.OpUsers:         handle(s.users),
		storeclient.OpSearch:        handle(s.search),
		storeclient.OpDirect:        handle(s.direct),
		storeclient.OpGroup:         handle(s.group),
		storeclient.OpAddMembers:    handle(s.addMembers),
		storeclient.OpConversation:  handle(s.conversation),
		storeclient.OpConversations: handle(s.conversations),
		storeclient.OpHistory:       handle(s.history),
		storeclient.OpRead:          handle(s.read),
		storeclient.OpMessage:       handle(s.message),
		storeclient.OpChanges:       handle(s.changes),
		storeclient.OpPutDevice:     handle(s.putDevice),
		storeclient.OpDevices:       handle(s.devices),
		storeclient.OpDeleteDevice:  handle(s.deleteDevice),
		storeclient.OpMute:          handle(s.mute),
		storeclient.OpMemberStates:  handle(s.memberStates),

		storeclient.OpSessionCreate:  handle(s.sessionCreate),
		storeclient.OpSessionRefresh: handle(s.sessionRefresh),
		storeclient.OpSessions:       handle(s.sessions),
		storeclient.OpSessionEnd:     handle(s.sessionEnd),
		storeclient.OpSessionsEnd:    handle(s.sessionsEnd),
		storeclient.OpPassword:       handle(s.password),
		storeclient.OpMembers:        handle(s.members),
		storeclient.OpMembership:     handle(s.membership),
		storeclient.OpLeave:          handle(s.leave),
		storeclient.OpAddPolicy:      handle(s.addPolicy),
		storeclient.OpSetAddPolicy:   handle(s.setAddPolicy),
		storeclient.OpBlock:          handle(s.block),
		storeclient.OpBlocks:         handle(s.blockedList),
	}
}

// serve answers one API request.
func (s *Service) serve(ctx context.Context, m *nats.Msg) {
	op := strings.TrimPrefix(m.Subject, chat.StoreSubjectPrefix)
	h, known := s.ops[op]
	label := op
	if !known {
		label = "unknown" // keeps the label set bounded
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()

	var body []byte
	var err error
	if !known {
		err = fmt.Errorf("%w: unknown op %q", chat.ErrInvalid, op)
	} else {
		var resp any
		if resp, err = h(ctx, m.Data); err == nil {
			body, err = chat.Marshal(resp)
		}
	}
	result := "ok"
	if err != nil {
		if storeclient.ErrorCode(err) == storeclient.CodeInternal &&
			(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			err = fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
		}
		result = storeclient.ErrorCode(err)
		if result == storeclient.CodeInternal || result == storeclient.CodeUnavailable {
			s.log.Warn("store request failed", zap.String("op", label), zap.Error(err))
		}
		body = storeclient.EncodeError(err)
	}
	s.m.requests.WithLabelValues(label, result).Inc()
	if m.Reply == "" {
		return
	}
	if err := m.Respond(body); err != nil {
		s.log.Debug("store reply failed", zap.String("op", label), zap.Error(err))
	}
}

// now is the time of new rows: UTC, at the millisecond precision every time
// of the protocol has, so a row reads back as it was answered.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: request: %v", chat.ErrInvalid, err)
	}
	return nil
}

// notify tells every member that c was created or its members changed.
// Core NATS: a gateway that misses it (disconnected) learns the change from
// the next conversation list.
func (s *Service) notify(c chat.Conversation) {
	// A big group's event carries its member count, not its members: each
	// of N members gets it, so a member list in it would cost N² bytes.
	l := listed(c)
	body, err := json.Marshal(storeclient.UserEvent{Type: storeclient.EventConversation, Conversation: &l})
	if err != nil {
		s.log.Error("encode conversation event", zap.Error(err))
		return
	}
	for _, u := range c.Members {
		if err := s.nc.Publish(chat.UserSubject(u), body); err != nil {
			s.log.Warn("publish conversation event", zap.String("conversation", c.ID), zap.Error(err))
			return
		}
	}
}
