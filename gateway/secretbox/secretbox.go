// Package secretbox encrypts secrets at rest (TLS keys, cluster credentials,
// signing keys) with AES-256-GCM under Berth's secret key.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of the secret key in bytes (AES-256).
const KeySize = 32

// KeyFile is the name of the generated key inside the data directory.
const KeyFile = "secret.key"

// version prefixes every sealed value so the format can change later.
const version byte = 1

// ErrOpen means a sealed value could not be decrypted: wrong key, tampered
// data, or data sealed for another record.
var ErrOpen = errors.New("secretbox: cannot decrypt (wrong key or tampered data)")

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
	key  []byte // kept for Derive
}

// Load returns the Box for Berth's secret key (see LoadKey): the one
// place the key is read.
func Load(configured, dataDir string) (*Box, error) {
	key, err := LoadKey(configured, dataDir)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return New(key)
}

// New makes a Box from a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	return &Box{aead: aead, key: bytes.Clone(key)}, nil
}

// Derive returns a 32-byte key for one purpose, HMAC-SHA256 of the purpose
// label under the secret key: keys for different purposes are independent,
// and none reveals the secret key. The same label always gives the same
// key, so what was keyed with it (join-token digests) survives a restart.
func (b *Box) Derive(purpose string) []byte {
	mac := hmac.New(sha256.New, b.key)
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// Seal encrypts plaintext. context (for example "cluster/prod") is
// authenticated but not stored: a value sealed for one record does not open
// for another, so a database edit cannot swap secrets between records.
func (b *Box) Seal(plaintext []byte, context string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secretbox: no randomness: " + err.Error())
	}
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, []byte(context))
}

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// LoadKey returns the secret key: the configured value (64 hex characters or
// base64 of 32 bytes) when set, else the key in dataDir/secret.key, created
// with mode 0600 on first use. The configured value wins so operators can
// keep the key out of the data directory (and out of its backups).
func LoadKey(configured, dataDir string) ([]byte, error) {
	if configured != "" {
		return ParseKey(configured)
	}
	path := filepath.Join(dataDir, KeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := ParseKey(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	// O_EXCL: two processes racing on first start must not both write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secret key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secret key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync secret key: %w", err)
	}
	return key, f.Close()
}

// ParseKey decodes a key written as 64 hex characters or as base64.
func ParseKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("secret key must be %d bytes written as 64 hex characters or base64", KeySize)
}
