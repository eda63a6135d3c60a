// Package password hashes and checks passwords: argon2id in the PHC string
// format. The gateway hashes (signup, a new password); only the store
// checks, so a hash never leaves the store.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMismatch: the password does not match the hash (or the hash is not
// one this package made).
var ErrMismatch = errors.New("password: mismatch")

// argon2id with OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// Hash returns password's argon2id hash with a fresh random salt.
func Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	return encode(salt, argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)), nil
}

func encode(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// dummy is checked against for an unknown user, so that an unknown user
// costs the same argon2 run as a known one.
var dummy = encode(make([]byte, saltLen), argon2.IDKey([]byte("x"), make([]byte, saltLen), argonTime, argonMemory, argonThreads, argonKeyLen))

// Check verifies password against an encoded hash; "" (no such account)
// runs the same work against a dummy and fails. ErrMismatch.
func Check(encoded, password string) error {
	if encoded == "" {
		encoded = dummy
		password += "\x00never"
	}
	var v, m, t, p int
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return fmt.Errorf("%w: hash format", ErrMismatch)
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil {
		return fmt.Errorf("%w: hash format", ErrMismatch)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m <= 0 || t <= 0 || p <= 0 || m > 1<<22 || t > 64 || p > 64 {
		return fmt.Errorf("%w: hash parameters", ErrMismatch)
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return fmt.Errorf("%w: hash encoding", ErrMismatch)
	}
	got := argon2.IDKey([]byte(password), salt, uint32(t), uint32(m), uint8(p), uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}
