package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/authn"
)

// cookieLogin signs in for a browser session and returns the cookie value.
func (ag *authGW) cookieLogin(t *testing.T, user, pw string, opts ...opt) string {
	t.Helper()
	status, body, hdr := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": user, "password": pw, "cookie": true}, opts...)
	if status != 200 {
		t.Fatalf("cookie login: %d %s", status, body)
	}
	if strings.Contains(string(body), "access_token") || strings.Contains(string(body), "brs_") {
		t.Errorf("cookie login body carries a credential: %s", body)
	}
	resp := http.Response{Header: hdr}
	for _, c := range resp.Cookies() {
		if c.Name == authn.DefaultCookieName {
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Value == "" {
				t.Errorf("cookie attributes: %+v", c)
			}
			ag.secret(c.Value)
			return c.Value
		}
	}
	t.Fatalf("no session cookie in %v", hdr["Set-Cookie"])
	return ""
}

// TestSessionCookieIsHostOnly: the session cookie carries the __Host-
// prefix with what browsers require of it (Secure, Path=/, no Domain), so
// a sibling domain cannot plant one; and a cookie of the unprefixed name,
// which such a domain could plant, is no session even when its value is a
// live one.
func TestSessionCookieIsHostOnly(t *testing.T) {
	ag := startAuth(t, nil)
	status, body, hdr := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": adminPassword, "cookie": true})
	if status != 200 {
		t.Fatalf("cookie login: %d %s", status, body)
	}
	var set string
	for _, v := range hdr["Set-Cookie"] {
		if strings.HasPrefix(v, "__Host-berth_session=") {
			set = v
		}
	}
	if set == "" {
		t.Fatalf("no __Host-berth_session cookie in %q", hdr["Set-Cookie"])
	}
	lower := strings.ToLower(set)
	if !strings.Contains(lower, "; secure") || !strings.Contains(lower, "; path=/") || strings.Contains(lower, "domain=") {
		t.Errorf("Set-Cookie %q: a __Host- cookie needs Secure, Path=/ and no Domain, or browsers drop it", set)
	}
	sess := strings.TrimPrefix(strings.SplitN(set, ";", 2)[0], "__Host-berth_session=")
	ag.secret(sess)
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, cookie("__Host-berth_session", sess))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, cookie("berth_session", sess))
}

func TestCookieSessionsAndCSRF(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUTH_CORS_ALLOWED_ORIGINS": "https://console.example.com"})
	sess := ag.cookieLogin(t, "admin", adminPassword)
	c := cookie(authn.DefaultCookieName, sess)
	own := "http://" + ag.HTTPAddr()

	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, c))
	if me.AuthMethod != "session" {
		t.Errorf("method %q", me.AuthMethod)
	}
	// Safe methods pass from anywhere: they change nothing.
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, c, header("Origin", "https://evil.example"))

	create := map[string]any{"name": "from-browser"}
	before := ag.state(t)
	refused := []struct {
		name string
		opts []opt
	}{
		{"foreign origin", []opt{header("Origin", "https://evil.example")}},
		{"foreign origin, same host other scheme", []opt{header("Origin", "https://"+ag.HTTPAddr())}},
		{"origin null", []opt{header("Origin", "null")}},
		{"foreign referer", []opt{header("Referer", "https://evil.example/page")}},
		{"no origin or referer", nil},
		{"cross-site fetch with own origin", []opt{header("Origin", own), header("Sec-Fetch-Site", "cross-site")}},
		{"allowed origin but cross-site", []opt{header("Origin", "https://console.example.com"), header("Sec-Fetch-Site", "cross-site")}},
		{"lookalike origin", []opt{header("Origin", "https://console.example.com.evil.example")}},
		{"origin with path", []opt{header("Origin", "https://console.example.com/x")}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := ag.call(t, "POST", "/api/v1/auth/api-keys", create, append(tt.opts, c)...)
			if status != 403 || !strings.Contains(string(body), "cross-site") {
				t.Errorf("status %d: %s", status, body)
			}
		})
	}
	if ag.state(t) != before {
		t.Fatal("refused cross-site requests changed state")
	}
	// Same origin, its Referer, and the allow-listed console pass.
	for name, o := range map[string]opt{
		"own origin":      header("Origin", own),
		"own referer":     header("Referer", own+"/console/keys"),
		"allowed origin":  header("Origin", "https://console.example.com"),
		"same-site fetch": header("Origin", "HTTPS://Console.Example.com:443"),
	} {
		status, body, _ := ag.call(t, "POST", "/api/v1/auth/api-keys", create, c, o, header("Sec-Fetch-Site", "same-site"))
		if status != 201 {
			t.Errorf("%s: %d %s", name, status, body)
			continue
		}
		ag.secret(decode[apiKeyOut](t, body).Key)
	}
	// Bearer requests skip the CSRF check: a browser never adds them itself.
	tok := ag.login(t, "admin", adminPassword).AccessToken
	status, body, _ := ag.call(t, "POST", "/api/v1/auth/api-keys", create, bearer(tok), header("Origin", "https://evil.example"), header("Sec-Fetch-Site", "cross-site"))
	if status != 201 {
		t.Errorf("bearer with foreign origin: %d %s", status, body)
	} else {
		ag.secret(decode[apiKeyOut](t, body).Key)
	}

	// Login CSRF: a foreign page cannot sign the browser in.
	before = ag.state(t)
	status, body, hdr := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": adminPassword, "cookie": true},
		header("Origin", "https://evil.example"))
	if status != 403 || len(hdr["Set-Cookie"]) != 0 {
		t.Errorf("foreign cookie login: %d %s", status, body)
	}
	if ag.state(t) != before {
		t.Error("refused cookie login changed state")
	}

	// Logout clears the cookie and ends the session.
	_, _, hdr = ag.call(t, "POST", "/api/v1/auth/logout", nil, c, header("Origin", own))
	// The clearing cookie must carry what a __Host- cookie needs, or the
	// browser ignores it and keeps the old one.
	cleared := false
	for _, k := range (&http.Response{Header: hdr}).Cookies() {
		if k.Name == authn.DefaultCookieName {
			cleared = k.Value == "" && k.MaxAge < 0 && k.Secure && k.Path == "/" && k.Domain == ""
		}
	}
	if !cleared {
		t.Errorf("logout did not clear the cookie as a browser would take it: %q", hdr["Set-Cookie"])
	}
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, c)
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, cookie(authn.DefaultCookieName, "brs_forged"))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, cookie(authn.DefaultCookieName, strings.Repeat("x", 3000)))
}

func TestCORS(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUTH_CORS_ALLOWED_ORIGINS": "https://console.example.com"})
	preflight := func(origin string) (int, http.Header) {
		req, _ := http.NewRequest("OPTIONS", ag.http+"/api/v1/auth/api-keys", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, _ := ag.do(t, req)
		return resp.StatusCode, resp.Header
	}
	status, hdr := preflight("https://console.example.com")
	if status != 204 || hdr.Get("Access-Control-Allow-Origin") != "https://console.example.com" ||
		hdr.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("allowed preflight: %d %v", status, hdr)
	}
	status, hdr = preflight("https://evil.example")
	if status != 403 || hdr.Get("Access-Control-Allow-Origin") != "" || hdr.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("unlisted preflight: %d %v", status, hdr)
	}
	// An actual request from the allowed origin can be read by it.
	tok := ag.login(t, "admin", adminPassword).AccessToken
	_, _, hdr = ag.call(t, "GET", "/api/v1/auth/me", nil, bearer(tok), header("Origin", "https://console.example.com"))
	if hdr.Get("Access-Control-Allow-Origin") != "https://console.example.com" || !strings.Contains(hdr.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("actual request CORS headers: %v", hdr)
	}
	_, _, hdr = ag.call(t, "GET", "/api/v1/auth/me", nil, bearer(tok), header("Origin", "https://evil.example"))
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin got CORS headers: %v", hdr)
	}
	// Outside the API, no CORS at all.
	_, _, hdr = ag.call(t, "GET", "/healthz", nil, header("Origin", "https://console.example.com"))
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS headers on /healthz")
	}
}

// "*" lets any origin read, never with credentials, and never makes a
// foreign origin trusted for cookies.
func TestCORSWildcardNeverWithCredentials(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUTH_CORS_ALLOWED_ORIGINS": "*"})
	req, _ := http.NewRequest("OPTIONS", ag.http+"/api/v1/auth/me", nil)
	req.Header.Set("Origin", "https://anywhere.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, _ := ag.do(t, req)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("wildcard preflight: %d %v", resp.StatusCode, resp.Header)
	}
	sess := ag.cookieLogin(t, "admin", adminPassword)
	before := ag.state(t)
	ag.must(t, 403, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "x"}, cookie(authn.DefaultCookieName, sess), header("Origin", "https://anywhere.example"))
	if ag.state(t) != before {
		t.Error("wildcard origin was trusted for a cookie request")
	}
}
