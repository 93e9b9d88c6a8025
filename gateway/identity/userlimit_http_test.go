package identity_test

import (
	"testing"
	"time"
)

// Rate limits apply per user as well as per key: every API key has its
// own bucket, and all of a user's credentials also share the user's, so
// minting keys does not multiply a user's allowance.
func TestAPIRateLimitPerUserAcrossKeys(t *testing.T) {
	ag := startAuth(t, map[string]string{
		"BERTH_RATE_LIMITS_API_REQUESTS":      "3",
		"BERTH_RATE_LIMITS_API_PER":           "1m",
		"BERTH_RATE_LIMITS_API_BURST":         "3",
		"BERTH_RATE_LIMITS_API_USER_REQUESTS": "4",
		"BERTH_RATE_LIMITS_API_USER_PER":      "1m",
		"BERTH_RATE_LIMITS_API_USER_BURST":    "4",
	})
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	ivy := ag.CreateUser(t, admin, "ivy", "ivy-password-123")
	newKey := func(name string) string {
		k := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": name, "user_id": ivy.ID}, bearer(admin))).Key
		ag.secret(k)
		return k
	}
	k1, k2 := newKey("one"), newKey("two")
	ag.clock.Advance(time.Minute) // the admin's three requests are forgotten

	for i := 0; i < 3; i++ {
		ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(k1))
	}
	// k1's own bucket is empty.
	ag.must(t, 429, "GET", "/api/v1/auth/me", nil, bearer(k1))
	// k2 has two of its own left, but ivy has only one.
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(k2))
	status, body, hdr := ag.call(t, "GET", "/api/v1/auth/me", nil, bearer(k2))
	if e := decodeError(t, body); status != 429 || e.Error != "rate_limited" || hdr.Get("Retry-After") != "15" {
		t.Fatalf("second key past the user's limit: %d %s Retry-After=%q", status, body, hdr.Get("Retry-After"))
	}
	// Ivy's own sign-in shares the bucket too.
	tok := ag.Login(t, "ivy", "ivy-password-123").AccessToken
	ag.must(t, 429, "GET", "/api/v1/auth/me", nil, bearer(tok))
	// Another user is not touched.
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(admin))
	// A quarter minute later the user has one more.
	ag.clock.Advance(15 * time.Second)
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(k2))
	ag.must(t, 429, "GET", "/api/v1/auth/me", nil, bearer(tok))
}
