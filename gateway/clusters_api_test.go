package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// caB64 is a real CA certificate (the gateway's own self-signed one will
// do: the API only checks it parses).
func caB64(ag *authGW) string { return base64.StdEncoding.EncodeToString(ag.CertificatePEM()) }

type clusterList struct {
	Total int `json:"total"`
}

func clusterCount(t *testing.T, ag *authGW, token string) int {
	t.Helper()
	var l clusterList
	json.Unmarshal(ag.must(t, 200, "GET", "/api/v1/clusters", nil, bearer(token)), &l)
	return l.Total
}

func TestClusterAPICredentialsAndMembership(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.login(t, "admin", adminPassword).AccessToken
	const token = "very-secret-cluster-token-42"
	ag.secret(token) // scanned for in logs, audit and the store at cleanup
	// Registration probes the cluster at once: the answer already says
	// nothing listens on port 1.
	created := ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "prod", "display_name": "Production", "server": "https://127.0.0.1:1", "token": token,
		"certificate_authority_data": caB64(ag), "labels": map[string]string{"env": "prod"},
	}, bearer(admin))
	if strings.Contains(string(created), token) || !strings.Contains(string(created), `"auth_type":"token"`) || !strings.Contains(string(created), `"connection_status":"unreachable"`) {
		t.Fatalf("create answer: %s", created)
	}
	for _, path := range []string{"/api/v1/clusters", "/api/v1/clusters/prod"} {
		if body := ag.must(t, 200, "GET", path, nil, bearer(admin)); strings.Contains(string(body), token) || strings.Contains(string(body), "sealed") {
			t.Errorf("%s shows credentials: %s", path, body)
		}
	}
	// Updating without credentials keeps them; the test endpoint reports
	// the cluster unreachable (nothing listens on port 1).
	upd := ag.must(t, 200, "PUT", "/api/v1/clusters/prod", map[string]any{"description": "edge site"}, bearer(admin))
	if !strings.Contains(string(upd), `"auth_type":"token"`) || !strings.Contains(string(upd), "edge site") {
		t.Errorf("update: %s", upd)
	}
	res := ag.must(t, 200, "POST", "/api/v1/clusters/prod/test", nil, bearer(admin))
	if !strings.Contains(string(res), `"reachable":false`) || !strings.Contains(string(res), "connection refused") {
		t.Errorf("test: %s", res)
	}
	if body := ag.must(t, 200, "GET", "/api/v1/clusters/prod", nil, bearer(admin)); !strings.Contains(string(body), `"connection_status":"unreachable"`) {
		t.Errorf("status after test: %s", body)
	}

	// Membership: a plain user sees nothing until granted, then sees the
	// cluster with the role; groups count too.
	ag.createUser(t, admin, "dora", "dora-password-123", "user")
	dora := ag.login(t, "dora", "dora-password-123").AccessToken
	if n := clusterCount(t, ag, dora); n != 0 {
		t.Errorf("non-member lists %d clusters", n)
	}
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v1/clusters/prod", nil, 404},
		{"POST", "/api/v1/clusters", map[string]any{"name": "mine", "server": "https://h:1", "token": "t"}, 403},
		{"DELETE", "/api/v1/clusters/prod", nil, 403},
		{"POST", "/api/v1/clusters/prod/kubeconfig", nil, 404},
	} {
		if status, body, _ := ag.call(t, c.method, c.path, c.body, bearer(dora)); status != c.want {
			t.Errorf("dora %s %s: %d %s, want %d", c.method, c.path, status, body, c.want)
		}
	}
	for _, bad := range []map[string]any{
		{"user": "nobody", "role": "view"},
		{"user": "dora", "role": "root"},
		{"user": "dora", "group": "g", "role": "view"},
		{"role": "view"},
	} {
		if status, _, _ := ag.call(t, "POST", "/api/v1/clusters/prod/members", bad, bearer(admin)); status != 400 {
			t.Errorf("member %v: %d, want 400", bad, status)
		}
	}
	m := decode[struct{ ID string }](t, ag.must(t, 201, "POST", "/api/v1/clusters/prod/members", map[string]any{"user": "dora", "role": "edit"}, bearer(admin)))
	body := ag.must(t, 200, "GET", "/api/v1/clusters/prod", nil, bearer(dora))
	if !strings.Contains(string(body), `"role":"edit"`) {
		t.Errorf("member view: %s", body)
	}
	if n := clusterCount(t, ag, dora); n != 1 {
		t.Errorf("member lists %d clusters", n)
	}
	ag.must(t, 204, "DELETE", "/api/v1/clusters/prod/members/"+m.ID, nil, bearer(admin))
	if status, _, _ := ag.call(t, "GET", "/api/v1/clusters/prod", nil, bearer(dora)); status != 404 {
		t.Errorf("after revoke: %d", status)
	}

	// Delete: gone from the API and from the proxy.
	ag.must(t, 204, "DELETE", "/api/v1/clusters/prod", nil, bearer(admin))
	if status, _, _ := ag.call(t, "GET", "/proxy/clusters/prod/api/v1/namespaces", nil, bearer(admin)); status != 404 {
		t.Errorf("proxy to a deleted cluster: %d", status)
	}
	if !ag.hasEvent(t, "cluster", "cluster.create", "success") || !ag.hasEvent(t, "cluster", "cluster.delete", "success") {
		t.Error("cluster changes not audited")
	}
	// The delete is soft: the record stays for history, without its
	// credentials or members, and hidden from every read.
	ag.must(t, 404, "DELETE", "/api/v1/clusters/prod", nil, bearer(admin))
	ag.must(t, 404, "PUT", "/api/v1/clusters/prod", map[string]any{"display_name": "back"}, bearer(admin))
	ag.must(t, 404, "GET", "/api/v1/clusters/prod/members", nil, bearer(admin))
	ag.must(t, 404, "POST", "/api/v1/clusters/prod/members", map[string]any{"user": "dora", "role": "view"}, bearer(admin))
	if n := clusterCount(t, ag, admin); n != 0 {
		t.Errorf("admin lists %d clusters after the delete", n)
	}
	var dump bytes.Buffer
	if err := ag.db.Backup(&dump); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump.Bytes(), []byte(`"name":"prod"`)) || !bytes.Contains(dump.Bytes(), []byte(`"status":"deleted"`)) {
		t.Error("the deleted cluster's record is gone: no history left")
	}
	// Its name may be used again.
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "prod", "server": "https://127.0.0.1:2", "token": "t-prod-2", "certificate_authority_data": caB64(ag)}, bearer(admin))
	ag.secret("t-prod-2")
	if body := ag.must(t, 200, "GET", "/api/v1/clusters/prod/members", nil, bearer(admin)); strings.Contains(string(body), "dora") {
		t.Errorf("members of the deleted cluster came back: %s", body)
	}
	// A registered cluster cannot be reshaped, and the refusal changes
	// nothing else the body asked for.
	if status, body, _ := ag.call(t, "PUT", "/api/v1/clusters/prod", map[string]any{"display_name": "renamed", "provision": map[string]any{"workers": map[string]string{"cpu": "2"}}}, bearer(admin)); status != 400 || !strings.Contains(string(body), "registered, not provisioned") {
		t.Errorf("reshape a registered cluster: %d %s", status, body)
	}
	if body := ag.must(t, 200, "GET", "/api/v1/clusters/prod", nil, bearer(admin)); strings.Contains(string(body), "renamed") || !strings.Contains(string(body), `"status":"ready"`) {
		t.Errorf("after a refused reshape: %s", body)
	}
	// Without a provisioner configured, provisioning is refused clearly.
	if status, body, _ := ag.call(t, "POST", "/api/v1/clusters", map[string]any{"name": "made", "provision": map[string]any{}}, bearer(admin)); status != 400 || !strings.Contains(string(body), "provisioner") {
		t.Errorf("provision without a provisioner: %d %s", status, body)
	}
}

// Proxied traffic is limited per principal: over the limit is a Kubernetes
// Status 429 with Retry-After, and the cluster is never reached.
func TestProxyRateLimitPerPrincipal(t *testing.T) {
	ag := startAuth(t, map[string]string{
		"BERTH_RATE_LIMITS_PROXY_REQUESTS": "1", "BERTH_RATE_LIMITS_PROXY_PER": "1h", "BERTH_RATE_LIMITS_PROXY_BURST": "2",
	})
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "rl", "server": "https://127.0.0.1:1", "token": "t-rl", "certificate_authority_data": caB64(ag)}, bearer(admin))
	ag.secret("t-rl")
	var codes []int
	var last http.Header
	var body []byte
	for i := 0; i < 3; i++ {
		var status int
		status, body, last = ag.call(t, "GET", "/proxy/clusters/rl/api/v1/namespaces", nil, bearer(admin))
		codes = append(codes, status)
	}
	// Two within the burst reach the (unreachable) cluster: 503.
	if codes[0] != 503 || codes[1] != 503 || codes[2] != 429 {
		t.Fatalf("codes %v, want [503 503 429]", codes)
	}
	if last.Get("Retry-After") == "" || !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), "TooManyRequests") {
		t.Errorf("429: Retry-After %q body %s", last.Get("Retry-After"), body)
	}
}
