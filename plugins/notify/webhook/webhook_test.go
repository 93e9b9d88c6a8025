package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	secret := []byte("whsec-test")
	body := []byte(`{"subject":"Cluster ready","text":"edge-1","idempotency_key":"k1"}`)
	signedAt := time.Unix(1_700_000_000, 0)
	header := Sign(secret, body, signedAt)
	rotated := header + ",v1=" + strings.Repeat("ab", 32) // an old secret's signature beside it

	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   string // "" accepts; else in the error
	}{
		{"genuine", secret, header, body, signedAt.Add(30 * time.Second), ""},
		{"genuine, receiver clock behind", secret, header, body, signedAt.Add(-time.Minute), ""},
		{"two signatures, one matching", secret, rotated, body, signedAt, ""},
		{"keys in another order", secret, "v1=" + strings.Split(header, "v1=")[1] + ",t=" + strings.TrimPrefix(strings.Split(header, ",")[0], "t="), body, signedAt, ""},
		{"tampered body", secret, header, []byte(strings.Replace(string(body), "edge-1", "edge-2", 1)), signedAt, "does not match"},
		{"body re-encoded", secret, header, []byte(strings.ReplaceAll(string(body), ":", ": ")), signedAt, "does not match"},
		{"wrong secret", []byte("whsec-other"), header, body, signedAt, "does not match"},
		{"no secret", nil, header, body, signedAt, "no secret"},
		{"old timestamp", secret, header, body, signedAt.Add(DefaultTolerance + time.Second), "ago"},
		{"future timestamp", secret, header, body, signedAt.Add(-DefaultTolerance - time.Second), "future"},
		{"timestamp moved", secret, strings.Replace(header, "t=1700000000", "t=1700000100", 1), body, signedAt.Add(100 * time.Second), "does not match"},
		{"empty header", secret, "", body, signedAt, "malformed"},
		{"no timestamp", secret, "v1=" + strings.Split(header, "v1=")[1], body, signedAt, "lacks"},
		{"no signature", secret, "t=1700000000", body, signedAt, "lacks"},
		{"short signature", secret, "t=1700000000,v1=abcd", body, signedAt, "malformed v1"},
		{"not hex", secret, "t=1700000000,v1=" + strings.Repeat("zz", 32), body, signedAt, "malformed v1"},
		{"two timestamps", secret, header + ",t=1700000000", body, signedAt, "two timestamps"},
		{"bad timestamp", secret, "t=soon,v1=" + strings.Split(header, "v1=")[1], body, signedAt, "malformed timestamp"},
		{"GitHub header in its place", secret, SignHub(secret, body), body, signedAt, "lacks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, tt.now, DefaultTolerance)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want an ErrSignature saying %q", err, tt.want)
			}
		})
	}
}

// The format is fixed: receivers in other languages implement it from the
// documentation, so a change here must be a deliberate one.
func TestSignFormat(t *testing.T) {
	got := Sign([]byte("secret"), []byte(`{"a":1}`), time.Unix(1700000000, 0))
	// printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
	// printf '{"a":1}' | openssl dgst -sha256 -hmac secret
	want := "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if hub := SignHub([]byte("secret"), []byte(`{"a":1}`)); hub != "sha256=aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494" {
		t.Errorf("SignHub = %s", hub)
	}
}
