package storetest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatcluster/chat"
	"github.com/chatcluster/chat/store"
)

// webDevice is a valid Web Push registration of user; n varies the
// endpoint and the keys.
func webDevice(user chat.ID, n int) chat.Device {
	key := make([]byte, 65)
	key[0] = 4
	key[1] = byte(n)
	auth := make([]byte, 16)
	auth[0] = byte(n)
	return chat.Device{
		User:      user,
		Kind:      chat.DeviceWebPush,
		Token:     fmt.Sprintf("https://push.example.net/send/%d", n),
		P256DH:    base64.RawURLEncoding.EncodeToString(key),
		Auth:      base64.RawURLEncoding.EncodeToString(auth),
		CreatedAt: at(time.Duration(n) * time.Second),
	}
}

func gatewayDevice(user chat.ID, token string) chat.Device {
	return chat.Device{User: user, Kind: chat.DeviceGateway, Token: token, AppID: "org.example.chat.ios", CreatedAt: at(time.Minute)}
}

func devices(t *testing.T, b store.Backend, user chat.ID) []chat.Device {
	t.Helper()
	ds, err := b.Devices(t.Context(), user)
	if err != nil {
		t.Fatalf("Devices(%d): %v", user, err)
	}
	return ds
}

func sameDevices(got, want []chat.Device) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d devices %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.User != w.User || g.Kind != w.Kind || g.Token != w.Token || g.AppID != w.AppID ||
			g.P256DH != w.P256DH || g.Auth != w.Auth || !g.CreatedAt.Equal(w.CreatedAt) {
			return fmt.Sprintf("device %d = %+v, want %+v", i, g, w)
		}
	}
	return ""
}

func testDevices(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u1, u2 := userID(1), userID(2)
	if ds := devices(t, b, u1); len(ds) != 0 {
		t.Fatalf("Devices of a user with none = %+v", ds)
	}
	w := webDevice(u1, 1)
	g := gatewayDevice(u1, "apns-token-1")
	for _, d := range []chat.Device{w, g, w} { // the replay changes nothing
		if err := b.PutDevice(ctx, d); err != nil {
			t.Fatalf("PutDevice(%s): %v", d.Token, err)
		}
	}
	// By token: "apns..." sorts before "https...".
	if d := sameDevices(devices(t, b, u1), []chat.Device{g, w}); d != "" {
		t.Errorf("after two registrations: %s", d)
	}
	// New keys for the same token replace the old ones.
	w2 := webDevice(u1, 1)
	w2.Auth = webDevice(u1, 9).Auth
	if err := b.PutDevice(ctx, w2); err != nil {
		t.Fatalf("PutDevice(new keys): %v", err)
	}
	if d := sameDevices(devices(t, b, u1), []chat.Device{g, w2}); d != "" {
		t.Errorf("after new keys: %s", d)
	}
	// A token belongs to one user: registering it for u2 moves it.
	moved := gatewayDevice(u2, g.Token)
	if err := b.PutDevice(ctx, moved); err != nil {
		t.Fatalf("PutDevice(u2): %v", err)
	}
	if d := sameDevices(devices(t, b, u1), []chat.Device{w2}); d != "" {
		t.Errorf("u1 after the token moved: %s", d)
	}
	if d := sameDevices(devices(t, b, u2), []chat.Device{moved}); d != "" {
		t.Errorf("u2 after the token moved: %s", d)
	}
	// u1 cannot remove u2's token.
	if err := b.DeleteDevice(ctx, u1, g.Token); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("DeleteDevice of another user's token: err = %v, want ErrNotFound", err)
	}
	if d := sameDevices(devices(t, b, u2), []chat.Device{moved}); d != "" {
		t.Errorf("u2 after u1's delete attempt: %s", d)
	}
	if err := b.DeleteDevice(ctx, u1, w2.Token); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	if ds := devices(t, b, u1); len(ds) != 0 {
		t.Errorf("Devices after delete = %+v", ds)
	}
	if err := b.DeleteDevice(ctx, u1, w2.Token); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("DeleteDevice twice: err = %v, want ErrNotFound", err)
	}
	// The deleted token can be registered again, by anyone.
	if err := b.PutDevice(ctx, webDevice(u2, 1)); err != nil {
		t.Fatalf("PutDevice after delete: %v", err)
	}
	if n := len(devices(t, b, u2)); n != 2 {
		t.Errorf("u2 has %d devices, want 2", n)
	}
}

func testDevicesInvalid(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := userID(1)
	bad := []chat.Device{
		{User: u, Kind: chat.DeviceGateway, Token: "t"},    // no app_id
		{User: u, Kind: "sms", Token: "t", AppID: "a"},     // unknown kind
		{User: u, Kind: chat.DeviceGateway, AppID: "a"},    // no token
		{Kind: chat.DeviceGateway, Token: "t", AppID: "a"}, // no user
		{User: u, Kind: chat.DeviceWebPush, Token: "not a url", P256DH: webDevice(u, 1).P256DH, Auth: webDevice(u, 1).Auth},
		{User: u, Kind: chat.DeviceWebPush, Token: "https://p.example/x", P256DH: "AAAA", Auth: webDevice(u, 1).Auth},
		{User: u, Kind: chat.DeviceWebPush, Token: "https://p.example/x", P256DH: webDevice(u, 1).P256DH, Auth: "AAAA"},
	}
	for _, d := range bad {
		if err := b.PutDevice(ctx, d); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("PutDevice(%+v): err = %v, want ErrInvalid", d, err)
		}
	}
	if ds := devices(t, b, u); len(ds) != 0 {
		t.Errorf("invalid registrations stored %+v", ds)
	}
}

func testDevicesLimit(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u := userID(1)
	for i := range chat.MaxDevices {
		if err := b.PutDevice(ctx, webDevice(u, i)); err != nil {
			t.Fatalf("PutDevice %d: %v", i, err)
		}
	}
	if err := b.PutDevice(ctx, webDevice(u, chat.MaxDevices)); !errors.Is(err, chat.ErrTooMany) {
		t.Errorf("PutDevice past MaxDevices: err = %v, want ErrTooMany", err)
	}
	// Re-registering a token the user has is not a new device.
	if err := b.PutDevice(ctx, webDevice(u, 0)); err != nil {
		t.Errorf("PutDevice of an existing token at the limit: %v", err)
	}
	if n := len(devices(t, b, u)); n != chat.MaxDevices {
		t.Errorf("%d devices, want %d", n, chat.MaxDevices)
	}
}

func memberStates(t *testing.T, b store.Backend, conv string) []chat.MemberState {
	t.Helper()
	ms, err := b.MemberStates(t.Context(), conv)
	if err != nil {
		t.Fatalf("MemberStates(%s): %v", conv, err)
	}
	return ms
}

func testMemberStates(t *testing.T, b store.Backend) {
	ctx := t.Context()
	u1, u2, u3 := userID(1), userID(2), userID(3)
	c := mkConv(t, b, group(groupID(1), u1, at(0), u1, u2, u3))
	m1 := idAt(at(time.Second), 0)
	m2 := idAt(at(2*time.Second), 0)
	save(t, b, msg(c.ID, m1, u1), msg(c.ID, m2, u2))
	if _, _, err := b.MarkRead(ctx, c.ID, u2, m1); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if _, _, err := b.MarkRead(ctx, c.ID, u3, m2); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if err := b.SetMuted(ctx, c.ID, u3, true); err != nil {
		t.Fatalf("SetMuted: %v", err)
	}
	want := []chat.MemberState{{User: u1}, {User: u2, LastRead: m1}, {User: u3, LastRead: m2, Muted: true}}
	if got := memberStates(t, b, c.ID); !slices.Equal(got, want) {
		t.Errorf("MemberStates = %+v, want %+v", got, want)
	}
	if err := b.SetMuted(ctx, c.ID, u3, false); err != nil {
		t.Fatalf("SetMuted(false): %v", err)
	}
	if err := b.SetMuted(ctx, c.ID, u1, true); err != nil {
		t.Fatalf("SetMuted(u1): %v", err)
	}
	want = []chat.MemberState{{User: u1, Muted: true}, {User: u2, LastRead: m1}, {User: u3, LastRead: m2}}
	if got := memberStates(t, b, c.ID); !slices.Equal(got, want) {
		t.Errorf("MemberStates after unmute = %+v, want %+v", got, want)
	}
	// Mutes are per conversation.
	d := mkConv(t, b, direct(u1, u2, at(0)))
	if got := memberStates(t, b, d.ID); !slices.Equal(got, []chat.MemberState{{User: u1}, {User: u2}}) {
		t.Errorf("MemberStates of another conversation = %+v", got)
	}
	// A non-member cannot mute; an unknown conversation has no states.
	if err := b.SetMuted(ctx, d.ID, u3, true); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("SetMuted by a non-member: err = %v, want ErrNotFound", err)
	}
	if _, err := b.MemberStates(ctx, groupID(99)); !errors.Is(err, chat.ErrNotFound) {
		t.Errorf("MemberStates of an unknown conversation: err = %v, want ErrNotFound", err)
	}
	if got := memberStates(t, b, d.ID); !slices.Equal(got, []chat.MemberState{{User: u1}, {User: u2}}) {
		t.Errorf("MemberStates after a refused mute = %+v", got)
	}
}
