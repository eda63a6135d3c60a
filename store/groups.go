package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
	"go.uber.org/zap"
)

// Big groups: conversations leave the store with their members only when
// they have at most chat.MaxInlineMembers; bigger ones carry MemberCount and
// their members are paged (OpMembers). Every list and page is bounded in
// bytes (chat.MaxPageBytes) as well as in count.

const (
	// defaultMembersLimit and the page's bound (chat.MaxMembersPage).
	defaultMembersLimit = 100
)

// listed is c as the store answers with it: MemberCount set, Members only
// for a small conversation.
func listed(c chat.Conversation) chat.Conversation {
	if c.Members != nil || c.MemberCount == 0 {
		c.MemberCount = len(c.Members)
	}
	if !c.Inline() {
		c.Members = nil
	}
	return c
}

func (s *Service) conversationPage(ctx context.Context, req storeclient.ConversationsRequest) (any, error) {
	if req.User == 0 {
		return nil, fmt.Errorf("%w: user id 0", chat.ErrInvalid)
	}
	if req.Limit < 0 {
		return nil, fmt.Errorf("%w: limit %d", chat.ErrInvalid, req.Limit)
	}
	if (req.AfterConversation == "") != req.AfterActivity.IsZero() ||
		(req.AfterConversation != "" && !chat.ValidConversationID(req.AfterConversation)) {
		return nil, fmt.Errorf("%w: list cursor", chat.ErrInvalid)
	}
	limit := req.Limit
	if limit == 0 {
		limit = defaultConversationsLimit
	}
	limit = min(limit, maxConversationsLimit)
	p := chat.ListPage{Activity: req.AfterActivity, Conversation: req.AfterConversation, Limit: limit}
	list, more, err := s.b.ConversationPage(ctx, req.User, p)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []chat.Summary{}
	}
	for i := range list {
		list[i].Conversation = listed(list[i].Conversation)
	}
	if n := fitSummaries(list, chat.MaxPageBytes); n < len(list) {
		list, more = list[:n], true
	}
	return storeclient.ConversationsResponse{Summaries: list, More: more}, nil
}

func (s *Service) members(ctx context.Context, req storeclient.MembersRequest) (any, error) {
	if req.Limit < 0 || req.By == 0 {
		return nil, fmt.Errorf("%w: members page limit %d by %d", chat.ErrInvalid, req.Limit, req.By)
	}
	c, err := s.memberConversation(ctx, req.Conversation, req.By)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = defaultMembersLimit
	}
	limit = min(limit, chat.MaxMembersPage)
	ids, more, err := s.b.Members(ctx, c.ID, req.After, limit)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []chat.ID{}
	}
	return storeclient.MembersResponse{Members: ids, More: more, Count: len(c.Members)}, nil
}

func (s *Service) membership(ctx context.Context, req storeclient.MembershipRequest) (any, error) {
	if !chat.ValidConversationID(req.Conversation) || req.User == 0 {
		return nil, fmt.Errorf("%w: membership of %d in %q", chat.ErrInvalid, req.User, req.Conversation)
	}
	c, err := s.memberConversation(ctx, req.Conversation, req.User)
	if errors.Is(err, chat.ErrNotFound) {
		return storeclient.MembershipResponse{}, nil // nothing of it is disclosed
	}
	if err != nil {
		return nil, err
	}
	return storeclient.MembershipResponse{Conversation: listed(c), Member: true}, nil
}

// leave takes a member out of a group: the remaining members are told the
// conversation changed, the leaver that they left (so that their gateways
// stop delivering it to them).
func (s *Service) leave(ctx context.Context, req storeclient.LeaveRequest) (any, error) {
	if req.User == 0 {
		return nil, fmt.Errorf("%w: leave needs a user", chat.ErrInvalid)
	}
	c, err := s.memberConversation(ctx, req.Conversation, req.User)
	if err != nil {
		return nil, err
	}
	if c.Kind != chat.Group {
		return nil, fmt.Errorf("%w: cannot leave a %s conversation", chat.ErrInvalid, c.Kind)
	}
	after, was, err := s.b.RemoveMember(ctx, c.ID, req.User)
	if err != nil {
		return nil, err
	}
	s.changed(c.ID)
	if was {
		s.leaveGroups(ctx, []chat.ID{req.User})
		s.notify(after)
		body, _ := json.Marshal(storeclient.UserEvent{Type: storeclient.EventLeft, Conversation: &chat.Conversation{ID: c.ID}})
		if err := s.nc.Publish(chat.UserSubject(req.User), body); err != nil {
			s.log.Warn("publish leave event", zap.String("conversation", c.ID), zap.Error(err))
		}
	}
	return storeclient.LeaveResponse{Left: true}, nil
}
