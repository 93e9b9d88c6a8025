package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/berthgw/berth/sdk"
)

// TestRedact: the last line of defence keeps an error's kind and drops
// every spelling of a secret from its message.
func TestRedact(t *testing.T) {
	ch := webhookChannel{}.info()
	settings := map[string]string{
		"url":     "https://hooks.example.com/x",
		"secret":  "hmac key/with+specials",
		"headers": `{"Authorization": "Bearer tok-123456"}`,
	}
	secrets := secretsOf(ch, settings)
	leaky := fmt.Errorf("post %s?k=%s: %s / %s: %w", "https://hooks.example.com/x", url.QueryEscape("hmac key/with+specials"),
		url.PathEscape("hmac key/with+specials"), "Bearer tok-123456", sdk.ErrRetryable)
	err := redact(leaky, secrets)
	if !errors.Is(err, sdk.ErrRetryable) {
		t.Errorf("redacted error lost its kind: %v", err)
	}
	for _, s := range []string{"hmac key/with+specials", url.QueryEscape("hmac key/with+specials"), url.PathEscape("hmac key/with+specials"), "tok-123456"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("redacted error still holds %q: %v", s, err)
		}
	}
	if !strings.Contains(err.Error(), "https://hooks.example.com/x") {
		t.Errorf("redaction removed a setting that is not secret: %v", err)
	}
	if errors.Unwrap(err) != nil {
		t.Error("the redacted error unwraps to the original message")
	}
	if clean := errors.New("nothing secret"); redact(clean, secrets) != clean {
		t.Error("an error without secrets was rewrapped")
	}
	if redact(nil, secrets) != nil {
		t.Error("redact(nil) is not nil")
	}
}

func TestPeerText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  channel_not_found\n", "channel_not_found"},
		{"a\r\nb\tc\x00d", "a b c d"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{"line\u2028sep", "line sep"},
	}
	for _, tt := range tests {
		if got := peerText([]byte(tt.in)); got != tt.want {
			t.Errorf("peerText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := peerText([]byte(strings.Repeat("é", 1000)))
	if len(long) > maxPeerText+len("…") || !strings.HasSuffix(long, "…") || !utf8.ValidString(long) {
		t.Errorf("long text cut to %d bytes: %.40q", len(long), long)
	}
}
