package gateway

import (
	"fmt"
	"strings"
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

// The proxy applies the per-user limit as well: a second API key of the
// same user is refused with a Kubernetes Status 429 once the user's
// bucket is empty, before the cluster is reached.
func TestProxyRateLimitPerUserAcrossKeys(t *testing.T) {
	ag := startAuth(t, map[string]string{
		"BERTH_RATE_LIMITS_PROXY_REQUESTS":      "5",
		"BERTH_RATE_LIMITS_PROXY_PER":           "1h",
		"BERTH_RATE_LIMITS_PROXY_BURST":         "5",
		"BERTH_RATE_LIMITS_PROXY_USER_REQUESTS": "3",
		"BERTH_RATE_LIMITS_PROXY_USER_PER":      "1h",
		"BERTH_RATE_LIMITS_PROXY_USER_BURST":    "3",
	})
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "rl", "server": "https://127.0.0.1:1", "token": "t-rl", "certificate_authority_data": caB64(ag)}, bearer(admin))
	ag.secret("t-rl")
	var keys []string
	for _, name := range []string{"one", "two"} {
		k := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": name}, bearer(admin))).Key
		ag.secret(k)
		keys = append(keys, k)
	}
	var codes []int
	var body []byte
	for _, k := range []string{keys[0], keys[0], keys[1], keys[1], admin} {
		var status int
		status, body, _ = ag.call(t, "GET", "/proxy/clusters/rl/api/v1/namespaces", nil, bearer(k))
		codes = append(codes, status)
	}
	// Three reach the (unreachable) cluster: 503; then the user is out,
	// whichever credential asks.
	want := []int{503, 503, 503, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	if !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), "TooManyRequests") {
		t.Errorf("429 body: %s", body)
	}
}

// The break-glass kubeconfig's password check draws from the sign-in
// budget of the client's address, so guessing passwords there meets the
// same 429; asking for a kubeconfig through Berth (no password) does not.
func TestBreakGlassPasswordIsRateLimited(t *testing.T) {
	ag := startAuth(t, authLimits)
	admin := ag.login(t, "admin", adminPassword).AccessToken // 1 of 5
	guess := map[string]any{"password": "not-the-password"}
	for range 4 {
		ag.must(t, 404, "POST", "/api/v1/clusters/nope/kubeconfig", guess, bearer(admin))
	}
	status, body, hdr := ag.call(t, "POST", "/api/v1/clusters/nope/kubeconfig", guess, bearer(admin))
	if e := decodeError(t, body); status != 429 || e.Error != "rate_limited" || hdr.Get("Retry-After") == "" {
		t.Errorf("sixth password check: %d %s Retry-After=%q", status, body, hdr.Get("Retry-After"))
	}
	ag.must(t, 404, "POST", "/api/v1/clusters/nope/kubeconfig", nil, bearer(admin))
}
