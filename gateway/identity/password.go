package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters from the OWASP password storage cheat sheet:
// 19 MiB of memory, 2 passes, 1 lane.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// MinPasswordLength is the shortest password Berth accepts.
const MinPasswordLength = 12

// ErrPasswordMismatch means a password does not match its hash.
var ErrPasswordMismatch = errors.New("password does not match")

// HashPassword returns an argon2id hash in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash), which records its own
// parameters so they can be raised later without breaking old hashes.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return formatHash(salt, key), nil
}

// formatHash writes salt and key in the PHC string format with
// HashPassword's parameters.
func formatHash(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword checks password against a hash from HashPassword in
// constant time.
func VerifyPassword(hash, password string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("verify password: unknown hash format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("verify password: unsupported argon2 version")
	}
	var mem, iters uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil || mem == 0 || iters == 0 || threads == 0 {
		return errors.New("verify password: bad argon2 parameters")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return errors.New("verify password: bad salt")
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return errors.New("verify password: bad hash")
	}
	got := argon2.IDKey([]byte(password), salt, iters, mem, threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// dummyHash is verified against when a user does not exist, so that an
// unknown name costs the same time as a wrong password. It has
// HashPassword's parameters and lengths but random bytes in place of a
// derived key: verifying costs the same (the cost is the derivation from
// the parameters), while building it costs nothing. Hashing a password here
// would make every start of the binary, `berth version` included, spend
// 19 MiB and a sixth of a second; the freed pages would stay in the idle
// gateway's resident set.
var dummyHash = newDummyHash()

func newDummyHash() string {
	b := make([]byte, argonSaltLen+argonKeyLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return formatHash(b[:argonSaltLen], b[argonSaltLen:])
}

// BurnPasswordCheck spends the time of one password verification.
func BurnPasswordCheck(password string) { _ = VerifyPassword(dummyHash, password) }

// GeneratePassword returns a random password of 24 URL-safe characters
// (144 bits).
func GeneratePassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
