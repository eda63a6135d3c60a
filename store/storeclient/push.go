package storeclient

import (
	"context"

	"github.com/chatcluster/chat"
)

// PutDevice registers d for d.User and returns it as stored. chat.ErrInvalid,
// chat.ErrTooMany.
func (c *Client) PutDevice(ctx context.Context, d chat.Device) (chat.Device, error) {
	var resp PutDeviceResponse
	if err := c.call(ctx, OpPutDevice, PutDeviceRequest{Device: d}, &resp); err != nil {
		return chat.Device{}, err
	}
	return resp.Device, nil
}

// Devices returns the devices of users, by user then token.
func (c *Client) Devices(ctx context.Context, users ...chat.ID) ([]chat.Device, error) {
	var resp DevicesResponse
	if err := c.call(ctx, OpDevices, DevicesRequest{Users: users}, &resp); err != nil {
		return nil, err
	}
	return resp.Devices, nil
}

// DeleteDevice removes user's device with token (chat.ErrNotFound when user
// has none), or every device of user when token is empty. It returns how
// many it removed.
func (c *Client) DeleteDevice(ctx context.Context, user chat.ID, token string) (int, error) {
	var resp DeleteDeviceResponse
	if err := c.call(ctx, OpDeleteDevice, DeleteDeviceRequest{User: user, Token: token}, &resp); err != nil {
		return 0, err
	}
	return resp.Removed, nil
}

// SetMuted mutes or unmutes conversation for user. chat.ErrNotFound unless
// user is a member.
func (c *Client) SetMuted(ctx context.Context, conversation string, user chat.ID, muted bool) error {
	var resp MuteResponse
	return c.call(ctx, OpMute, MuteRequest{Conversation: conversation, User: user, Muted: muted}, &resp)
}

// MemberStates returns every member's read mark and mute. chat.ErrNotFound
// for an unknown conversation.
func (c *Client) MemberStates(ctx context.Context, conversation string) ([]chat.MemberState, error) {
	var resp MemberStatesResponse
	if err := c.call(ctx, OpMemberStates, MemberStatesRequest{Conversation: conversation}, &resp); err != nil {
		return nil, err
	}
	return resp.Members, nil
}
