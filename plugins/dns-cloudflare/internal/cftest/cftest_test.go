package cftest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"testing"
)

// call sends one request to s with token and decodes the envelope.
func call(t *testing.T, s *Server, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.BaseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, env
}

// firstCode is the envelope's first error code, 0 when it has none.
func firstCode(env map[string]any) int {
	errs, _ := env["errors"].([]any)
	if len(errs) == 0 {
		return 0
	}
	e, _ := errs[0].(map[string]any)
	c, _ := e["code"].(float64)
	return int(c)
}

// TestFake checks the fake answers as Cloudflare documents: the envelope,
// the token checks, paging and the record conflicts.
func TestFake(t *testing.T) {
	s := Start(t, "tok")
	id := s.AddZone("example.com.")
	recs := "/zones/" + id + "/dns_records"

	for _, tc := range []struct {
		what         string
		token        string
		method, path string
		body         any
		status, code int
	}{
		{"no token", "", "GET", "/zones", nil, 400, 9106},
		{"a wrong token", "nope", "GET", "/zones", nil, 403, 9109},
		{"a read-only token writing", s.ReadOnlyToken, "POST", recs, map[string]any{"type": "TXT", "name": "a", "content": "x"}, 403, 10000},
		{"an unknown zone id", "tok", "GET", "/zones/0123/dns_records", nil, 400, 7003},
		{"per_page 2", "tok", "GET", recs + "?per_page=2", nil, 400, 1004},
		{"an A record that is no address", "tok", "POST", recs, map[string]any{"type": "A", "name": "a", "content": "x"}, 400, 1004},
		{"a TTL of 30", "tok", "POST", recs, map[string]any{"type": "TXT", "name": "a", "content": "x", "ttl": 30}, 400, 1004},
		{"a proxied TXT", "tok", "POST", recs, map[string]any{"type": "TXT", "name": "a", "content": "x", "proxied": true}, 400, 1004},
		{"an A record", "tok", "POST", recs, map[string]any{"type": "A", "name": "www", "content": "192.0.2.1"}, 200, 0},
		{"the same A record", "tok", "POST", recs, map[string]any{"type": "A", "name": "www.example.com", "content": "192.0.2.1"}, 400, 81057},
		{"a CNAME beside it", "tok", "POST", recs, map[string]any{"type": "CNAME", "name": "www", "content": "x.example.org"}, 400, 81053},
		{"a CNAME", "tok", "POST", recs, map[string]any{"type": "CNAME", "name": "alias", "content": "www.example.com"}, 200, 0},
		{"an A record beside it", "tok", "POST", recs, map[string]any{"type": "A", "name": "alias", "content": "192.0.2.2"}, 400, 81054},
		{"a TXT record", "tok", "POST", recs, map[string]any{"type": "TXT", "name": "t", "content": "x"}, 200, 0},
		{"the same TXT record", "tok", "POST", recs, map[string]any{"type": "TXT", "name": "t", "content": "x"}, 400, 81058},
		{"an unknown record", "tok", "DELETE", recs + "/ffff", nil, 404, 81044},
	} {
		status, env := call(t, s, tc.token, tc.method, tc.path, tc.body)
		if status != tc.status || firstCode(env) != tc.code || env["success"] != (status == 200) {
			t.Errorf("%s: HTTP %d code %d success %v, want HTTP %d code %d", tc.what, status, firstCode(env), env["success"], tc.status, tc.code)
		}
	}

	// Names are stored fully qualified; the zone lookup finds the zone.
	_, env := call(t, s, "tok", "GET", "/zones?name=example.com", nil)
	if zs, _ := env["result"].([]any); len(zs) != 1 {
		t.Errorf("zone lookup: %v", env)
	}
	_, env = call(t, s, "tok", "GET", recs+"?per_page=5&page=1&name.exact=www.example.com&type=A", nil)
	if rs, _ := env["result"].([]any); len(rs) != 1 || rs[0].(map[string]any)["name"] != "www.example.com" {
		t.Errorf("filtered list: %v", env)
	}

	// Paging: 3 records (www, alias, t) at 5 a page is one page; 12 more
	// make three, the last one partial.
	for i := range 12 {
		s.Seed(t, "example.com", map[string]any{"type": "TXT", "name": "p", "content": string(rune('a' + i))})
	}
	_, env = call(t, s, "tok", "GET", recs+"?per_page=5&page=3", nil)
	info, _ := env["result_info"].(map[string]any)
	if info["total_count"] != 15.0 || info["total_pages"] != 3.0 || info["count"] != 5.0 || info["page"] != 3.0 {
		t.Errorf("page 3: result_info %v", info)
	}
	_, env = call(t, s, "tok", "GET", recs+"?per_page=5&page=4", nil)
	if rs, _ := env["result"].([]any); len(rs) != 0 {
		t.Errorf("page 4 holds %d records", len(rs))
	}

	// Rate limits and failures on demand, with Retry-After.
	s.RateLimit(1, "3")
	if status, env := call(t, s, "tok", "GET", "/zones", nil); status != 429 || firstCode(env) != 971 {
		t.Errorf("rate-limited: HTTP %d code %d", status, firstCode(env))
	}
	if status, _ := call(t, s, "tok", "GET", "/zones", nil); status != 200 {
		t.Errorf("after the rate limit: HTTP %d", status)
	}
	if r := s.Requests(); len(r) == 0 || r[len(r)-1].Header.Get("Authorization") != "Bearer tok" {
		t.Error("the request log lacks the last request's header")
	}
}
