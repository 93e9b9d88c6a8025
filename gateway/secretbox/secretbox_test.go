package secretbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := box.Seal([]byte("kubeconfig-secret"), "cluster/a")
	if bytes.Contains(sealed, []byte("kubeconfig-secret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	got, err := box.Open(sealed, "cluster/a")
	if err != nil || string(got) != "kubeconfig-secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, try := range map[string]func() ([]byte, error){
		"other context": func() ([]byte, error) { return box.Open(sealed, "cluster/b") },
		"other key":     func() ([]byte, error) { return other.Open(sealed, "cluster/a") },
		"tampered":      func() ([]byte, error) { return box.Open(tampered, "cluster/a") },
		"short":         func() ([]byte, error) { return box.Open(sealed[:5], "cluster/a") },
		"empty":         func() ([]byte, error) { return box.Open(nil, "cluster/a") },
	} {
		if _, err := try(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: got %v, want ErrOpen", name, err)
		}
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

func TestLoadKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st, err)
	}
	k2, err := LoadKey("", dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatal("generated key not stable across loads")
	}
	raw := bytes.Repeat([]byte{0xab}, KeySize)
	for _, s := range []string{strings.Repeat("ab", KeySize), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw)} {
		k, err := LoadKey(s, dir)
		if err != nil || !bytes.Equal(k, raw) {
			t.Errorf("configured key %q: %v", s, err)
		}
	}
	for _, bad := range []string{"short", strings.Repeat("zz", KeySize), base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))} {
		if _, err := LoadKey(bad, dir); err == nil {
			t.Errorf("bad key %q accepted", bad)
		}
	}
}

// Derive keeps the derivation join-token digests were made with before it
// existed (HMAC-SHA256 of the label under the secret key), so tokens
// issued by an older Berth still verify; labels give independent keys.
func TestDerive(t *testing.T) {
	key := bytes.Repeat([]byte{9}, KeySize)
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("berth join-token digests"))
	if got := box.Derive("berth join-token digests"); !bytes.Equal(got, mac.Sum(nil)) {
		t.Fatalf("Derive = %x, want %x", got, mac.Sum(nil))
	}
	if bytes.Equal(box.Derive("a"), box.Derive("b")) {
		t.Fatal("two purposes share a key")
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if bytes.Equal(box.Derive("a"), other.Derive("a")) {
		t.Fatal("two secret keys derive the same key")
	}
}
