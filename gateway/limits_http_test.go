package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// authLimits turns the default auth-scope limit (5 per 30 s) back on.
var authLimits = map[string]string{
	"BERTH_RATE_LIMITS_AUTH_REQUESTS": "5",
	"BERTH_RATE_LIMITS_AUTH_PER":      "30s",
	"BERTH_RATE_LIMITS_AUTH_BURST":    "5",
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestAuthRateLimitPerAddress(t *testing.T) {
	ag := startAuth(t, authLimits)
	bad := raw(`{}`) // refused after the limiter, without hashing anything
	for i := 0; i < 5; i++ {
		ag.must(t, 400, "POST", "/api/v1/auth/login", bad)
	}
	before := ag.state(t)
	// The sixth, on any auth endpoint, is refused with Retry-After.
	for _, path := range []string{"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/token", "/oauth/token"} {
		status, body, hdr := ag.call(t, "POST", path, bad)
		if e := decodeError(t, body); status != 429 || e.Error != "rate_limited" || hdr.Get("Retry-After") != "6" {
			t.Errorf("%s: %d %s Retry-After=%q", path, status, body, hdr.Get("Retry-After"))
		}
	}
	ag.must(t, 429, "GET", "/api/v1/cube/key/token?accessKey=a&secretKey=b", nil)
	// A correct password does not get past the limit either.
	ag.must(t, 429, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": adminPassword})
	// Spoofing X-Forwarded-For or X-Real-IP from an untrusted peer changes
	// nothing: the real address is limited.
	ag.must(t, 429, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "203.0.113.77"))
	ag.must(t, 429, "POST", "/api/v1/auth/login", bad, header("X-Real-IP", "203.0.113.78"))
	if ag.state(t) != before {
		t.Error("rate-limited requests changed state")
	}
	if n := ag.limiter.Keys(ratelimit.ScopeAuth); n != 1 {
		t.Errorf("spoofed headers made %d buckets, want 1", n)
	}
	// Other routes are not in the auth scope.
	ag.must(t, 200, "GET", "/healthz", nil)
	// Six seconds later one more token is there.
	ag.clock.Advance(6 * time.Second)
	ag.must(t, 400, "POST", "/api/v1/auth/login", bad)
	ag.must(t, 429, "POST", "/api/v1/auth/login", bad)
}

func TestTrustedProxyForwardedFor(t *testing.T) {
	ag := startAuth(t, merge(authLimits, map[string]string{"BERTH_TRUSTED_PROXIES": "127.0.0.1/32"}))
	bad := raw(`{}`)
	for i := 0; i < 5; i++ {
		ag.must(t, 400, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "198.51.100.1"))
	}
	ag.must(t, 429, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "198.51.100.1"))
	// A client-written left part cannot dodge: the rightmost untrusted hop
	// is the key.
	ag.must(t, 429, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "10.9.9.9, 198.51.100.1"))
	// Another client behind the same proxy has its own bucket.
	ag.must(t, 400, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "198.51.100.2"))
	// The audit and login history see the real client.
	ag.must(t, 401, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": "wrong-password-1"}, header("X-Forwarded-For", "198.51.100.3"))
	ag.secret("wrong-password-1")
	evs := ag.auditEvents(t, audit.Query{Action: "login", Limit: 1})
	if len(evs) != 1 || evs[0].ClientIP != "198.51.100.3" {
		t.Errorf("audit client address: %+v", evs)
	}
	// IPv6 clients share the bucket of their /64.
	for i := 0; i < 5; i++ {
		ag.must(t, 400, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1)))
	}
	ag.must(t, 429, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "2001:db8:1:2:ffff::9"))
	ag.must(t, 400, "POST", "/api/v1/auth/login", bad, header("X-Forwarded-For", "2001:db8:1:3::1"))
}

// A flood of distinct source addresses keeps the limiter at its bound.
func TestFloodOfAddressesStaysBounded(t *testing.T) {
	ag := startAuth(t, merge(authLimits, map[string]string{"BERTH_TRUSTED_PROXIES": "127.0.0.1", "BERTH_RATE_LIMITS_MAX_KEYS": "100"}))
	for i := 0; i < 1500; i++ {
		addr := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		status, body, _ := ag.call(t, "POST", "/api/v1/auth/login", raw(`{}`), header("X-Forwarded-For", addr))
		if status != 400 {
			t.Fatalf("request %d from a fresh address: %d %s", i, status, body)
		}
	}
	if n := ag.limiter.Keys(ratelimit.ScopeAuth); n > 100 {
		t.Fatalf("%d buckets after the flood, bound is 100", n)
	}
}

func TestAPIRateLimitPerPrincipal(t *testing.T) {
	ag := startAuth(t, map[string]string{
		"BERTH_RATE_LIMITS_API_REQUESTS": "3",
		"BERTH_RATE_LIMITS_API_PER":      "1m",
		"BERTH_RATE_LIMITS_API_BURST":    "3",
	})
	admin := ag.login(t, "admin", adminPassword).AccessToken
	// Creating ivy uses one of the admin's three requests a minute.
	ag.createUser(t, admin, "ivy", "ivy-password-123")
	ivy := ag.login(t, "ivy", "ivy-password-123").AccessToken
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
	fail := func(user string) (int, apiError) {
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
	if !ag.hasEvent(t, "session", "login", audit.ResultFailure) {
		t.Error("lockout refusals not audited")
	}
	// After the lock the right password works and clears the count.
	ag.clock.Advance(61 * time.Second)
	ag.login(t, "admin", adminPassword)
	for i := 0; i < 2; i++ {
		if status, _ := fail("admin"); status != 401 {
			t.Fatal("count not reset by the successful sign-in")
		}
	}
	ag.login(t, "admin", adminPassword)
	// The next failure after a lock locks again for twice as long.
	if status, _ := fail("ghost"); status != 401 {
		t.Fatalf("first failure after the lock: %d", status)
	}
	_, _, h := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "ghost", "password": "x-password-000"})
	if h.Get("Retry-After") != "120" {
		t.Errorf("second lock Retry-After=%q, want 120", h.Get("Retry-After"))
	}
}
