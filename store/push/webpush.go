package push

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"crypto/hkdf"

	"github.com/chatcluster/chat"
)

// Web Push straight to browsers: RFC 8030 (the HTTP request to the
// subscription's endpoint), RFC 8291 (the payload encrypted for the
// subscription with aes128gcm) and RFC 8292 (VAPID: the server identifies
// itself with an ES256 JWT so push services accept it). Standard library
// crypto only.

// recordSize is the aes128gcm record size we declare. One record holds the
// whole payload: payloads stay far below it (maxPayload).
const recordSize = 4096

// maxPayload bounds the plaintext: push services accept 4096 bytes of
// encrypted body, of which the header takes 86 and the tag and delimiter 17.
const maxPayload = 3800

// VAPIDKeys is the application server's key pair (RFC 8292).
type VAPIDKeys struct {
	Private *ecdsa.PrivateKey
	// Public is the uncompressed P-256 point, base64url: what browsers take
	// as applicationServerKey and what the k= parameter carries.
	Public string
}

// GenerateVAPIDKeys makes a new key pair. The private key's encoding
// (EncodeVAPIDPrivate) is the base64url raw scalar other Web Push servers use.
func GenerateVAPIDKeys() (VAPIDKeys, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return VAPIDKeys{}, err
	}
	return vapidFrom(k)
}

// ParseVAPIDPrivate reads a private key written by EncodeVAPIDPrivate.
func ParseVAPIDPrivate(s string) (VAPIDKeys, error) {
	raw, err := base64.RawURLEncoding.DecodeString(trimPad(s))
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("%w: VAPID private key is not base64url: %v", ErrConfig, err)
	}
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("%w: VAPID private key: %v", ErrConfig, err)
	}
	return vapidFrom(k)
}

func vapidFrom(k *ecdsa.PrivateKey) (VAPIDKeys, error) {
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		return VAPIDKeys{}, err
	}
	return VAPIDKeys{Private: k, Public: base64.RawURLEncoding.EncodeToString(pub)}, nil
}

// EncodeVAPIDPrivate writes the private key as a base64url raw scalar.
func (k VAPIDKeys) EncodeVAPIDPrivate() (string, error) {
	raw, err := k.Private.Bytes()
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// vapidAuth is the Authorization header value for a request to endpoint
// (RFC 8292 section 3): a JWT for the endpoint's origin, signed ES256.
func (k VAPIDKeys) vapidAuth(endpoint, subject string, now time.Time) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	header := b64([]byte(`{"typ":"JWT","alg":"ES256"}`))
	claims, err := json.Marshal(map[string]any{
		"aud": u.Scheme + "://" + u.Host,
		"exp": now.Add(12 * time.Hour).Unix(), // at most 24 h (section 2)
		"sub": subject,
	})
	if err != nil {
		return "", err
	}
	signing := header + "." + b64(claims)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, k.Private, digest[:])
	if err != nil {
		return "", err
	}
	// JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 3.4).
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return "vapid t=" + signing + "." + b64(sig) + ", k=" + k.Public, nil
}

// Encrypt encrypts plaintext for a subscription (RFC 8291) as one
// aes128gcm record (RFC 8188): salt, record size, the sender's ephemeral
// public key as key ID, then the ciphertext. p256dh and auth are the
// subscription's keys, base64url.
func Encrypt(plaintext []byte, p256dh, auth string) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return encrypt(plaintext, p256dh, auth, as, salt)
}

// encrypt is Encrypt with the sender's ephemeral key and the salt given
// (RFC 8291's example fixes both).
func encrypt(plaintext []byte, p256dh, auth string, as *ecdh.PrivateKey, salt []byte) ([]byte, error) {
	uaPub, err := base64.RawURLEncoding.DecodeString(trimPad(p256dh))
	if err != nil {
		return nil, fmt.Errorf("p256dh: %w", err)
	}
	secret, err := base64.RawURLEncoding.DecodeString(trimPad(auth))
	if err != nil || len(secret) != 16 {
		return nil, errors.New("auth: want 16 bytes of base64url")
	}
	if len(plaintext) > maxPayload {
		return nil, fmt.Errorf("payload of %d bytes, at most %d", len(plaintext), maxPayload)
	}
	ua, err := ecdh.P256().NewPublicKey(uaPub)
	if err != nil {
		return nil, fmt.Errorf("p256dh: %w", err)
	}
	cek, nonce, err := deriveKeys(as, ua, secret, salt, as.PublicKey().Bytes(), uaPub)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	asPub := as.PublicKey().Bytes()
	out := make([]byte, 0, 16+4+1+len(asPub)+len(plaintext)+1+gcm.Overhead())
	out = append(out, salt...)
	out = binary.BigEndian.AppendUint32(out, recordSize)
	out = append(out, byte(len(asPub)))
	out = append(out, asPub...)
	// The last (only) record ends with the delimiter 0x02, no padding.
	padded := append(append(make([]byte, 0, len(plaintext)+1), plaintext...), 2)
	return gcm.Seal(out, nonce, padded, nil), nil
}

// deriveKeys is RFC 8291 section 3.4 then RFC 8188 section 2.2: the shared
// ECDH secret mixed with the auth secret into IKM, then the content
// encryption key and nonce from IKM and the salt. priv is either side's
// private key and peer the other's public key (the user agent decrypts
// with the same derivation); asPub and uaPub are in the info string.
func deriveKeys(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, authSecret, salt, asPub, uaPub []byte) (cek, nonce []byte, err error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, nil, err
	}
	keyInfo := "WebPush: info\x00" + string(uaPub) + string(asPub)
	ikm, err := hkdf.Key(sha256.New, shared, authSecret, keyInfo, 32)
	if err != nil {
		return nil, nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, nil, err
	}
	if cek, err = hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16); err != nil {
		return nil, nil, err
	}
	if nonce, err = hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12); err != nil {
		return nil, nil, err
	}
	return cek, nonce, nil
}

// Decrypt is the user agent's side of Encrypt: what a browser does with a
// push message, given the subscription's private key and auth secret. The
// service never needs it; tests and operators checking a setup do.
func Decrypt(body []byte, uaPriv *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("aes128gcm: short header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen {
		return nil, errors.New("aes128gcm: short key id")
	}
	asPub, ct := body[21:21+idlen], body[21+idlen:]
	if rs < 18 || len(ct) > int(rs) {
		return nil, fmt.Errorf("aes128gcm: one record of at most %d bytes expected, got %d", rs, len(ct))
	}
	as, err := ecdh.P256().NewPublicKey(asPub)
	if err != nil {
		return nil, fmt.Errorf("aes128gcm: key id: %w", err)
	}
	cek, nonce, err := deriveKeys(uaPriv, as, auth, salt, asPub, uaPriv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(pt, 2)
	if i < 0 || bytes.Count(pt[i+1:], []byte{0}) != len(pt)-i-1 {
		return nil, errors.New("aes128gcm: no last-record delimiter")
	}
	return pt[:i], nil
}

// webPush sends to DeviceWebPush devices.
type webPush struct {
	client  *http.Client
	keys    VAPIDKeys
	subject string
	ttl     time.Duration
}

// send posts one encrypted notification to the subscription's endpoint.
func (w *webPush) send(ctx context.Context, d chat.Device, n Notification) error {
	payload, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("%w: encode: %v", errPermanent, err)
	}
	body, err := Encrypt(payload, d.P256DH, d.Auth)
	if err != nil {
		// Keys we accepted at registration but cannot use: the device is
		// as good as gone.
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	auth, err := w.keys.vapidAuth(d.Token, w.subject, time.Now())
	if err != nil {
		return fmt.Errorf("%w: vapid: %v", errPermanent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Token, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Encoding", "aes128gcm")
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("TTL", strconv.Itoa(int(w.ttl.Seconds())))
	// A push service replaces an undelivered message of the same topic
	// (RFC 8030 5.4): a resend of this notification after a crash is
	// collapsed with the first if the browser has not fetched it yet.
	req.Header.Set("Topic", "m"+n.MessageID.String())
	urgency := "high"
	if n.Muted {
		urgency = "low"
	}
	req.Header.Set("Urgency", urgency)
	resp, err := w.client.Do(req)
	if err != nil {
		return err // the network: retried
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return statusErr(resp)
}

// statusErr classifies a push endpoint's answer: 2xx sent, 404 and 410 the
// subscription is gone (RFC 8030 7.3), 429 and 5xx retried, any other 4xx
// will not get better by retrying.
func statusErr(resp *http.Response) error {
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusNotFound || c == http.StatusGone:
		return fmt.Errorf("%w: status %d", ErrGone, c)
	case c == http.StatusTooManyRequests || c >= 500:
		return retryAfter(resp, fmt.Errorf("push endpoint: status %d", c))
	default:
		return fmt.Errorf("%w: status %d", errPermanent, c)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}
