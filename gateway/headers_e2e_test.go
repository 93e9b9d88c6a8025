package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/proxy"
)

// berthOwnHeaders are the headers Berth itself puts on a proxied answer
// (docs/clusters.md lists them): the request id, the security headers of
// every Berth answer, and the tenant-content headers of the proxy. Nothing
// else may differ between a cluster's answer and Berth's relay of it.
func berthOwnHeaders() []string {
	own := []string{"X-Request-Id", "X-Frame-Options", "Referrer-Policy", "Strict-Transport-Security"}
	for _, kv := range proxy.TenantHeaders {
		own = append(own, kv[0])
	}
	return own
}

// rawClient talks HTTP without Go's transparent decompression or
// redirects, so the test sees headers as they came.
func rawClient(ca []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// exchange is one request made twice: straight to the apiserver as its
// admin, and through Berth as Berth's admin.
type exchange struct {
	method, path, accept, body string
	extra                      map[string]string
}

func (e *e2eCluster) directAndProxied(t *testing.T, x exchange) (direct, proxied *http.Response) {
	return e.directAndProxiedUnder(t, proxyPrefixes[0], x)
}

// directAndProxiedUnder is directAndProxied through the proxy prefix.
func (e *e2eCluster) directAndProxiedUnder(t *testing.T, prefix string, x exchange) (direct, proxied *http.Response) {
	t.Helper()
	do := func(url, token, who string) *http.Response {
		var body io.Reader
		if x.body != "" {
			// Two creates need two names; the rest is the same request.
			body = strings.NewReader(strings.ReplaceAll(x.body, "{{who}}", who))
		}
		req, err := http.NewRequest(x.method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", x.accept)
		if x.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range x.extra {
			req.Header.Set(k, v)
		}
		resp, err := rawClient(e.env.CAData).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", x.method, url, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return resp
	}
	// Names made for each prefix ("{{who}}"), so creates do not collide.
	tag := strings.ReplaceAll(prefix, "/", "-")
	direct = do(e.env.Server+x.path, e.env.AdminToken, "direct"+tag)
	proxied = do(e.http+prefix+x.path, e.admin, "proxied"+tag)
	return direct, proxied
}

// headerSet returns the names in h, less those in skip.
func headerSet(h http.Header, skip ...string) []string {
	var names []string
	for k := range h {
		if !slices.ContainsFunc(skip, func(s string) bool { return strings.EqualFold(s, k) }) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// compactEtcd compacts the cluster's etcd up to its current revision, so
// every continue token issued before is too old: what the apiserver's own
// compaction does every five minutes.
func (e *e2eCluster) compactEtcd(t *testing.T) {
	t.Helper()
	post := func(path, body string) []byte {
		resp, err := http.Post(e.env.EtcdURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("etcd %s: %v", path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("etcd %s: %d %s", path, resp.StatusCode, data)
		}
		return data
	}
	var rng struct {
		Header struct{ Revision string }
	}
	json.Unmarshal(post("/v3/kv/range", fmt.Sprintf(`{"key":%q}`, base64.StdEncoding.EncodeToString([]byte("/")))), &rng)
	if rng.Header.Revision == "" {
		t.Fatal("etcd reported no revision")
	}
	post("/v3/kv/compaction", fmt.Sprintf(`{"revision":%q,"physical":true}`, rng.Header.Revision))
}

// The real apiserver's answers for each status kubectl meets, straight
// and through Berth, carry the same headers, apart from the ones Berth
// documents as its own. A 304 and a 204 carry exactly the cluster's.
func TestProxyHeaderFidelity(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	objects := `apiVersion: v1
kind: Namespace
metadata: {name: hdr}
---
apiVersion: v1
kind: Pod
metadata: {name: quiet, namespace: hdr}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: busy, namespace: hdr, labels: {app: busy}}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: keep-busy, namespace: hdr}
spec: {minAvailable: 1, selector: {matchLabels: {app: busy}}}
`
	for i := range 3 {
		objects += fmt.Sprintf("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: page-%d, namespace: hdr}\n", i)
	}
	if out, err := e.env.KubectlWith(ctx, e.env.Kubeconfig, "apply", "-f", writeTemp(t, e.dir, "hdr.yaml", objects)); err != nil {
		t.Fatalf("objects: %v\n%s", err, out)
	}
	// No kubelet runs here: the pod is made Running by hand, so an
	// eviction must ask its disruption budget, which no controller has
	// processed (429). The quiet pod has no node, so its log is empty (204).
	if out, err := e.env.KubectlWith(ctx, e.env.Kubeconfig, "-n", "hdr", "patch", "pod", "busy", "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Running"}}`); err != nil {
		t.Fatalf("pod status: %v\n%s", err, out)
	}

	const jsonAccept = "application/json"
	discovery := "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
	cm := func(name string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q}}`, name)
	}

	// 304: revalidate the aggregated discovery document with its own ETag.
	d, p := e.directAndProxied(t, exchange{method: "GET", path: "/apis", accept: discovery})
	etag := d.Header.Get("Etag")
	if d.StatusCode != 200 || etag == "" || p.Header.Get("Etag") != etag {
		t.Fatalf("discovery: direct %d ETag %q, proxied %d ETag %q", d.StatusCode, etag, p.StatusCode, p.Header.Get("Etag"))
	}

	// 410: a continue token from before a compaction.
	d, _ = e.directAndProxied(t, exchange{method: "GET", path: "/api/v1/namespaces/hdr/configmaps?limit=1", accept: jsonAccept})
	var page struct{ Metadata struct{ Continue string } }
	json.NewDecoder(d.Body).Decode(&page)
	if page.Metadata.Continue == "" {
		t.Fatal("no continue token")
	}
	if out, err := e.env.Kubectl(ctx, "-n", "hdr", "create", "configmap", "after-token"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e.compactEtcd(t)

	type exchangeCase struct {
		code int
		x    exchange
	}
	cases := []exchangeCase{
		{200, exchange{method: "GET", path: "/api/v1/namespaces/hdr", accept: jsonAccept}},
		{200, exchange{method: "GET", path: "/apis", accept: discovery}},
		{201, exchange{method: "POST", path: "/api/v1/namespaces/hdr/configmaps", accept: jsonAccept, body: cm("made-{{who}}")}},
		{204, exchange{method: "GET", path: "/api/v1/namespaces/hdr/pods/quiet/log", accept: "*/*"}},
		{304, exchange{method: "GET", path: "/apis", accept: discovery, extra: map[string]string{"If-None-Match": etag}}},
		{404, exchange{method: "GET", path: "/api/v1/namespaces/hdr/configmaps/missing", accept: jsonAccept}},
		{409, exchange{method: "POST", path: "/api/v1/namespaces/hdr/configmaps", accept: jsonAccept, body: cm("page-0")}},
		{410, exchange{method: "GET", path: "/api/v1/namespaces/hdr/configmaps?limit=1&continue=" + page.Metadata.Continue, accept: jsonAccept}},
		{422, exchange{method: "POST", path: "/api/v1/namespaces/hdr/configmaps", accept: jsonAccept, body: cm("Not_A_Name")}},
		{429, exchange{method: "POST", path: "/api/v1/namespaces/hdr/pods/busy/eviction", accept: jsonAccept,
			body: `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"busy","namespace":"hdr"}}`}},
	}
	for _, prefix := range proxyPrefixes {
		for _, c := range cases {
			e.compareHeaders(t, prefix, c.code, c.x)
		}
	}
}

// compareHeaders makes the exchange x straight and under prefix, expecting
// code from both, and compares their headers.
func (e *e2eCluster) compareHeaders(t *testing.T, prefix string, code int, x exchange) {
	t.Run(fmt.Sprintf("%s %d", strings.TrimPrefix(prefix, "/"), code), func(t *testing.T) {
		d, p := e.directAndProxiedUnder(t, prefix, x)
		if d.StatusCode != code || p.StatusCode != code {
			db, _ := io.ReadAll(d.Body)
			pb, _ := io.ReadAll(p.Body)
			t.Fatalf("want %d: direct %d %s, proxied %d %s", code, d.StatusCode, db, p.StatusCode, pb)
		}
		skip := berthOwnHeaders()
		if dn, pn := headerSet(d.Header, skip...), headerSet(p.Header, skip...); !slices.Equal(dn, pn) {
			t.Errorf("header names differ\ndirect  %q\nproxied %q", dn, pn)
		}
		// Values too, but for those that name the moment or the request,
		// and the body's length, which differs with the object's name or
		// the impersonated user.
		for k := range d.Header {
			switch k {
			case "Date", "Audit-Id", "Content-Length":
				continue
			}
			if dv, pv := d.Header.Values(k), p.Header.Values(k); !slices.Equal(dv, pv) && !slices.Contains(skip, k) {
				t.Errorf("%s: direct %q, proxied %q", k, dv, pv)
			}
		}
		for _, kv := range proxy.TenantHeaders {
			if got := p.Header.Get(kv[0]); got != kv[1] {
				t.Errorf("proxied %s = %q, want %q", kv[0], got, kv[1])
			}
		}
	})
}

// writeTemp writes data to dir/name and returns the path.
func writeTemp(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
