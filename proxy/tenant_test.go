package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// tenantBackend is a cluster whose pod proxy answers with what a tenant's
// pod may send: a page with scripts, cookies and its own policy, bodiless
// 204 and 304 answers without a Content-Type, and redirects.
func tenantBackend(t *testing.T) *backend {
	mux := http.NewServeMux()
	const base = "/api/v1/namespaces/default/pods/web/proxy/"
	mux.HandleFunc(base+"page", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "berth_session", Value: "planted"})
		w.Header().Set("Content-Security-Policy", "script-src 'unsafe-inline'")
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<script>fetch("/api/v1/users",{method:"POST"})</script>`)
	})
	mux.HandleFunc(base+"nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Audit-Id", "a-1")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc(base+"cached", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"abc"`)
		w.Header().Set("Vary", "Accept")
		w.Header().Set("Cache-Control", "public")
		if r.Header.Get("If-None-Match") == `"abc"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
		fmt.Fprint(w, `{"kind":"APIGroupDiscoveryList"}`)
	})
	mux.HandleFunc(base+"away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("/api/v1/namespaces/default/pods/web/exec", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/exec", http.StatusFound)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = false
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &backend{Server: srv}
}

// get asks url with the given request headers, without the transparent
// decompression and redirects of Go's default client.
func rawGet(t *testing.T, url string, tlsCfg *tls.Config, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: tlsCfg, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func headerNames(h http.Header) []string {
	var names []string
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func TestTenantContentHeaders(t *testing.T) {
	b := tenantBackend(t)
	rec := newCountingObserver()
	f := newFront(t, b, Options{Observer: rec})
	const pod = "/api/v1/namespaces/default/pods/web/proxy/"
	direct := func(path string, hdr map[string]string) (*http.Response, []byte) {
		return rawGet(t, b.URL+path, b.Client().Transport.(*http.Transport).TLSClientConfig, hdr)
	}
	proxied := func(path string, hdr map[string]string) (*http.Response, []byte) {
		return rawGet(t, f.url+"/proxy/clusters/dev"+path, nil, hdr)
	}

	// The page comes with the sandbox in place of its own policy, nosniff,
	// and without its cookie.
	resp, body := proxied(pod+"page", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<script>") {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Content-Security-Policy"); !slices.Equal(got, []string{"sandbox"}) {
		t.Errorf("Content-Security-Policy = %q, want exactly sandbox", got)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("the pod's cookie reached the client: %q", got)
	}

	// Bodiless answers pass as they came: no Content-Type is made up.
	// Berth's own additions are the tenant headers and, from the server,
	// Date (which Go's server sends as well).
	own := func(names []string) []string {
		return slices.DeleteFunc(names, func(n string) bool {
			return n == "Content-Security-Policy" || n == "X-Content-Type-Options"
		})
	}
	for _, c := range []struct {
		path string
		hdr  map[string]string
		code int
	}{
		{pod + "nocontent", nil, 204},
		{pod + "cached", map[string]string{"If-None-Match": `"abc"`}, 304},
		{pod + "cached", nil, 200},
	} {
		dr, _ := direct(c.path, c.hdr)
		pr, _ := proxied(c.path, c.hdr)
		if dr.StatusCode != c.code || pr.StatusCode != c.code {
			t.Errorf("%s: direct %d, proxied %d, want %d", c.path, dr.StatusCode, pr.StatusCode, c.code)
			continue
		}
		if d, p := headerNames(dr.Header), own(headerNames(pr.Header)); !slices.Equal(d, p) {
			t.Errorf("%s %d: headers differ\ndirect  %q\nproxied %q", c.path, c.code, d, p)
		}
		if d, p := dr.Header.Get("Content-Type"), pr.Header.Get("Content-Type"); d != p {
			t.Errorf("%s %d: Content-Type direct %q, proxied %q", c.path, c.code, d, p)
		}
	}

	// Redirects: within Berth's origin they pass; anywhere else they are
	// refused with a Status that does not repeat the target.
	host := strings.TrimPrefix(f.url, "http://")
	for _, c := range []struct {
		to   string
		code int
	}{
		{"/proxy/clusters/dev/api/v1/namespaces/default/pods/web/proxy/page", 302},
		{"page", 302},
		{"http://" + host + "/proxy/clusters/dev/", 302},
		{"https://evil.example/phish", 502},
		{"//evil.example/phish", 502},
		{"/\\evil.example/phish", 502},
		{"https://" + host + "/", 502}, // another scheme is another origin
	} {
		before := len(rec.all())
		resp, body := proxied(pod+"away?to="+strings.ReplaceAll(c.to, "\\", "%5C"), nil)
		// Counted as what the client got: a refused redirect as the 502.
		if got := rec.all()[before:]; !slices.Equal(got, []int{c.code}) {
			t.Errorf("redirect to %q: observed %v, want [%d]", c.to, got, c.code)
		}
		if resp.StatusCode != c.code {
			t.Errorf("redirect to %q: %d %s, want %d", c.to, resp.StatusCode, body, c.code)
			continue
		}
		if c.code == 502 {
			if resp.Header.Get("Location") != "" || strings.Contains(string(body), "evil") || !strings.Contains(string(body), `"kind":"Status"`) {
				t.Errorf("refused redirect to %q: Location %q, body %s", c.to, resp.Header.Get("Location"), body)
			}
		}
		if resp.Header.Get("Content-Security-Policy") != "sandbox" {
			t.Errorf("redirect to %q: no sandbox", c.to)
		}
	}

	// Berth's own refusals under the proxy prefix carry the sandbox too.
	resp, _ = proxied("/../x", nil)
	if resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("proxy's own Status: CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
}

// FuzzSameOrigin checks sameOrigin against the URL resolution Go does for
// a page at https://berth.example:8443/: whatever it lets pass resolves to
// Berth's own origin.
func FuzzSameOrigin(f *testing.F) {
	for _, s := range []string{"/a", "//evil.example", "/\\evil", "https://berth.example:8443/x", "x:y", "%2F%2Fevil", "?q", "../../x"} {
		f.Add(s)
	}
	base, _ := neturl.Parse("https://berth.example:8443/proxy/clusters/a/api/v1/namespaces/n/pods/p/proxy/")
	f.Fuzz(func(t *testing.T, loc string) {
		if !sameOrigin(loc, "https", "berth.example:8443") {
			return
		}
		u, err := neturl.Parse(loc)
		if err != nil {
			t.Fatalf("%q passed but does not parse: %v", loc, err)
		}
		r := base.ResolveReference(u)
		if r.Scheme != "https" || r.Host != "berth.example:8443" && !strings.EqualFold(r.Host, "berth.example:8443") || r.User != nil {
			t.Fatalf("%q passed but resolves to %s", loc, r)
		}
	})
}

// An upgrade answered with a redirect to another origin is refused like
// any other answer, and its connection closed.
func TestUpgradeForeignRedirectRefused(t *testing.T) {
	f := newFront(t, tenantBackend(t), Options{})
	conn, br, resp := rawUpgrade(t, f, "/proxy/clusters/dev/api/v1/namespaces/default/pods/web/exec")
	defer conn.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" || strings.Contains(string(body), "evil") {
		t.Errorf("upgrade redirected away: %d Location %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp.Header.Get("Content-Security-Policy") != "sandbox" {
		t.Errorf("no sandbox on the refusal: %v", resp.Header)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection left open after a refused upgrade: %v", err)
	}
}
