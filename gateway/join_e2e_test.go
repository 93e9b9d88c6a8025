package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
)

// csrYAML is a kubelet-style client certificate request.
func csrYAML(t *testing.T, name string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	req := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	return fmt.Sprintf(`apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: %s}
spec:
  request: %s
  signerName: kubernetes.io/kube-apiserver-client-kubelet
  usages: [digital signature, client auth]
`, name, req)
}

// A join token's script, run up to the kubelet's TLS bootstrap, carries a
// bootstrap token that authenticates to the real kube-apiserver as
// system:bootstrap:<id> and may create a CertificateSigningRequest, as a
// kubelet would; after revoke it cannot, and /join answers 404.
func TestJoinTokenEndToEnd(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	created := decode[struct {
		ID          string `json:"id"`
		Value       string `json:"value"`
		JoinCommand string `json:"join_command"`
	}](t, e.must(t, 201, "POST", "/api/v1/clusters/e2e/join-tokens", map[string]any{"ttl_seconds": 600, "max_uses": 3}, bearer(e.admin)))
	e.secret(created.Value)
	if !strings.HasPrefix(created.Value, created.ID+".") || !strings.Contains(created.JoinCommand, "/join?token=") || !strings.HasSuffix(created.JoinCommand, "| sh -") {
		t.Fatalf("created: %+v", created)
	}
	// The bootstrap token and discovery data are in the cluster.
	if out, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "secret", "bootstrap-token-"+created.ID); err != nil {
		t.Fatalf("bootstrap secret: %v %s", err, out)
	}
	if out, err := e.env.Kubectl(ctx, "-n", "kube-public", "get", "configmap", "cluster-info", "-o", "jsonpath={.data.kubeconfig}"); err != nil || !strings.Contains(string(out), e.env.Server) {
		t.Fatalf("cluster-info: %v %s", err, out)
	}
	// The list shows metadata, never the value.
	list := e.must(t, 200, "GET", "/api/v1/clusters/e2e/join-tokens", nil, bearer(e.admin))
	if strings.Contains(string(list), created.Value) || !strings.Contains(string(list), `"status":"active"`) || !strings.Contains(string(list), `"display_prefix":"`+created.ID+`."`) {
		t.Fatalf("list: %s", list)
	}

	// The script.
	req, _ := http.NewRequest("GET", e.http+"/join?token="+created.Value, nil)
	resp, script := e.do(t, req)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x-shellscript") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("/join: %d %v", resp.StatusCode, resp.Header)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "join.sh")
	os.WriteFile(path, script, 0o700)
	for _, check := range [][]string{{"sh", "-n", path}, {"shellcheck", "-s", "sh", path}} {
		if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", check[0], err, out)
		}
	}
	root := filepath.Join(dir, "node")
	run := exec.Command("sh", path)
	run.Env = append(os.Environ(), "BERTH_JOIN_ROOT="+root, "BERTH_JOIN_DRY_RUN=1")
	if out, err := run.CombinedOutput(); err != nil || strings.Contains(string(out), "not checked") {
		t.Fatalf("script: %v\n%s", err, out)
	}
	bootstrap := filepath.Join(root, "etc/kubernetes/bootstrap-kubelet.conf")

	// As a kubelet would: a CSR, made as system:bootstrap:<id>.
	e.mustKubectl(t, bootstrap, csrYAML(t, "edge-1"), "create", "-f", "-")
	user, err := e.env.Kubectl(ctx, "get", "csr", "edge-1", "-o", "jsonpath={.spec.username}")
	if err != nil || string(user) != "system:bootstrap:"+created.ID {
		t.Fatalf("CSR made by %q (%v), want system:bootstrap:%s", user, err, created.ID)
	}

	// Revoke (twice: idempotent); the token stops working in the cluster
	// and at /join.
	e.must(t, 204, "DELETE", "/api/v1/join-tokens/"+created.ID, nil, bearer(e.admin))
	e.must(t, 204, "DELETE", "/api/v1/join-tokens/"+created.ID, nil, bearer(e.admin))
	if out, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "secret", "bootstrap-token-"+created.ID); err == nil {
		t.Fatalf("bootstrap secret still there after revoke: %s", out)
	}
	// The API server reads bootstrap Secrets through an informer, so the
	// deletion reaches its authenticator a moment later: poll, bounded.
	// An unknown bootstrap token is either refused (401) or, with anonymous
	// access on, treated as system:anonymous and forbidden (403).
	refused, last := false, ""
	for i := 0; i < 60 && !refused; i++ {
		o, err := e.kubectl(t, bootstrap, csrYAML(t, fmt.Sprintf("edge-r%d", i)), "create", "--validate=false", "-f", "-")
		last = o
		refused = err != nil && (strings.Contains(o, "must be logged in") || strings.Contains(o, "provide credentials") || strings.Contains(o, "system:anonymous"))
		if !refused {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if !refused {
		t.Fatalf("revoked bootstrap token still authenticates after 30 s: %s", last)
	}
	if !e.hasEvent(t, "join_token", "join_token.revoke", audit.ResultSuccess) || !e.hasEvent(t, "join_token", "join_token.use", audit.ResultSuccess) {
		t.Error("join token use and revoke not audited")
	}

	// Every bad token gets the same 404, with no script and no hint.
	var bodies []string
	for _, bad := range []string{created.Value, "", "garbage", "abcdef.0123456789abcdef", created.ID + ".0000000000000000", "'%3B+rm+-rf+%2F"} {
		e.clock.Advance(3 * time.Second) // a fresh join-scope allowance; the burst is tested below
		resp, body := e.do(t, mustReq(t, e.http+"/join?token="+bad))
		if resp.StatusCode != 404 || strings.Contains(string(body), "#!/bin/sh") {
			t.Errorf("token %q: %d %s", bad, resp.StatusCode, body)
		}
		var rest string
		if i := strings.Index(string(body), `"request_id"`); i > 0 {
			rest = string(body[:i])
		}
		bodies = append(bodies, rest)
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("404 bodies differ: %q vs %q", b, bodies[0])
		}
	}
	// A burst from one address is limited (join scope: 5 per 3 s).
	limited := false
	for i := 0; i < 12 && !limited; i++ {
		resp, _ := e.do(t, mustReq(t, e.http+"/join?token=abcdef.0123456789abcdef"))
		limited = resp.StatusCode == 429 && resp.Header.Get("Retry-After") != ""
	}
	if !limited {
		t.Error("no 429 with Retry-After in a burst of /join requests")
	}
	// Bad requests for new tokens.
	for _, body := range []map[string]any{{"ttl_seconds": 5}, {"ttl_seconds": 99999999}, {"ttl_seconds": 600, "max_uses": -1}} {
		if status, _, _ := e.call(t, "POST", "/api/v1/clusters/e2e/join-tokens", body, bearer(e.admin)); status != 400 {
			t.Errorf("%v: %d, want 400", body, status)
		}
	}
}

func mustReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
