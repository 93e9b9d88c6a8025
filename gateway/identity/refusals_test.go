package identity

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An expired or revoked credential is refused with the precise error,
// which is still ErrUnauthenticated; an unknown one with the plain one.
func TestRefusalsArePrecise(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   string // "token" or "api_key"
		change func(e *grantEnv)
		want   error
	}{
		{"token after logout", "token", func(e *grantEnv) {
			p, err := e.s.VerifyAccessToken(e.token)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.s.Logout(context.Background(), p, Meta{}); err != nil {
				t.Fatal(err)
			}
		}, ErrRevoked},
		{"token past its life", "token", func(e *grantEnv) { *e.now = e.now.Add(61 * time.Minute) }, ErrExpired},
		{"API key past expires_at", "api_key", func(e *grantEnv) { *e.now = e.now.Add(5 * time.Hour) }, ErrExpired},
		{"API key still remembered as expired", "api_key", func(e *grantEnv) { *e.now = e.now.Add(4*time.Hour + ExpiredKeyMemory - time.Minute) }, ErrExpired},
		{"API key forgotten after ExpiredKeyMemory", "api_key", func(e *grantEnv) { *e.now = e.now.Add(4*time.Hour + ExpiredKeyMemory + time.Minute) }, ErrUnauthenticated},
		{"API key revoked (deleted)", "api_key", func(e *grantEnv) {
			if err := e.s.RevokeAPIKey(context.Background(), grantAdmin, e.apiKeyID, Meta{}); err != nil {
				t.Fatal(err)
			}
		}, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newGrantEnv(t)
			if _, err := e.verify(tc.kind); err != nil {
				t.Fatalf("before: %v", err)
			}
			tc.change(e)
			_, err := e.verify(tc.kind)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			if tc.want == ErrUnauthenticated && (errors.Is(err, ErrExpired) || errors.Is(err, ErrRevoked)) {
				t.Fatalf("%v says more than it knows", err)
			}
		})
	}
}
