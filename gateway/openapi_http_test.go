package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

// The API document describes exactly the routes the router serves, each
// with the permission the route table gives it; public routes, and only
// they, need no credential in it.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	ag := startAuth(t, nil)
	doc := apitest.OpenAPI(t)
	type op struct{ method, path string }
	inDoc := map[op]string{}
	for path, item := range doc.Paths.Map() {
		for method, o := range item.Operations() {
			perm, _ := o.Extensions["x-berth-permission"].(string)
			inDoc[op{method, path}] = perm
			public := o.Security != nil && len(*o.Security) == 0
			if public != (perm == authn.Public) {
				t.Errorf("%s %s: permission %q but public security %v", method, path, perm, public)
			}
		}
	}
	routed := map[op]bool{}
	for method, paths := range ag.router.List() {
		for _, p := range paths {
			routed[op{method, p}] = true
			if _, ok := inDoc[op{method, p}]; !ok {
				t.Errorf("%s %s is served but not in the API document (gateway/apidoc/openapi.yaml)", method, p)
			}
		}
	}
	for o := range inDoc {
		if !routed[o] {
			t.Errorf("%s %s is in the API document but not served", o.method, o.path)
		}
	}
	for _, rt := range ag.apiRoutes() {
		if perm, ok := inDoc[op{rt.Method, rt.Path}]; ok && perm != rt.Permission {
			t.Errorf("%s %s: the document says permission %q, the route table %q", rt.Method, rt.Path, perm, rt.Permission)
		}
	}
	// The three routes outside the table are public.
	for _, o := range []op{{"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/.well-known/jwks.json"}} {
		if inDoc[o] != authn.Public {
			t.Errorf("%s %s: permission %q", o.method, o.path, inDoc[o])
		}
	}
}

// GET /api/v1/openapi.json is public, JSON, cacheable by ETag, and holds
// nothing of this gateway's configuration.
func TestOpenAPIServed(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_PUBLIC_URL": "https://berth.internal.example"})
	status, body, h := ag.call(t, "GET", "/api/v1/openapi.json", nil)
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || h.Get("ETag") == "" {
		t.Fatalf("%d %s etag %q: %.80s", status, h.Get("Content-Type"), h.Get("ETag"), body)
	}
	if !strings.Contains(string(body), `"openapi":"3.1.0"`) {
		t.Errorf("not an OpenAPI 3.1 document: %.80s", body)
	}
	for _, leak := range []string{"berth.internal.example", adminPassword, ag.cfg.DataDir} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the document holds %q", leak)
		}
	}
	status, again, _ := ag.call(t, "GET", "/api/v1/openapi.json", nil, header("If-None-Match", h.Get("ETag")))
	if status != http.StatusNotModified || len(again) != 0 {
		t.Errorf("revalidation: %d %.40s", status, again)
	}
	if !slices.Contains(strings.Split(h.Get("Cache-Control"), ", "), "no-cache") {
		t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
	}
}
