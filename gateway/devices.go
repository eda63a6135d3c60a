package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/chatcluster/chat"
)

// The push side of the HTTP API (docs/PROTOCOL.md, Push notifications):
// devices a user registers for notifications while offline, mutes, and the
// key browsers subscribe to Web Push with. The push service (chat push)
// reads what these store.

func (s *Server) pushRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/push", s.authed(s.pushInfo))
	mux.HandleFunc("POST /api/v1/devices", s.authed(s.registerDevice))
	mux.HandleFunc("GET /api/v1/devices", s.authed(s.listDevices))
	mux.HandleFunc("DELETE /api/v1/devices/{id}", s.authed(s.deleteDevice))
	mux.HandleFunc("DELETE /api/v1/devices", s.authed(s.deleteDevices))
	mux.HandleFunc("PUT /api/v1/conversations/{id}/mute", s.authed(s.mute))
}

// deviceView is a device as its owner sees it: id names it in DELETE.
type deviceView struct {
	ID        string          `json:"id"`
	Kind      chat.DeviceKind `json:"kind"`
	Token     string          `json:"token"`
	AppID     string          `json:"app_id,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

func viewDevice(d chat.Device) deviceView {
	return deviceView{ID: chat.DeviceID(d.Token), Kind: d.Kind, Token: d.Token, AppID: d.AppID, CreatedAt: d.CreatedAt}
}

func (s *Server) pushInfo(w http.ResponseWriter, r *http.Request, id identity) {
	writeJSON(w, http.StatusOK, map[string]any{"vapid_public_key": s.cfg.VAPIDPublicKey})
}

func (s *Server) registerDevice(w http.ResponseWriter, r *http.Request, id identity) {
	var req struct {
		Kind   chat.DeviceKind `json:"kind"`
		Token  string          `json:"token"`
		AppID  string          `json:"app_id"`
		P256DH string          `json:"p256dh"`
		Auth   string          `json:"auth"`
	}
	if !decode(w, r, &req) {
		return
	}
	d := chat.Device{User: id.User, Kind: req.Kind, Token: req.Token, AppID: req.AppID, P256DH: req.P256DH, Auth: req.Auth,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := chat.ValidateDevice(d); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	got, err := s.store.PutDevice(r.Context(), d)
	if errors.Is(err, chat.ErrTooMany) {
		writeError(w, http.StatusBadRequest, "invalid_request", "too many devices: remove one first")
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, viewDevice(got))
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, id identity) {
	ds, err := s.store.Devices(r.Context(), id.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewDevice(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, id identity) {
	want := r.PathValue("id")
	ds, err := s.store.Devices(r.Context(), id.User)
	if err != nil {
		s.storeError(w, err)
		return
	}
	for _, d := range ds {
		if chat.DeviceID(d.Token) == want {
			if _, err := s.store.DeleteDevice(r.Context(), id.User, d.Token); err != nil {
				s.storeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "no such device")
}

// deleteDevices removes all of the caller's devices: what a client calls
// when it logs out (and what a log-out endpoint calls for it).
func (s *Server) deleteDevices(w http.ResponseWriter, r *http.Request, id identity) {
	n, err := s.store.DeleteDevice(r.Context(), id.User, "")
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": n})
}

func (s *Server) mute(w http.ResponseWriter, r *http.Request, id identity) {
	conv := r.PathValue("id")
	var req struct {
		Muted *bool `json:"muted"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Muted == nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "muted must be true or false")
		return
	}
	if !chat.ValidConversationID(conv) {
		noConversation(w)
		return
	}
	// The store answers not found for a non-member too: existence is not
	// disclosed.
	if err := s.store.SetMuted(r.Context(), conv, id.User, *req.Muted); err != nil {
		if errors.Is(err, chat.ErrNotFound) {
			noConversation(w)
			return
		}
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation": conv, "muted": *req.Muted})
}
