package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Prefixes of the opaque credentials Berth issues. They let a secret
// scanner recognise a leaked Berth credential, and let the gateway tell a
// bearer API key from a JWT without trying both.
const (
	APIKeyPrefix       = "brt_"
	RefreshTokenPrefix = "brr_"
	SessionPrefix      = "brs_"
)

// secretRecord is a key Berth generates for itself at first start, kept
// sealed with the gateway's secret box.
type secretRecord struct {
	ID        string    `json:"id"`
	KeyID     string    `json:"key_id"`
	Sealed    []byte    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
}

var secrets = store.NewTable[secretRecord]("identity_secrets")

const (
	// legacySigningKeyRecord held the one token signing key before keys
	// rotated; loadSigningKeys moves it to the signing-key table.
	legacySigningKeyRecord = "jwt_signing_key"
	digestKeyRecord        = "digest_key"
)

// keyring holds the HMAC key that digests stored credentials.
type keyring struct {
	digestKey []byte
}

// loadKeys reads the keys from the store, generating and sealing them on
// first start: the digest key, and the token signing keys (see
// loadSigningKeys). The seal's context names the record, so a sealed value
// moved to another record does not open.
func loadKeys(db *store.DB, box *secretbox.Box, now time.Time, window time.Duration) (*keyring, *keySet, error) {
	kr := &keyring{}
	var ks *keySet
	err := db.Update(func(tx *store.Tx) error {
		digest, _, err := getOrCreateSecret(tx, box, digestKeyRecord, 32, "dgk", now)
		if err != nil {
			return err
		}
		kr.digestKey = digest
		ks, err = loadSigningKeys(tx, box, now, window)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("identity keys: %w", err)
	}
	return kr, ks, nil
}

func getOrCreateSecret(tx *store.Tx, box *secretbox.Box, name string, size int, idPrefix string, now time.Time) ([]byte, string, error) {
	rec, err := secrets.Get(tx, name)
	if err == nil {
		plain, err := box.Open(rec.Sealed, "identity/"+name)
		if err != nil {
			return nil, "", fmt.Errorf("open %s (is BERTH_SECRET_KEY the one this data was made with?): %w", name, err)
		}
		if len(plain) != size {
			return nil, "", fmt.Errorf("%s has %d bytes, want %d", name, len(plain), size)
		}
		return plain, rec.KeyID, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, "", err
	}
	plain := make([]byte, size)
	if _, err := rand.Read(plain); err != nil {
		return nil, "", fmt.Errorf("generate %s: %w", name, err)
	}
	rec = &secretRecord{ID: name, KeyID: store.NewID(idPrefix), Sealed: box.Seal(plain, "identity/"+name), CreatedAt: now.UTC()}
	if err := secrets.Insert(tx, name, rec); err != nil {
		return nil, "", err
	}
	return plain, rec.KeyID, nil
}

// digest returns the hex HMAC-SHA256 of a presented credential under the
// gateway's digest key, with the credential kind mixed in so a value of one
// kind never matches a stored digest of another. Stored credentials are
// looked up by this digest, so the comparison happens on fixed-length
// values the client cannot steer, never on the raw secret.
func (k *keyring) digest(kind, secret string) string {
	m := hmac.New(sha256.New, k.digestKey)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// digestEqual compares two hex digests in constant time.
func digestEqual(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// newOpaqueToken returns prefix + 43 characters of base64url (256 bits).
func newOpaqueToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// opaqueTokenLen is the length of every token newOpaqueToken makes.
const opaqueTokenLen = 4 + 43

// wellFormedOpaque reports whether s looks like a token newOpaqueToken made
// with prefix, so garbage is refused before any store lookup.
func wellFormedOpaque(s, prefix string) bool {
	if len(s) != opaqueTokenLen || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if !isBase64URL(s[i]) {
			return false
		}
	}
	return true
}

func isBase64URL(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// newHex returns n random bytes as lower-case hex.
func newHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// OAuthClient is an OAuth 2.0 client allowed to use /oauth/token. Only the
// SHA-256 of its secret is kept.
type OAuthClient struct {
	ID           string
	SecretSHA256 [32]byte
}

// checkOAuthClient verifies a client's credentials. It hashes the presented
// secret and compares fixed-length digests in constant time, and spends the
// same work on an unknown client id.
func checkOAuthClient(clients []OAuthClient, id, secret string) bool {
	got := sha256.Sum256([]byte(secret))
	var want [32]byte
	found := false
	for _, c := range clients {
		if subtle.ConstantTimeCompare([]byte(c.ID), []byte(id)) == 1 {
			want, found = c.SecretSHA256, true
		}
	}
	ok := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	return found && ok && secret != ""
}
