package identity_test

import (
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

func TestAPIRateLimitPerPrincipal(t *testing.T) {
	ag := startAuth(t, map[string]string{
		"BERTH_RATE_LIMITS_API_REQUESTS": "3",
		"BERTH_RATE_LIMITS_API_PER":      "1m",
		"BERTH_RATE_LIMITS_API_BURST":    "3",
	})
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	// Creating ivy uses one of the admin's three requests a minute.
	ag.CreateUser(t, admin, "ivy", "ivy-password-123")
	ivy := ag.Login(t, "ivy", "ivy-password-123").AccessToken
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(admin))
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(admin))
	status, body, hdr := ag.call(t, "GET", "/api/v1/auth/me", nil, bearer(admin))
	if status != 429 || hdr.Get("Retry-After") != "20" {
		t.Fatalf("over the API limit: %d %s Retry-After=%q", status, body, hdr.Get("Retry-After"))
	}
	// Ivy has her own bucket.
	for i := 0; i < 3; i++ {
		ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(ivy))
	}
	ag.must(t, 429, "GET", "/api/v1/auth/me", nil, bearer(ivy))
	// An API key is limited on its own, not with its owner's sessions.
	ag.clock.Advance(time.Minute)
	key := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "robot"}, bearer(ivy))).Key
	ag.secret(key)
	for i := 0; i < 3; i++ {
		ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(key))
	}
	ag.must(t, 429, "GET", "/api/v1/auth/me", nil, bearer(key))
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(ivy))
}

func TestAccountLockout(t *testing.T) {
	ag := startAuth(t, map[string]string{
		"BERTH_AUTH_LOCKOUT_MAX_FAILURES": "3",
		"BERTH_AUTH_LOCKOUT_DURATION":     "1m",
		"BERTH_AUTH_LOCKOUT_MAX_DURATION": "4m",
	})
	ag.secret("wrong-password-9")
	fail := func(user string) (int, apitest.APIError) {
		status, body, _ := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": user, "password": "wrong-password-9"})
		return status, decodeError(t, body)
	}
	for _, user := range []string{"admin", "ghost"} {
		for i := 0; i < 3; i++ {
			if status, e := fail(user); status != 401 {
				t.Fatalf("%s failure %d: %d %+v", user, i+1, status, e)
			}
		}
	}
	// Locked: the right password is refused too, and a known and an unknown
	// account answer the same.
	s1, b1, h1 := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": adminPassword})
	s2, b2, h2 := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "ghost", "password": adminPassword})
	e1, e2 := decodeError(t, b1), decodeError(t, b2)
	if s1 != 429 || s2 != 429 || e1.Message != e2.Message || h1.Get("Retry-After") != "60" || h2.Get("Retry-After") != "60" {
		t.Fatalf("locked answers: %d %+v %q / %d %+v %q", s1, e1, h1.Get("Retry-After"), s2, e2, h2.Get("Retry-After"))
	}
	// Case does not dodge the lock.
	ag.must(t, 429, "POST", "/api/v1/auth/login", map[string]any{"username": "ADMIN", "password": adminPassword})
	if !ag.HasEventOn(t, "session", "login", audit.ResultFailure) {
		t.Error("lockout refusals not audited")
	}
	// After the lock the right password works and clears the count.
	ag.clock.Advance(61 * time.Second)
	ag.Login(t, "admin", adminPassword)
	for i := 0; i < 2; i++ {
		if status, _ := fail("admin"); status != 401 {
			t.Fatal("count not reset by the successful sign-in")
		}
	}
	ag.Login(t, "admin", adminPassword)
	// The next failure after a lock locks again for twice as long.
	if status, _ := fail("ghost"); status != 401 {
		t.Fatalf("first failure after the lock: %d", status)
	}
	_, _, h := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "ghost", "password": "x-password-000"})
	if h.Get("Retry-After") != "120" {
		t.Errorf("second lock Retry-After=%q, want 120", h.Get("Retry-After"))
	}
}

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
