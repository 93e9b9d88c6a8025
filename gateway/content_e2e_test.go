package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
)

// proxyPrefixes are the two roots under which Berth proxies a cluster.
var proxyPrefixes = []string{"/proxy/clusters/e2e", "/api/v1/cube/proxy/clusters/e2e"}

// A browser session never authenticates anything under the proxy: not a
// read, not a write from Berth's own origin, not the pod, service or node
// proxy, not a WebSocket upgrade to exec from a foreign origin (cross-site
// WebSocket hijacking). Each gets a 401 Kubernetes Status, sandboxed, and
// the cluster sees nothing. The same session still works on the console
// API, and a bearer token on the proxy works with or without the cookie.
func TestProxyRefusesSessionCookies(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	if out, err := e.env.Kubectl(ctx, "create", "namespace", "tenant"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	sess := cookie(authn.DefaultCookieName, e.cookieLogin(t, "admin", adminPassword))
	own := header("Origin", "http://"+e.HTTPAddr())
	e.must(t, 200, "GET", "/api/v1/auth/me", nil, sess)

	ws := []opt{header("Connection", "Upgrade"), header("Upgrade", "websocket"), header("Sec-WebSocket-Version", "13"),
		header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), header("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
		header("Origin", "https://evil.example")}
	for _, prefix := range proxyPrefixes {
		for _, c := range []struct {
			name, method, path string
			body               any
			opts               []opt
		}{
			{"read", "GET", "/api/v1/namespaces", nil, nil},
			{"write from own origin", "POST", "/api/v1/namespaces/tenant/configmaps",
				map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "by-cookie"}}, []opt{own}},
			{"pod proxy", "GET", "/api/v1/namespaces/tenant/pods/web:8080/proxy/", nil, nil},
			{"service proxy", "GET", "/api/v1/namespaces/tenant/services/web:http/proxy/", nil, nil},
			{"node proxy", "GET", "/api/v1/nodes/node-a/proxy/", nil, nil},
			{"exec websocket from another origin", "GET", "/api/v1/namespaces/tenant/pods/web/exec?command=id&stdout=true", nil, ws},
		} {
			t.Run(strings.TrimPrefix(prefix, "/")+" "+c.name, func(t *testing.T) {
				status, body, hdr := e.call(t, c.method, prefix+c.path, c.body, append(c.opts, sess)...)
				var st struct{ Kind, Reason, Message string }
				json.Unmarshal(body, &st)
				if status != 401 || st.Kind != "Status" || st.Reason != "Unauthorized" || !strings.Contains(st.Message, "browser sessions") {
					t.Errorf("cookie only: %d %s", status, body)
				}
				if hdr.Get("Content-Security-Policy") != "sandbox" {
					t.Errorf("refusal without the sandbox: %v", hdr)
				}
			})
		}
	}
	// Nothing reached the cluster: no configmap, and no exec was let
	// through (exec is audited whatever the cluster answers).
	if out, err := e.env.Kubectl(ctx, "-n", "tenant", "get", "configmap", "by-cookie"); err == nil {
		t.Errorf("a cookie-only write reached the cluster: %s", out)
	}
	if evs := e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: "proxy.exec"}); len(evs) != 0 {
		t.Errorf("a cookie-only exec reached the cluster: %+v", evs)
	}

	// A bearer token counts, with or without a cookie beside it; the
	// cookie still signs in to the console API.
	for _, prefix := range proxyPrefixes {
		e.must(t, 200, "GET", prefix+"/api/v1/namespaces", nil, bearer(e.admin), sess)
		e.must(t, 200, "GET", prefix+"/api/v1/namespaces", nil, bearer(e.admin))
	}
	e.must(t, 200, "GET", "/api/v1/auth/me", nil, sess)
}

// A browser may present a client certificate on its own, like a cookie.
// On the proxy, a certificate counts only without a foreign Origin or
// Referer, whatever the method: a WebSocket handshake to exec is a GET.
// kubectl sends neither header and passes.
func TestProxyClientCertificateFromAnotherOrigin(t *testing.T) {
	ca, caKey, caFile := newClientCA(t)
	e := startE2EWith(t, map[string]string{"BERTH_TLS_CLIENT_AUTH_CA_FILE": caFile})
	e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "bob", "role": "view"}, bearer(e.admin))
	certPEM, keyPEM := clientCert(t, ca, caKey, time.Now().Add(time.Hour), "bob")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.CertificatePEM())
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	get := func(path string, hdr map[string]string) int {
		req, _ := http.NewRequest("GET", e.https+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const ns = "/api/v1/namespaces"
	for _, prefix := range proxyPrefixes {
		for _, c := range []struct {
			name string
			hdr  map[string]string
			want int
		}{
			{"kubectl (no Origin)", nil, 200},
			{"own origin", map[string]string{"Origin": e.https}, 200},
			{"foreign origin", map[string]string{"Origin": "https://evil.example"}, 403},
			{"foreign referer", map[string]string{"Referer": "https://evil.example/page"}, 403},
			{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		} {
			if got := get(prefix+ns, c.hdr); got != c.want {
				t.Errorf("%s%s, %s: %d, want %d", prefix, ns, c.name, got, c.want)
			}
		}
	}
	// The console API keeps its rule: safe methods pass from anywhere.
	if got := get("/api/v1/auth/me", map[string]string{"Origin": "https://evil.example"}); got != 200 {
		t.Errorf("console GET with a certificate from another origin: %d", got)
	}
}
