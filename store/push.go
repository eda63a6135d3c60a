package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store/storeclient"
)

func (s *Service) putDevice(ctx context.Context, req storeclient.PutDeviceRequest) (any, error) {
	d := req.Device
	if err := chat.ValidateDevice(d); err != nil {
		return nil, err
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	if err := s.b.PutDevice(ctx, d); err != nil {
		return nil, err
	}
	return storeclient.PutDeviceResponse{Device: d}, nil
}

func (s *Service) devices(ctx context.Context, req storeclient.DevicesRequest) (any, error) {
	if len(req.Users) > s.cfg.MaxIDs {
		return nil, fmt.Errorf("%w: %d users, at most %d", chat.ErrInvalid, len(req.Users), s.cfg.MaxIDs)
	}
	out := storeclient.DevicesResponse{Devices: []chat.Device{}}
	for _, u := range req.Users {
		ds, err := s.b.Devices(ctx, u)
		if err != nil {
			return nil, err
		}
		out.Devices = append(out.Devices, ds...)
	}
	return out, nil
}

func (s *Service) deleteDevice(ctx context.Context, req storeclient.DeleteDeviceRequest) (any, error) {
	if req.User == 0 {
		return nil, fmt.Errorf("%w: delete_device needs a user", chat.ErrInvalid)
	}
	if req.Token != "" {
		if err := s.b.DeleteDevice(ctx, req.User, req.Token); err != nil {
			return nil, err
		}
		return storeclient.DeleteDeviceResponse{Removed: 1}, nil
	}
	ds, err := s.b.Devices(ctx, req.User)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, d := range ds {
		// A device moved to another user meanwhile is theirs now.
		if err := s.b.DeleteDevice(ctx, req.User, d.Token); err != nil && !errors.Is(err, chat.ErrNotFound) {
			return nil, err
		}
		n++
	}
	return storeclient.DeleteDeviceResponse{Removed: n}, nil
}

func (s *Service) mute(ctx context.Context, req storeclient.MuteRequest) (any, error) {
	if req.User == 0 || !chat.ValidConversationID(req.Conversation) {
		return nil, fmt.Errorf("%w: mute needs a user and a conversation", chat.ErrInvalid)
	}
	if err := s.b.SetMuted(ctx, req.Conversation, req.User, req.Muted); err != nil {
		return nil, err
	}
	return storeclient.MuteResponse{Muted: req.Muted}, nil
}

func (s *Service) memberStates(ctx context.Context, req storeclient.MemberStatesRequest) (any, error) {
	if !chat.ValidConversationID(req.Conversation) {
		return nil, fmt.Errorf("%w: conversation %q", chat.ErrNotFound, req.Conversation)
	}
	ms, err := s.b.MemberStates(ctx, req.Conversation)
	if err != nil {
		return nil, err
	}
	if ms == nil {
		ms = []chat.MemberState{}
	}
	return storeclient.MemberStatesResponse{Members: ms}, nil
}

func (i instrumented) PutDevice(ctx context.Context, d chat.Device) error {
	start := time.Now()
	err := i.b.PutDevice(ctx, d)
	i.m.observe(opPush, start, err)
	return err
}

func (i instrumented) Devices(ctx context.Context, user chat.ID) ([]chat.Device, error) {
	start := time.Now()
	ds, err := i.b.Devices(ctx, user)
	i.m.observe(opPush, start, err)
	return ds, err
}

func (i instrumented) DeleteDevice(ctx context.Context, user chat.ID, token string) error {
	start := time.Now()
	err := i.b.DeleteDevice(ctx, user, token)
	i.m.observe(opPush, start, err)
	return err
}

func (i instrumented) SetMuted(ctx context.Context, conversation string, user chat.ID, muted bool) error {
	start := time.Now()
	err := i.b.SetMuted(ctx, conversation, user, muted)
	i.m.observe(opPush, start, err)
	return err
}

func (i instrumented) MemberStates(ctx context.Context, conversation string) ([]chat.MemberState, error) {
	start := time.Now()
	ms, err := i.b.MemberStates(ctx, conversation)
	i.m.observe(opPush, start, err)
	return ms, err
}
