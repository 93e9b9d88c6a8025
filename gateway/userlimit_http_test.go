package gateway

import (
	"strings"
	"testing"
)

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
