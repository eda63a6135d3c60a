package gateway_test

import (
	"net/http"
	"testing"
)

type deviceView struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Token string `json:"token"`
	AppID string `json:"app_id"`
}

// Device registration and mutes over the API (docs/PROTOCOL.md, push).
func TestDevicesAndMutes(t *testing.T) {
	e := newEnv(t)
	a := e.signup(t, e.name("dev"), "Dev A")
	b := e.signup(t, e.name("dev"), "Dev B")

	var info map[string]any
	e.call(t, "GET", "/api/v1/push", a.Token, nil, http.StatusOK, &info)
	if _, ok := info["vapid_public_key"]; !ok {
		t.Errorf("GET /api/v1/push: %v, want vapid_public_key", info)
	}

	var d deviceView
	e.call(t, "POST", "/api/v1/devices", a.Token, map[string]string{"kind": "gateway", "token": "tok-1", "app_id": "com.example.chat"}, http.StatusCreated, &d)
	if d.ID == "" || d.Kind != "gateway" || d.Token != "tok-1" {
		t.Fatalf("registered device %+v", d)
	}
	list := func(acc account) []deviceView {
		var out struct {
			Devices []deviceView `json:"devices"`
		}
		e.call(t, "GET", "/api/v1/devices", acc.Token, nil, http.StatusOK, &out)
		return out.Devices
	}
	if ds := list(a); len(ds) != 1 || ds[0].ID != d.ID {
		t.Fatalf("a's devices %+v, want the one registered", ds)
	}

	// Bad input changes nothing.
	for _, body := range []map[string]string{
		{"kind": "sms", "token": "x", "app_id": "y"},
		{"kind": "gateway", "token": "", "app_id": "y"},
		{"kind": "gateway", "token": "has space", "app_id": "y"},
		{"kind": "gateway", "token": "t"},
		{"kind": "webpush", "token": "not a url"},
		{"kind": "webpush", "token": "https://push.example/x", "p256dh": "short", "auth": "x"},
	} {
		e.fail(t, "POST", "/api/v1/devices", a.Token, body, http.StatusBadRequest, "invalid_request")
	}
	if ds := list(a); len(ds) != 1 {
		t.Fatalf("bad registrations changed the list: %+v", ds)
	}

	// A token belongs to one user: registered by b, it leaves a.
	e.call(t, "POST", "/api/v1/devices", b.Token, map[string]string{"kind": "gateway", "token": "tok-1", "app_id": "com.example.chat"}, http.StatusCreated, nil)
	if ds := list(a); len(ds) != 0 {
		t.Fatalf("a still lists a token b registered: %+v", ds)
	}
	if ds := list(b); len(ds) != 1 {
		t.Fatalf("b's devices %+v", ds)
	}
	// Nobody removes another's device.
	e.fail(t, "DELETE", "/api/v1/devices/"+d.ID, a.Token, nil, http.StatusNotFound, "not_found")
	e.call(t, "DELETE", "/api/v1/devices/"+d.ID, b.Token, nil, http.StatusNoContent, nil)
	e.fail(t, "DELETE", "/api/v1/devices/"+d.ID, b.Token, nil, http.StatusNotFound, "not_found")

	// Remove all (what a client does at logout).
	e.call(t, "POST", "/api/v1/devices", a.Token, map[string]string{"kind": "gateway", "token": "tok-2", "app_id": "x"}, http.StatusCreated, nil)
	e.call(t, "POST", "/api/v1/devices", a.Token, map[string]string{"kind": "gateway", "token": "tok-3", "app_id": "x"}, http.StatusCreated, nil)
	var removed struct {
		Removed int `json:"removed"`
	}
	e.call(t, "DELETE", "/api/v1/devices", a.Token, nil, http.StatusOK, &removed)
	if removed.Removed != 2 || len(list(a)) != 0 {
		t.Fatalf("removed %d, left %+v", removed.Removed, list(a))
	}

	// Mutes: members only; a stranger learns nothing.
	ab := e.direct(t, a, b.User.Username)
	var m struct {
		Conversation string `json:"conversation"`
		Muted        bool   `json:"muted"`
	}
	e.call(t, "PUT", "/api/v1/conversations/"+ab.ID+"/mute", a.Token, map[string]bool{"muted": true}, http.StatusOK, &m)
	if m.Conversation != ab.ID || !m.Muted {
		t.Fatalf("mute answered %+v", m)
	}
	c := e.signup(t, e.name("dev"), "Stranger")
	e.fail(t, "PUT", "/api/v1/conversations/"+ab.ID+"/mute", c.Token, map[string]bool{"muted": true}, http.StatusNotFound, "not_found")
	e.fail(t, "PUT", "/api/v1/conversations/999999/mute", a.Token, map[string]bool{"muted": true}, http.StatusNotFound, "not_found")
	e.fail(t, "PUT", "/api/v1/conversations/"+ab.ID+"/mute", a.Token, map[string]string{}, http.StatusBadRequest, "invalid_request")
	e.fail(t, "GET", "/api/v1/devices", "", nil, http.StatusUnauthorized, "unauthorized")
}
