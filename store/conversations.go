package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
)

func (s *Service) direct(ctx context.Context, req storeclient.DirectRequest) (any, error) {
	a, b := req.A, req.B
	switch {
	case a == 0 || b == 0:
		return nil, fmt.Errorf("%w: direct needs two users", chat.ErrInvalid)
	case a == b:
		return nil, fmt.Errorf("%w: direct conversation with oneself", chat.ErrInvalid)
	}
	id := chat.DirectID(a, b)
	if c, err := s.b.Conversation(ctx, id); err == nil {
		return storeclient.DirectResponse{Conversation: listed(c)}, nil
	} else if !errors.Is(err, chat.ErrNotFound) {
		return nil, err
	}
	if err := s.checkUsers(ctx, []chat.ID{a, b}); err != nil {
		return nil, err
	}
	lo, hi := min(a, b), max(a, b)
	c, created, err := s.b.CreateConversation(ctx, chat.Conversation{
		ID: id, Kind: chat.Direct, CreatedBy: a, CreatedAt: now(), Members: []chat.ID{lo, hi},
	})
	if err != nil {
		return nil, err
	}
	if created {
		s.notify(c)
	}
	return storeclient.DirectResponse{Conversation: listed(c), Created: created}, nil
}

// sortedIDs returns ids sorted ascending without duplicates; ErrInvalid for
// a zero ID.
func sortedIDs(ids []chat.ID) ([]chat.ID, error) {
	out := slices.Clone(ids)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == 0 {
		return nil, fmt.Errorf("%w: user id 0", chat.ErrInvalid)
	}
	return out, nil
}

func (s *Service) group(ctx context.Context, req storeclient.GroupRequest) (any, error) {
	if req.Creator == 0 {
		return nil, fmt.Errorf("%w: group needs a creator", chat.ErrInvalid)
	}
	if req.Title != "" && !chat.ValidTitle(req.Title) { // the gateway requires one; the store keeps allowing none
		return nil, fmt.Errorf("%w: title", chat.ErrInvalid)
	}
	if len(req.Members) >= 2*s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", chat.ErrTooMany, len(req.Members), s.cfg.MaxMembers)
	}
	members, err := sortedIDs(append(slices.Clip(req.Members), req.Creator))
	if err != nil {
		return nil, err
	}
	if len(members) > s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", chat.ErrTooMany, len(members), s.cfg.MaxMembers)
	}
	if err := s.checkUsers(ctx, members); err != nil {
		return nil, err
	}
	if err := s.mayAdd(ctx, req.Creator, members); err != nil {
		return nil, err
	}
	id, err := s.nextID()
	if err != nil {
		return nil, err
	}
	if err := s.countGroup(ctx, req.Creator, true, len(members)-1); err != nil {
		return nil, err
	}
	if err := s.joinGroups(ctx, members); err != nil {
		s.uncountGroup(context.WithoutCancel(ctx), req.Creator, true, len(members)-1)
		return nil, err
	}
	c, _, err := s.b.CreateConversation(ctx, chat.Conversation{
		ID: id.String(), Kind: chat.Group, Title: req.Title, CreatedBy: req.Creator,
		CreatedAt: now(), Members: members,
	})
	if err != nil {
		s.leaveGroups(context.WithoutCancel(ctx), members)
		s.uncountGroup(context.WithoutCancel(ctx), req.Creator, true, len(members)-1)
		return nil, err
	}
	s.notify(c)
	return storeclient.GroupResponse{Conversation: listed(c)}, nil
}

func isMember(c chat.Conversation, u chat.ID) bool {
	_, ok := slices.BinarySearch(c.Members, u)
	if !ok {
		// Members should be sorted; do not trust it for access control.
		ok = slices.Contains(c.Members, u)
	}
	return ok
}

// memberConversation returns conversation id if user is a member; the same
// ErrNotFound otherwise, so that its existence is not disclosed.
func (s *Service) memberConversation(ctx context.Context, id string, user chat.ID) (chat.Conversation, error) {
	if !chat.ValidConversationID(id) {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %q", chat.ErrInvalid, id)
	}
	c, err := s.convs.get(ctx, id, false)
	if err == nil && !isMember(c, user) {
		// Never refuse from the cache: the user may just have been added.
		c, err = s.convs.get(ctx, id, true)
	}
	if err != nil {
		return chat.Conversation{}, err
	}
	if !isMember(c, user) {
		return chat.Conversation{}, fmt.Errorf("%w: conversation %s", chat.ErrNotFound, id)
	}
	return c, nil
}

func (s *Service) addMembers(ctx context.Context, req storeclient.AddMembersRequest) (any, error) {
	if len(req.Users) == 0 {
		return nil, fmt.Errorf("%w: no users to add", chat.ErrInvalid)
	}
	if len(req.Users) >= 2*s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d users, at most %d members", chat.ErrTooMany, len(req.Users), s.cfg.MaxMembers)
	}
	c, err := s.memberConversation(ctx, req.Conversation, req.By)
	if err != nil {
		return nil, err
	}
	if c.Kind != chat.Group {
		return nil, fmt.Errorf("%w: cannot add members to a %s conversation", chat.ErrInvalid, c.Kind)
	}
	users, err := sortedIDs(req.Users)
	if err != nil {
		return nil, err
	}
	users = slices.DeleteFunc(users, func(u chat.ID) bool { return isMember(c, u) })
	if len(users) == 0 {
		return storeclient.AddMembersResponse{Conversation: listed(c), Added: []chat.ID{}}, nil // adding again changes nothing
	}
	// Two concurrent adds may together pass the limit a little; the limit
	// bounds fan-out cost, not an invariant.
	if len(c.Members)+len(users) > s.cfg.MaxMembers {
		return nil, fmt.Errorf("%w: %d members, at most %d", chat.ErrTooMany, len(c.Members)+len(users), s.cfg.MaxMembers)
	}
	if err := s.checkUsers(ctx, users); err != nil {
		return nil, err
	}
	if err := s.mayAdd(ctx, req.By, users); err != nil {
		return nil, err
	}
	if err := s.countGroup(ctx, req.By, false, len(users)); err != nil {
		return nil, err
	}
	if err := s.joinGroups(ctx, users); err != nil {
		s.uncountGroup(context.WithoutCancel(ctx), req.By, false, len(users))
		return nil, err
	}
	c, added, err := s.b.AddMembers(ctx, c.ID, users, now())
	if err != nil {
		s.leaveGroups(context.WithoutCancel(ctx), users)
		s.uncountGroup(context.WithoutCancel(ctx), req.By, false, len(users))
		return nil, err
	}
	if len(added) < len(users) { // some were added meanwhile by another request
		s.leaveGroups(ctx, slices.DeleteFunc(slices.Clone(users), func(u chat.ID) bool { return slices.Contains(added, u) }))
	}
	s.changed(c.ID)
	if added == nil {
		added = []chat.ID{}
	}
	if len(added) > 0 {
		s.notify(c)
	}
	return storeclient.AddMembersResponse{Conversation: listed(c), Added: added}, nil
}

func (s *Service) conversation(ctx context.Context, req storeclient.ConversationRequest) (any, error) {
	if !chat.ValidConversationID(req.ID) {
		return nil, fmt.Errorf("%w: conversation %q", chat.ErrInvalid, req.ID)
	}
	c, err := s.b.Conversation(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	return storeclient.ConversationResponse{Conversation: listed(c)}, nil
}

func (s *Service) conversations(ctx context.Context, req storeclient.ConversationsRequest) (any, error) {
	return s.conversationPage(ctx, req)
}

func (s *Service) history(ctx context.Context, req storeclient.HistoryRequest) (any, error) {
	switch {
	case !chat.ValidConversationID(req.Conversation):
		return nil, fmt.Errorf("%w: conversation %q", chat.ErrInvalid, req.Conversation)
	case req.Before != 0 && req.After != 0:
		return nil, fmt.Errorf("%w: both before and after", chat.ErrInvalid)
	case req.Limit < 0:
		return nil, fmt.Errorf("%w: limit %d", chat.ErrInvalid, req.Limit)
	}
	p := chat.Page{Before: req.Before, After: req.After, Limit: req.Limit, Viewer: req.Viewer}
	if p.Limit == 0 {
		p.Limit = defaultHistoryLimit
	}
	p.Limit = min(p.Limit, maxHistoryLimit)
	if err := s.awaitStored(ctx, req.Conversation); err != nil {
		return nil, err
	}
	msgs, more, err := s.b.Messages(ctx, req.Conversation, p)
	if err != nil {
		return nil, err
	}
	if n := fitMessages(msgs, chat.MaxPageBytes); n < len(msgs) {
		msgs, more = msgs[:n], true // the page ends early; its last ID is the cursor
	}
	if msgs == nil {
		msgs = []chat.Message{}
	}
	return storeclient.HistoryResponse{Messages: msgs, More: more}, nil
}

func (s *Service) read(ctx context.Context, req storeclient.ReadRequest) (any, error) {
	if req.User == 0 || req.MessageID == 0 {
		return nil, fmt.Errorf("%w: read needs a user and a message", chat.ErrInvalid)
	}
	if _, err := s.memberConversation(ctx, req.Conversation, req.User); err != nil {
		return nil, err
	}
	// The backend records the number of the newest stored message at the
	// mark (unread counts); the marked message is stored first.
	if err := s.awaitStored(ctx, req.Conversation); err != nil {
		return nil, err
	}
	mark, moved, err := s.b.MarkRead(ctx, req.Conversation, req.User, req.MessageID)
	if err != nil {
		return nil, err
	}
	return storeclient.ReadResponse{Mark: mark, Moved: moved}, nil
}
