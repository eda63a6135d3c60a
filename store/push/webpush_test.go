package push

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

// RFC 8291 Appendix A: the example's keys, salt and the exact message body.
func TestEncryptRFC8291Example(t *testing.T) {
	const (
		plaintext = "When I grow up, I want to be a watermelon"
		asPriv    = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
		uaPriv    = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
		uaPub     = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
		auth      = "BTBZMqHH6r4Tts7J_aSIgg"
		salt      = "DGv6ra1nlYgDCS1FRnbzlw"
		body      = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
	)
	as, err := ecdh.P256().NewPrivateKey(unb64(t, asPriv))
	if err != nil {
		t.Fatal(err)
	}
	got, err := encrypt([]byte(plaintext), uaPub, auth, as, unb64(t, salt))
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	if want := unb64(t, body); !bytes.Equal(got, want) {
		t.Errorf("encrypt =\n%s\nwant the RFC's\n%s", base64.RawURLEncoding.EncodeToString(got), body)
	}
	ua, err := ecdh.P256().NewPrivateKey(unb64(t, uaPriv))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := Decrypt(unb64(t, body), ua, unb64(t, auth))
	if err != nil || string(pt) != plaintext {
		t.Errorf("Decrypt(the RFC's body) = %q, %v", pt, err)
	}
}

// newSubscription makes what a browser makes for a push subscription: a
// P-256 key pair and a 16-byte auth secret.
func newSubscription(t testing.TB) (*ecdh.PrivateKey, []byte, string, string) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		t.Fatal(err)
	}
	return k, auth, base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(auth)
}

func TestEncryptRoundTripAndTamper(t *testing.T) {
	priv, auth, p256dh, authS := newSubscription(t)
	msg := []byte(`{"body":"héllo 👋"}`)
	a, err := Encrypt(msg, p256dh, authS)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encrypt(msg, p256dh, authS+"==") // padded keys are accepted too
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Error("two encryptions are equal: salt or ephemeral key reused")
	}
	for _, body := range [][]byte{a, b} {
		if pt, err := Decrypt(body, priv, auth); err != nil || !bytes.Equal(pt, msg) {
			t.Errorf("Decrypt = %q, %v", pt, err)
		}
	}
	a[len(a)-1] ^= 1
	if _, err := Decrypt(a, priv, auth); err == nil {
		t.Error("a tampered body decrypted")
	}
	wrongAuth := bytes.Clone(auth)
	wrongAuth[0] ^= 1
	if _, err := Decrypt(b, priv, wrongAuth); err == nil {
		t.Error("decrypted with the wrong auth secret")
	}
	if _, err := Encrypt(make([]byte, maxPayload+1), p256dh, authS); err == nil {
		t.Error("an oversized payload was encrypted")
	}
	if _, err := Encrypt(msg, "BAAA", authS); err == nil {
		t.Error("encrypted for an invalid public key")
	}
}

// checkVAPID verifies an Authorization header as a push service does (RFC
// 8292): the JWT's ES256 signature with the k= key, its audience and expiry.
// It returns the k= key.
func checkVAPID(t testing.TB, header, endpoint string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		t.Fatalf("Authorization %q: not vapid", header)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		t.Fatalf("t=%q is not a JWT", params["t"])
	}
	pubRaw, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		t.Fatalf("k=: %v", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pubRaw)
	if err != nil {
		t.Fatalf("k=: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("VAPID JWT signature does not verify with k=")
	}
	var hdr struct{ Typ, Alg string }
	var claims struct {
		Aud string
		Exp int64
		Sub string
	}
	if err := json.Unmarshal(unb64(t, parts[0]), &hdr); err != nil || hdr.Alg != "ES256" {
		t.Fatalf("JWT header %+v, %v", hdr, err)
	}
	if err := json.Unmarshal(unb64(t, parts[1]), &claims); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(endpoint, claims.Aud+"/") || strings.Count(claims.Aud, "/") != 2 {
		t.Errorf("aud %q is not the origin of %q", claims.Aud, endpoint)
	}
	if exp := time.Unix(claims.Exp, 0); time.Until(exp) <= 0 || time.Until(exp) > 24*time.Hour {
		t.Errorf("exp %v not within 24 h ahead", exp)
	}
	if claims.Sub == "" {
		t.Error("no sub claim")
	}
	return params["k"]
}

func TestVAPIDKeysAndHeader(t *testing.T) {
	k, err := GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := k.EncodeVAPIDPrivate()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseVAPIDPrivate(enc)
	if err != nil || back.Public != k.Public {
		t.Fatalf("ParseVAPIDPrivate(Encode) = %v, %v; want public %s", back.Public, err, k.Public)
	}
	endpoint := "https://push.example.net:8443/wpush/v2/abc"
	h, err := back.vapidAuth(endpoint, "mailto:ops@example.net", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := checkVAPID(t, h, endpoint); got != k.Public {
		t.Errorf("k=%s, want %s", got, k.Public)
	}
	for _, bad := range []string{"", "not base64!", base64.RawURLEncoding.EncodeToString(make([]byte, 32))} {
		if _, err := ParseVAPIDPrivate(bad); err == nil {
			t.Errorf("ParseVAPIDPrivate(%q) succeeded", bad)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("short", 10); got != "short" {
		t.Errorf("truncate(short) = %q", got)
	}
	got := truncate(strings.Repeat("é", 100), 51)
	if len(got) > 51 || !strings.HasSuffix(got, "…") || !utf8Valid(got) {
		t.Errorf("truncate = %q (%d bytes)", got, len(got))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
