package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// tokenKubeconfig writes a kubeconfig that reaches cluster through Berth's
// HTTPS listener with token, as a user would hold one, and returns its
// path.
func (e *e2eCluster) tokenKubeconfig(t *testing.T, name, cluster, token string) string {
	t.Helper()
	path := filepath.Join(e.dir, name+".kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: c
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
`, e.https+"/proxy/clusters/"+cluster, base64.StdEncoding.EncodeToString(e.CertificatePEM()), token)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectlFails runs kubectl, which must fail, and returns what it printed.
func (e *e2eCluster) kubectlFails(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := e.kubectl(t, kubeconfig, "", args...)
	if err == nil {
		t.Fatalf("kubectl %s succeeded: %s", strings.Join(args, " "), out)
	}
	return out
}

// A cluster that does not exist and one the caller is not a member of get
// the same answer, 404 as on the management API, and real kubectl prints
// its message, which says what to do, even while it is still discovering
// the API (where client-go replaces a 404's message with its own).
func TestProxyUnknownAndNonMemberLookAlike(t *testing.T) {
	e := startE2E(t)
	e.createUser(t, e.admin, "carol", "carol-password-1234", "user")
	carol := e.login(t, "carol", "carol-password-1234").AccessToken
	e.secret(carol)

	type answer struct {
		code          int
		body, warning string
	}
	ask := func(cluster, token string) answer {
		status, body, hdr := e.call(t, "GET", "/proxy/clusters/"+cluster+"/api/v1/namespaces", nil, bearer(token))
		// The name is the caller's own input; everything else must match.
		return answer{status, strings.ReplaceAll(string(body), cluster, "NAME"), strings.ReplaceAll(hdr.Get("Warning"), cluster, "NAME")}
	}
	nonMember, unknown, adminUnknown := ask("e2e", carol), ask("nope", carol), ask("nope", e.admin)
	if nonMember != unknown || unknown != adminUnknown {
		t.Errorf("answers differ:\nnon-member %+v\nunknown    %+v\nadmin      %+v", nonMember, unknown, adminUnknown)
	}
	if nonMember.code != 404 || !strings.Contains(nonMember.body, `"reason":"NotFound"`) ||
		!strings.Contains(nonMember.body, "ask a Berth admin") || !strings.HasPrefix(nonMember.warning, `299 - "cluster \"NAME\" not found, or you are not a member of it`) {
		t.Errorf("non-member: %+v", nonMember)
	}

	for _, cluster := range []string{"e2e", "nope"} {
		// A fresh discovery cache: kubectl discovers first, as on a first
		// use of the kubeconfig.
		out := e.kubectlFails(t, e.tokenKubeconfig(t, "carol-"+cluster, cluster, carol), "get", "pods")
		want := fmt.Sprintf("Warning: cluster %q not found, or you are not a member of it: check the cluster name", cluster)
		if !strings.Contains(out, want) || !strings.Contains(out, "ask a Berth admin to add you") {
			t.Errorf("kubectl get pods on %s as a non-member:\n%s", cluster, out)
		}
	}
}

// An expired or revoked credential says so through kubectl, and what to do.
func TestProxyExpiredAndRevokedCredentialsSaySo(t *testing.T) {
	e := startE2E(t)
	e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "bob", "role": "view"}, bearer(e.admin))

	// Revoked: bob signs out, and his access token goes with the session.
	bob := e.login(t, "bob", "bob-password-12345").AccessToken
	e.secret(bob)
	revoked := e.tokenKubeconfig(t, "bob-token", "e2e", bob)
	e.mustKubectl(t, revoked, "", "auth", "whoami")
	e.must(t, 204, "POST", "/api/v1/auth/logout", nil, bearer(bob))
	out := e.kubectlFails(t, revoked, "get", "pods")
	if !strings.Contains(out, "your credential was revoked") || !strings.Contains(out, "download a new kubeconfig from Berth (POST /api/v1/clusters/e2e/kubeconfig)") {
		t.Errorf("kubectl with a signed-out token:\n%s", out)
	}

	// Expired: the downloaded kubeconfig's key outlives its 30 days.
	bob = e.login(t, "bob", "bob-password-12345").AccessToken
	kc := e.kubeconfigFor(t, "bob", bob)
	e.mustKubectl(t, kc, "", "auth", "whoami")
	e.clock.Advance(31 * 24 * time.Hour)
	out = e.kubectlFails(t, kc, "get", "pods")
	if !strings.Contains(out, "your credential has expired") || !strings.Contains(out, "download a new kubeconfig from Berth (POST /api/v1/clusters/e2e/kubeconfig)") {
		t.Errorf("kubectl with an expired key:\n%s", out)
	}
	// An unknown token is not told more than that.
	status, body, _ := e.call(t, "GET", "/proxy/clusters/e2e/api", nil, bearer("garbage-token"))
	if status != 401 || !strings.Contains(string(body), "invalid, expired or revoked credentials") {
		t.Errorf("garbage token: %d %s", status, body)
	}
}

// The kubeconfig download: minted by POST only, pointing at Berth's
// configured address whatever Host the request named, replacing the key
// of the kubeconfig made before; and Berth's certificate at /ca.crt.
func TestKubeconfigDownloadEndToEnd(t *testing.T) {
	e := startE2E(t)

	status, body, hdr := e.call(t, "GET", "/api/v1/clusters/e2e/kubeconfig", nil, bearer(e.admin))
	if status != 405 || hdr.Get("Allow") != "POST" || !strings.Contains(string(body), "POST /api/v1/clusters/e2e/kubeconfig") {
		t.Errorf("GET kubeconfig: %d %q %s", status, hdr.Get("Allow"), body)
	}
	keys := func() []apiKeyOut { // the admin's, but for the e2e scraper's key
		var out []apiKeyOut
		for _, k := range decode[struct{ Items []apiKeyOut }](t, e.must(t, 200, "GET", "/api/v1/auth/api-keys", nil, bearer(e.admin))).Items {
			if k.Name != "metrics" {
				out = append(out, k)
			}
		}
		return out
	}
	if n := len(keys()); n != 0 {
		t.Fatalf("a GET left %d API keys", n)
	}

	// Host names an attacker's server: the kubeconfig ignores it.
	req, _ := http.NewRequest("POST", e.http+"/api/v1/clusters/e2e/kubeconfig", nil)
	req.Host = "evil.example"
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, data := e.do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("POST kubeconfig: %d %s", resp.StatusCode, data)
	}
	e.secret(kubeconfigToken(t, data))
	if strings.Contains(string(data), "evil.example") || !strings.Contains(string(data), "server: "+e.https+"/proxy/clusters/e2e\n") {
		t.Errorf("kubeconfig server with Host: evil.example:\n%s", data)
	}
	first := filepath.Join(e.dir, "first.kubeconfig")
	os.WriteFile(first, data, 0o600)
	if out := e.mustKubectl(t, first, "", "get", "namespaces"); !strings.Contains(out, "kube-system") {
		t.Fatalf("first kubeconfig: %s", out)
	}

	// Downloading again replaces the key: the first file stops working,
	// the second works, and one kubeconfig key is left.
	second := e.kubeconfigFor(t, "second", e.admin)
	if out := e.kubectlFails(t, first, "get", "namespaces"); !strings.Contains(out, "download a new kubeconfig") {
		t.Errorf("the replaced kubeconfig: %s", out)
	}
	e.mustKubectl(t, second, "", "get", "namespaces")
	if ks := keys(); len(ks) != 1 || ks[0].Name != "kubeconfig e2e" {
		t.Errorf("API keys after two downloads: %+v", ks)
	}
	if !e.hasEvent(t, "api_key", "revoke", "success") {
		t.Error("replacing the kubeconfig key left no audit event")
	}

	// /ca.crt: unauthenticated, Berth's own certificate, enough to verify
	// its HTTPS listener.
	resp, pemData := e.get(t, e.http+"/ca.crt")
	if resp.StatusCode != 200 || string(pemData) != string(e.CertificatePEM()) {
		t.Fatalf("/ca.crt: %d %q", resp.StatusCode, pemData)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("/ca.crt holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	hres, err := client.Get(e.https + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS with the certificate from /ca.crt: %v", err)
	}
	hres.Body.Close()
}

// Registration checks what the gateway's identity may do, at once: a
// ServiceAccount with no RBAC is reachable but cannot impersonate, which
// the answer says with what to do; once deploy/rbac is applied for it,
// the test says all is well and kubectl works through Berth.
func TestRegistrationChecksPermissionsEndToEnd(t *testing.T) {
	e := startE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := e.env.Kubectl(ctx, "-n", "kube-system", "create", "serviceaccount", "berth-gw"); err != nil {
		t.Fatalf("create serviceaccount: %v\n%s", err, out)
	}
	tok, err := e.env.Kubectl(ctx, "-n", "kube-system", "create", "token", "berth-gw", "--duration=1h")
	if err != nil {
		t.Fatalf("create token: %v\n%s", err, tok)
	}
	saToken := strings.TrimSpace(string(tok))
	e.secret(saToken)

	type perms struct {
		ImpersonateUsers  bool `json:"impersonate_users"`
		ImpersonateGroups bool `json:"impersonate_groups"`
		ImpersonateExtras bool `json:"impersonate_extras"`
		ListNodes         bool `json:"list_nodes"`
		ImpersonatorExtra bool `json:"impersonator_extra"`
	}
	type cluster struct {
		ConnectionStatus  string `json:"connection_status"`
		KubernetesVersion string `json:"kubernetes_version"`
		LastError         string `json:"last_error"`
		Permissions       *perms `json:"permissions"`
	}
	// The answer to the POST itself already holds the probe's result.
	bare := decode[cluster](t, e.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "bare", "server": e.env.Server, "token": saToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(e.env.CAData),
	}, bearer(e.admin)))
	if bare.ConnectionStatus != "error" || bare.KubernetesVersion != kubeenv.Version || bare.Permissions == nil ||
		*bare.Permissions != (perms{}) || !strings.Contains(bare.LastError, "apply deploy/rbac/berth-rbac.yaml") ||
		!strings.Contains(bare.LastError, "impersonate users") {
		t.Errorf("registering an identity without RBAC: %+v %+v", bare, bare.Permissions)
	}

	manifest, err := os.ReadFile("../deploy/rbac/berth-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The manifest binds a user; the ServiceAccount's user name is its
	// own, and the binding name must not clash with startE2E's.
	rbac := strings.ReplaceAll(string(manifest), "BERTH_GATEWAY_USER", "system:serviceaccount:kube-system:berth-gw")
	rbac = strings.Replace(rbac, "kind: ClusterRoleBinding\nmetadata:\n  name: berth-impersonator", "kind: ClusterRoleBinding\nmetadata:\n  name: berth-impersonator-sa", 1)
	path := filepath.Join(e.dir, "rbac-sa.yaml")
	os.WriteFile(path, []byte(rbac), 0o600)
	if out, err := e.env.Kubectl(ctx, "apply", "-f", path); err != nil {
		t.Fatalf("apply rbac: %v\n%s", err, out)
	}
	type testResult struct {
		Reachable        bool   `json:"reachable"`
		ConnectionStatus string `json:"connection_status"`
		Error            string `json:"error"`
		Permissions      *perms `json:"permissions"`
	}
	all := perms{true, true, true, true, true}
	tr := decode[testResult](t, e.must(t, 200, "POST", "/api/v1/clusters/bare/test", nil, bearer(e.admin)))
	if !tr.Reachable || tr.ConnectionStatus != "reachable" || tr.Error != "" || tr.Permissions == nil || *tr.Permissions != all {
		t.Errorf("test after applying the RBAC: %+v %+v", tr, tr.Permissions)
	}
	got := decode[cluster](t, e.must(t, 200, "GET", "/api/v1/clusters/bare", nil, bearer(e.admin)))
	if got.ConnectionStatus != "reachable" || got.LastError != "" || got.Permissions == nil || *got.Permissions != all {
		t.Errorf("cluster after the test: %+v", got)
	}
	// And a good identity registers reachable with every permission at once.
	good := decode[cluster](t, e.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "good", "server": e.env.Server, "token": e.env.UserToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(e.env.CAData),
	}, bearer(e.admin)))
	if good.ConnectionStatus != "reachable" || good.Permissions == nil || *good.Permissions != all {
		t.Errorf("registering a good identity: %+v", good)
	}
	kc := e.tokenKubeconfig(t, "admin-bare", "bare", e.admin)
	if out := e.mustKubectl(t, kc, "", "get", "namespaces"); !strings.Contains(out, "kube-system") {
		t.Errorf("kubectl through the fixed cluster: %s", out)
	}
}

// Members: user is a username or an id; a second grant for the same user
// is 409 naming the PUT that changes a role; the PUT changes what the
// cluster sees.
func TestMembersRoleChangeIsExplicit(t *testing.T) {
	e := startE2E(t)
	bobUser := e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	m := decode[struct{ ID, Subject, Name, Role string }](t, e.must(t, 201, "POST", "/api/v1/clusters/e2e/members",
		map[string]any{"user": "bob", "role": "view"}, bearer(e.admin)))
	if m.Subject != bobUser.ID || m.Name != "bob" || m.Role != "view" {
		t.Errorf("member by username: %+v", m)
	}
	for _, user := range []string{"bob", bobUser.ID} {
		status, body, _ := e.call(t, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": user, "role": "cluster-admin"}, bearer(e.admin))
		if status != 409 || !strings.Contains(string(body), "PUT /api/v1/clusters/e2e/members/"+m.ID) {
			t.Errorf("second grant for %s: %d %s", user, status, body)
		}
	}
	bob := e.login(t, "bob", "bob-password-12345").AccessToken
	kc := e.kubeconfigFor(t, "bob", bob)
	if who := e.mustKubectl(t, kc, "", "auth", "whoami", "-o", "json"); !strings.Contains(who, `"berth:role:view"`) {
		t.Fatalf("bob after the refused grant: %s", who)
	}
	for _, bad := range []struct {
		id   string
		body any
		code int
	}{
		{m.ID, map[string]any{"role": "root"}, 400},
		{m.ID, map[string]any{"role": "edit", "user": "carol"}, 400},
		{"mbr_nope", map[string]any{"role": "edit"}, 404},
	} {
		if status, body, _ := e.call(t, "PUT", "/api/v1/clusters/e2e/members/"+bad.id, bad.body, bearer(e.admin)); status != bad.code {
			t.Errorf("PUT %s %v: %d %s, want %d", bad.id, bad.body, status, body, bad.code)
		}
	}
	changed := decode[struct{ ID, Role string }](t, e.must(t, 200, "PUT", "/api/v1/clusters/e2e/members/"+m.ID, map[string]any{"role": "edit"}, bearer(e.admin)))
	if changed.ID != m.ID || changed.Role != "edit" {
		t.Errorf("PUT role: %+v", changed)
	}
	if who := e.mustKubectl(t, kc, "", "auth", "whoami", "-o", "json"); !strings.Contains(who, `"berth:role:edit"`) || strings.Contains(who, `"berth:role:view"`) {
		t.Errorf("bob after the PUT: %s", who)
	}
}
