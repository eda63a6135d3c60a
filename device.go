package chat

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"time"
)

// DeviceKind says how a device is reached by a push notification.
type DeviceKind string

const (
	// DeviceGateway is a phone app reached through the operator's push
	// gateway (the Matrix push gateway API, as Sygnal implements it):
	// Token is the gateway's pushkey, AppID its app_id.
	DeviceGateway DeviceKind = "gateway"
	// DeviceWebPush is a browser reached by Web Push (RFC 8030): Token is
	// the subscription's endpoint URL, P256DH and Auth its keys.
	DeviceWebPush DeviceKind = "webpush"
)

// Limits of a device registration.
const (
	// MaxDeviceToken bounds a token: push endpoint URLs run to a few
	// hundred bytes, APNs and FCM tokens to about 200.
	MaxDeviceToken = 2048
	// MaxAppID bounds a push gateway app_id (reverse DNS names).
	MaxAppID = 128
	// MaxDevices bounds one user's devices, so a partition stays small and
	// one message cannot fan out to an unbounded number of sends.
	MaxDevices = 20
)

// Device is one registered push target of a user. A token belongs to one
// user: registering it again for another user moves it.
type Device struct {
	User      ID         `json:"user"`
	Kind      DeviceKind `json:"kind"`
	Token     string     `json:"token"`
	AppID     string     `json:"app_id,omitempty"`
	P256DH    string     `json:"p256dh,omitempty"` // base64url, the subscription's P-256 public key
	Auth      string     `json:"auth,omitempty"`   // base64url, the subscription's 16-byte auth secret
	CreatedAt time.Time  `json:"created_at"`
}

// DeviceID names a token in URLs and dedup keys: the first 16 bytes of its
// SHA-256, base64url. A token itself (an endpoint URL) fits neither.
func DeviceID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// ValidateDevice checks a registration; the error wraps ErrInvalid and says
// what is wrong.
func ValidateDevice(d Device) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: device: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if d.User == 0 {
		return bad("no user")
	}
	if d.Token == "" || len(d.Token) > MaxDeviceToken || !printableASCII(d.Token) {
		return bad("token must be 1-%d printable ASCII characters", MaxDeviceToken)
	}
	switch d.Kind {
	case DeviceGateway:
		if d.AppID == "" || len(d.AppID) > MaxAppID || !printableASCII(d.AppID) {
			return bad("app_id must be 1-%d printable ASCII characters", MaxAppID)
		}
		if d.P256DH != "" || d.Auth != "" {
			return bad("p256dh and auth are for webpush devices")
		}
	case DeviceWebPush:
		u, err := url.Parse(d.Token)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return bad("a webpush token is the subscription's endpoint URL")
		}
		if k, err := base64.RawURLEncoding.DecodeString(trimPad(d.P256DH)); err != nil || len(k) != 65 || k[0] != 4 {
			return bad("p256dh must be an uncompressed P-256 point, base64url")
		}
		if a, err := base64.RawURLEncoding.DecodeString(trimPad(d.Auth)); err != nil || len(a) != 16 {
			return bad("auth must be 16 bytes, base64url")
		}
		if d.AppID != "" {
			return bad("app_id is for gateway devices")
		}
	default:
		return bad("kind must be %q or %q", DeviceGateway, DeviceWebPush)
	}
	return nil
}

// trimPad drops base64 padding: browsers give keys unpadded, some
// libraries padded.
func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// MemberState is what notifying a member needs besides their devices: how
// far they read and whether they muted the conversation.
type MemberState struct {
	User     ID   `json:"user"`
	LastRead ID   `json:"last_read"`
	Muted    bool `json:"muted"`
}
