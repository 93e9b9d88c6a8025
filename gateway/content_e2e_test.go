package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
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
	sess := cookie("berth_session", e.cookieLogin(t, "admin", adminPassword))
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
