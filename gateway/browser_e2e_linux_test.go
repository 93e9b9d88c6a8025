package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
)

// chromiumPath is Debian's chromium (make e2e-tools installs it).
const chromiumPath = "/usr/bin/chromium"

// startBrowser starts headless chromium with a fresh profile and returns a
// context for one tab. Berth's self-signed certificate is accepted.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser test needs Debian's chromium at %s (make e2e-tools): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("ignore-certificate-errors", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:], opts...)...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first call starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tenantPage is what the tenant's pod serves: a page that, when its script
// runs, uses the visitor's Berth session to create an admin, read who the
// visitor is, and open an exec WebSocket to the cluster. Synchronous
// requests, so both are done by the load event; the WebSocket reports in
// #ws.
const tenantPage = `<!doctype html>
<html><head><title>tenant page</title></head><body>
<p id="ran">script did not run</p><p id="create">-</p><p id="me">-</p><p id="ws">-</p>
<script>
function set(id, v) { document.getElementById(id).textContent = v; }
function sync(method, url, body) {
  var x = new XMLHttpRequest();
  try {
    x.open(method, url, false);
    if (body) x.setRequestHeader("Content-Type", "application/json");
    x.send(body);
    return x.status + " " + x.responseText.slice(0, 300);
  } catch (e) { return "error " + e; }
}
set("ran", "script ran");
set("create", sync("POST", "/api/v1/users", JSON.stringify({username: "planted", password: "planted-password-123", roles: ["admin"]})));
set("me", sync("GET", "/api/v1/auth/me"));
set("ws", "connecting");
try {
  var ws = new WebSocket("wss://" + location.host + "/proxy/clusters/e2e/api/v1/namespaces/tenant/pods/web/exec?command=id&stdout=true", ["v5.channel.k8s.io"]);
  ws.onopen = function () { set("ws", "open"); };
  ws.onerror = function () { set("ws", "error"); };
} catch (e) { set("ws", "error " + e); }
</script></body></html>
`

// foreignPage is served from another origin of the same site (another
// port on 127.0.0.1, so the browser still sends Berth's SameSite=Lax
// cookie): cross-site WebSocket hijacking of exec, and a credentialed
// read of the proxy.
func foreignPage(berth string) string {
	return `<!doctype html><html><body><p id="ws">-</p><p id="read">-</p><script>
function set(id, v) { document.getElementById(id).textContent = v; }
set("ws", "connecting");
var ws = new WebSocket("` + strings.Replace(berth, "https://", "wss://", 1) + `/proxy/clusters/e2e/api/v1/namespaces/tenant/pods/web/exec?command=id&stdout=true", ["v5.channel.k8s.io"]);
ws.onopen = function () { set("ws", "open"); };
ws.onerror = function () { set("ws", "error"); };
fetch("` + berth + `/proxy/clusters/e2e/api/v1/namespaces", {credentials: "include", mode: "no-cors"})
  .then(function () { set("read", "sent"); }, function (e) { set("read", "error " + e); });
</script></body></html>`
}

// tenantWorkload stands the tenant's web server h up where the apiserver's
// proxies reach it — inside a test network namespace, as pod web (Running,
// PodIP set by hand: no kubelet runs here), behind service web (a
// selector-less Service with its Endpoints) and on node node-a (its
// InternalIP) — and returns the proxy paths that lead to it.
func (e *e2eCluster) tenantWorkload(t *testing.T, h http.Handler) []string {
	t.Helper()
	tn := newTenantNet(t)
	ln := tn.Listen(t, 8080)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx := context.Background()
	objects := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: tenant}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: tenant, labels: {app: web}}
spec: {containers: [{name: web, image: tenant/web, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: tenant}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: tenant}
subsets:
- addresses: [{ip: %[1]s, targetRef: {kind: Pod, namespace: tenant, name: web}}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
`, tn.PodIP)
	if out, err := e.env.Kubectl(ctx, "apply", "-f", writeTemp(t, e.dir, "tenant.yaml", objects)); err != nil {
		t.Fatalf("tenant objects: %v\n%s", err, out)
	}
	for _, s := range []struct{ kind, patch string }{
		{"pod/web", fmt.Sprintf(`{"status":{"phase":"Running","podIP":%q,"podIPs":[{"ip":%q}]}}`, tn.PodIP, tn.PodIP)},
		{"node/node-a", fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":%q}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}}}}`, tn.PodIP)},
	} {
		if out, err := e.env.Kubectl(ctx, "-n", "tenant", "patch", s.kind, "--subresource=status", "--type=merge", "-p", s.patch); err != nil {
			t.Fatalf("status of %s: %v\n%s", s.kind, err, out)
		}
	}
	var paths []string
	for _, prefix := range proxyPrefixes {
		paths = append(paths,
			prefix+"/api/v1/namespaces/tenant/pods/web:8080/proxy/",
			prefix+"/api/v1/namespaces/tenant/services/web:http/proxy/",
			// Not the kubelet's port: the node proxy then dials plain HTTP.
			prefix+"/api/v1/nodes/http:node-a:8080/proxy/",
		)
	}
	return paths
}

// The attack of issue 15.1, in a real browser: an admin signed in to
// Berth with a cookie opens a tenant's page served through the pod,
// service and node proxies (under /proxy/ and /api/v1/cube/proxy/). The
// page tries to create an admin, read /api/v1/auth/me and open an exec
// WebSocket with the admin's cookie. None of it may work, and no user is
// created. A page on another origin of the same site tries the exec
// WebSocket and a read of the proxy with the cookie: Berth lets neither
// through.
func TestBrowserTenantContentIsInert(t *testing.T) {
	e := startE2E(t)
	paths := e.tenantWorkload(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A __Host- cookie a browser would take (Secure, Path=/, no
		// Domain), and the old unprefixed name.
		http.SetCookie(w, &http.Cookie{Name: authn.DefaultCookieName, Value: "planted-by-tenant", Path: "/", Secure: true})
		http.SetCookie(w, &http.Cookie{Name: "berth_session", Value: "planted-by-tenant", Path: "/", Secure: true})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, tenantPage)
	}))
	ctx := startBrowser(t)

	// Sign in as a browser does: a same-origin fetch that stores the
	// session cookie.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.https+"/healthz")); err != nil {
		t.Fatal(err)
	}
	login, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch("/api/v1/auth/login", {method: "POST",
		headers: {"Content-Type": "application/json"},
		body: JSON.stringify({username: "admin", password: %q, cookie: true})}).then(r => r.status + "")`, adminPassword), chromedp.EvalAwaitPromise))
	if err != nil || login != "200" {
		t.Fatalf("browser sign-in: %v, status %q", err, login)
	}
	me, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch("/api/v1/auth/me").then(r => r.status + "")`, chromedp.EvalAwaitPromise))
	if err != nil || me != "200" {
		t.Fatalf("the browser's session does not work on the console API: %v %q", err, me)
	}

	// With the cookie alone, the proxy refuses the page.
	for _, path := range paths {
		resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(e.https+path))
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		if resp.Status != 401 {
			t.Errorf("%s with the session cookie alone: %d, want 401", path, resp.Status)
		}
	}

	// The page reached with a credential of the browser's own, as a
	// client certificate is: the admin's token is added to the page's own
	// navigation only, never to what the page then asks.
	var withToken atomic.Bool
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			var headers []*fetch.HeaderEntry
			for k, v := range ev.Request.Headers {
				headers = append(headers, &fetch.HeaderEntry{Name: k, Value: fmt.Sprint(v)})
			}
			if withToken.Load() && strings.Contains(ev.Request.URL, "/proxy/") {
				headers = append(headers, &fetch.HeaderEntry{Name: "Authorization", Value: "Bearer " + e.admin})
			}
			chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID, Headers: headers})
		}
	}()
	// Documents only: what the page itself asks is never touched.
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*", ResourceType: network.ResourceTypeDocument, RequestStage: fetch.RequestStageRequest}}}); err != nil {
		t.Fatal(err)
	}
	withToken.Store(true)
	for _, path := range paths {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_"), func(t *testing.T) {
			resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(e.https+path))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if resp.Status != 200 {
				t.Fatalf("page: %d, headers %v", resp.Status, resp.Headers)
			}
			if csp := responseHeader(resp, "Content-Security-Policy"); csp != "sandbox" {
				t.Errorf("page served with Content-Security-Policy %q", csp)
			}
			html := pageHTML(t, ctx)
			if !strings.Contains(html, "tenant page") {
				t.Fatalf("not the tenant's page: %s", html)
			}
			if strings.Contains(html, `id="ran">script ran`) {
				// Only without the sandbox: wait (bounded) for the
				// WebSocket's outcome, then report what the page got.
				for i := 0; i < 50 && strings.Contains(html, `id="ws">connecting`); i++ {
					time.Sleep(100 * time.Millisecond)
					html = pageHTML(t, ctx)
				}
				t.Errorf("the tenant's script ran on Berth's origin: %s", html)
			}
			for _, bad := range []string{`id="create">201`, `id="me">200`, `id="ws">open`} {
				if strings.Contains(html, bad) {
					t.Errorf("the page's attempt succeeded: %s", bad)
				}
			}
		})
	}
	withToken.Store(false)

	// Another origin of the same site: the cookie goes along with the
	// WebSocket handshake and the read, and counts for neither.
	foreign := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, foreignPage(e.https))
	}))
	t.Cleanup(foreign.Close)
	if err := chromedp.Do(ctx, chromedp.Navigate(foreign.URL)); err != nil {
		t.Fatal(err)
	}
	html := pageHTML(t, ctx)
	for i := 0; i < 100 && (strings.Contains(html, `id="ws">connecting`) || strings.Contains(html, `id="read">-`)); i++ {
		time.Sleep(100 * time.Millisecond)
		html = pageHTML(t, ctx)
	}
	if !strings.Contains(html, `id="ws">error`) || !strings.Contains(html, `id="read">sent`) {
		t.Errorf("the foreign page's attempts did not finish as refused: %s", html)
	}

	// Nothing happened: no user, no exec let through (exec is audited
	// whatever the cluster answers), no proxied read as the admin.
	users := string(e.must(t, 200, "GET", "/api/v1/users?page_size=100", nil, bearer(e.admin)))
	if strings.Contains(users, "planted") {
		t.Errorf("the tenant's page created a user: %s", users)
	}
	if evs := e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: "proxy.exec"}); len(evs) != 0 {
		t.Errorf("an exec reached the cluster with the browser's session: %+v", evs)
	}
}

// pageHTML returns the current document's markup, read through the DOM
// (no script runs in a sandboxed page).
func pageHTML(t *testing.T, ctx context.Context) string {
	t.Helper()
	// A document replaced between the two calls (the page was still
	// settling) is read again.
	var err error
	for range 10 {
		var doc dom.GetDocumentResult
		if doc, err = chromedp.Call(ctx, dom.GetDocument, dom.GetDocumentParams{}); err != nil {
			continue
		}
		var html dom.GetOuterHTMLResult
		if html, err = chromedp.Call(ctx, dom.GetOuterHTML, dom.GetOuterHTMLParams{NodeID: doc.Root.NodeID}); err == nil {
			return html.OuterHTML
		}
	}
	t.Fatalf("read the page: %v", err)
	return ""
}

// responseHeader returns the value of the header name in resp, whatever
// its case there.
func responseHeader(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// What a tenant's pod answers through the real apiserver's pod, service and
// node proxies, under both prefixes, reaches the client sandboxed, without
// its cookies, and without a redirect to another origin; its 204 and 304
// answers carry the headers the apiserver relayed, nothing more.
func TestProxyTenantAnswers(t *testing.T) {
	e := startE2E(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		// A __Host- cookie a browser would take (Secure, Path=/, no
		// Domain), and the old unprefixed name.
		http.SetCookie(w, &http.Cookie{Name: authn.DefaultCookieName, Value: "planted-by-tenant", Path: "/", Secure: true})
		http.SetCookie(w, &http.Cookie{Name: "berth_session", Value: "planted-by-tenant", Path: "/", Secure: true})
		w.Header().Set("Content-Security-Policy", "script-src 'unsafe-inline'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<p>tenant</p><script>alert(1)</script>")
	})
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/phish", http.StatusFound)
	})
	mux.HandleFunc("/sideways", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "//evil.example/phish", http.StatusFound)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/page", http.StatusFound)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/cached", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	})
	paths := e.tenantWorkload(t, mux)
	client := rawClient(e.env.CAData)
	get := func(url, token string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	for _, base := range paths {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(base, "/"), "/", "_"), func(t *testing.T) {
			resp, body := get(e.http+base+"page", e.admin, nil)
			if resp.StatusCode != 200 || !strings.Contains(body, "<p>tenant</p>") {
				t.Fatalf("page: %d %s", resp.StatusCode, body)
			}
			if got := resp.Header.Values("Content-Security-Policy"); len(got) != 1 || got[0] != "sandbox" {
				t.Errorf("Content-Security-Policy %q, want sandbox only", got)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("page headers: %v", resp.Header)
			}
			for _, away := range []string{"away", "sideways"} {
				resp, body = get(e.http+base+away, e.admin, nil)
				if resp.StatusCode != 502 || resp.Header.Get("Location") != "" || strings.Contains(body, "evil") || !strings.Contains(body, `"kind":"Status"`) {
					t.Errorf("redirect to another origin (%s): %d Location %q %s", away, resp.StatusCode, resp.Header.Get("Location"), body)
				}
			}
			// The apiserver turns the pod's redirect to its own host into a
			// path; Berth passes it.
			resp, _ = get(e.http+base+"here", e.admin, nil)
			if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "/") || strings.HasPrefix(resp.Header.Get("Location"), "//") {
				t.Errorf("redirect on the same origin: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}

			// Straight from the apiserver's proxy and through Berth.
			direct := e.env.Server + strings.TrimPrefix(strings.TrimPrefix(base, proxyPrefixes[1]), proxyPrefixes[0])
			for _, c := range []struct {
				path string
				hdr  map[string]string
				code int
			}{
				{"empty", nil, 204},
				{"cached", map[string]string{"If-None-Match": `"v1"`}, 304},
			} {
				d, _ := get(direct+c.path, e.env.AdminToken, c.hdr)
				p, _ := get(e.http+base+c.path, e.admin, c.hdr)
				skip := berthOwnHeaders()
				if d.StatusCode != c.code || p.StatusCode != c.code {
					t.Errorf("%s: direct %d, proxied %d, want %d", c.path, d.StatusCode, p.StatusCode, c.code)
				} else if dn, pn := headerSet(d.Header, skip...), headerSet(p.Header, skip...); !slices.Equal(dn, pn) {
					t.Errorf("%s %d: header names differ\ndirect  %q\nproxied %q", c.path, c.code, dn, pn)
				}
			}
		})
	}
}
