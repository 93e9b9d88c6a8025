package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
)

// scrape reads /metrics as Prometheus would, with token.
func (tg *testGateway) scrape(t *testing.T, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tg.http+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, body := tg.do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	return resp, body
}

// loginToken signs in and returns the access token.
func (tg *testGateway) loginToken(t *testing.T, username, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	req, _ := http.NewRequest(http.MethodPost, tg.http+"/api/v1/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, data := tg.do(t, req)
	var tp tokenPair
	if resp.StatusCode != 200 || json.Unmarshal(data, &tp) != nil || tp.AccessToken == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, data)
	}
	return tp.AccessToken
}

// /metrics names every cluster, so it is served only to a principal with
// metrics:read: a scraper's API key (docs/operating.md), or an admin.
func TestMetricsNeedPermission(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "acme-prod-eu", "server": "https://127.0.0.1:1", "token": "t-acme", "certificate_authority_data": caB64(ag)}, bearer(admin))
	ag.secret("t-acme")
	ag.call(t, "GET", "/proxy/clusters/acme-prod-eu/api/v1/namespaces", nil, bearer(admin)) // a per-cluster series

	status, body, hdr := ag.call(t, "GET", "/metrics", nil)
	if status != 401 || hdr.Get("WWW-Authenticate") == "" || strings.Contains(string(body), "acme-prod-eu") {
		t.Fatalf("anonymous /metrics: %d %s", status, body)
	}
	ag.createUser(t, admin, "olga", "olga-password-1")
	olga := ag.login(t, "olga", "olga-password-1").AccessToken
	if status, body, _ := ag.call(t, "GET", "/metrics", nil, bearer(olga)); status != 403 || strings.Contains(string(body), "acme-prod-eu") {
		t.Fatalf("/metrics for a user without metrics:read: %d %s", status, body)
	}

	// The documented scraper set-up: a role with metrics:read, a user in
	// it, and an API key narrowed to metrics:read.
	ag.must(t, 201, "POST", "/api/v1/roles", map[string]any{"name": "metrics-scraper", "permissions": []string{"metrics:read"}}, bearer(admin))
	ag.createUser(t, admin, "prometheus", "prometheus-pass-1", "metrics-scraper")
	prom := ag.login(t, "prometheus", "prometheus-pass-1").AccessToken
	key := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "scrape", "scopes": []string{"metrics:read"}}, bearer(prom))).Key
	ag.secret(key)
	_, m := ag.scrape(t, key)
	if !strings.Contains(string(m), `berth_proxy_requests_total{cluster="acme-prod-eu"`) {
		t.Errorf("the scraper's key does not see the per-cluster metrics:\n%.2000s", m)
	}
	// The scraper's key reaches nothing else.
	ag.must(t, 403, "GET", "/api/v1/users", nil, bearer(key))
	ag.must(t, 403, "GET", "/api/v1/clusters/acme-prod-eu", nil, bearer(key))
}

// Methods outside GET HEAD POST PUT PATCH DELETE OPTIONS are refused with
// 405 before anything else runs — before authentication, on the proxy as
// on the API — so invented methods cannot reach a cluster, the audit log
// or a metrics label. Before, each invented method proxied to a cluster
// added a series to /metrics.
func TestUnknownMethodsRefusedFirst(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "rl", "server": "https://127.0.0.1:1", "token": "t-rl", "certificate_authority_data": caB64(ag)}, bearer(admin))
	ag.secret("t-rl")
	// Fixed methods reach the cluster (unreachable: 503) and are counted.
	ag.must(t, 503, "GET", "/proxy/clusters/rl/api/v1/namespaces", nil, bearer(admin))
	_, before := ag.scrape(t, admin)
	state := ag.state(t)
	audited := len(ag.auditEvents(t, audit.Query{}))

	send := func(method, path string, opts ...opt) (int, []byte, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, ag.http+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			o(req)
		}
		resp, body := ag.do(t, req)
		return resp.StatusCode, body, resp.Header
	}
	const allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
	methods := []string{"TRACE", "get", "Delete", "PROPFIND"}
	for i := range 200 {
		methods = append(methods, fmt.Sprintf("INVENTED%03d", i))
	}
	for _, m := range methods {
		for _, o := range [][]opt{{bearer(admin)}, nil} {
			status, body, hdr := send(m, "/proxy/clusters/rl/api/v1/namespaces", o...)
			if status != 405 || hdr.Get("Allow") != allow || !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), `"reason":"MethodNotAllowed"`) {
				t.Fatalf("%s on the proxy: %d %s Allow=%q", m, status, body, hdr.Get("Allow"))
			}
			status, body, hdr = send(m, "/api/v1/clusters", o...)
			if e := decodeError(t, body); status != 405 || e.Error != "method_not_allowed" || hdr.Get("Allow") != allow {
				t.Fatalf("%s on the API: %d %s", m, status, body)
			}
			if strings.Contains(string(body), m) {
				t.Fatalf("the method %s is echoed: %s", m, body)
			}
		}
	}
	// Unknown paths too: no route, no proxy, 405 first.
	if status, _, _ := send("INVENTED", "/nowhere"); status != 405 {
		t.Errorf("unknown method on an unknown path: %d", status)
	}

	_, after := ag.scrape(t, admin)
	if strings.Contains(string(after), "INVENTED") || strings.Contains(string(after), "PROPFIND") || strings.Contains(string(after), `method="get"`) {
		t.Error("an invented method reached a metrics label")
	}
	// The 405s add a handful of series (method "other"), not one per method.
	if grown := seriesCount(after) - seriesCount(before); grown > 60 {
		t.Errorf("/metrics grew by %d series for %d invented methods", grown, len(methods))
	}
	if ag.state(t) != state || len(ag.auditEvents(t, audit.Query{})) != audited {
		t.Error("refused methods changed state or wrote audit events")
	}
}

func seriesCount(metrics []byte) int {
	n := 0
	for _, l := range strings.Split(string(metrics), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}
