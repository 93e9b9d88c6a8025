package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
)

func TestAuditRetentionPurge(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUDIT_RETENTION_DAYS": "1"})
	ag.login(t, "admin", adminPassword)
	n := len(ag.auditEvents(t, audit.Query{}))
	ag.clock.Advance(25 * time.Hour)
	ag.login(t, "admin", adminPassword)
	removed, err := ag.audit.Purge()
	if err != nil || removed != n {
		t.Fatalf("purged %d (err %v), want %d", removed, err, n)
	}
	if left := ag.auditEvents(t, audit.Query{}); len(left) != 1 {
		t.Errorf("%d events left", len(left))
	}
}

// Every route of the table refuses a request without credentials (401)
// unless it is public, and every route needing a permission the user role
// lacks refuses a plain user (403).
// Every /api and /oauth route on the router comes from the table.
func TestRouteTable(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.createUser(t, admin, "noah", "noah-password-1")
	// An API key, so that walking the table through logout does not end it.
	user := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "walker"},
		bearer(ag.login(t, "noah", "noah-password-1").AccessToken))).Key
	ag.secret(user)
	plain, err := ag.identity.VerifyAPIKey(context.Background(), user, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, rt := range ag.apiRoutes() {
		inTable[rt.Method+" "+rt.Path] = true
		path := strings.NewReplacer("{id}", "x_1", "{name}", "x").Replace(rt.Path)
		status, body, _ := ag.call(t, rt.Method, path, nil)
		switch rt.Permission {
		case authn.Public:
			if status == 401 && rt.Path != "/api/v1/cube/key/token" || status == 403 {
				t.Errorf("public %s %s: %d %s", rt.Method, rt.Path, status, body)
			}
		default:
			if status != 401 {
				t.Errorf("%s %s without credentials: %d %s", rt.Method, rt.Path, status, body)
			}
			if rt.Permission == authn.SignedIn || plain.Can(rt.Permission) {
				continue
			}
			status, body, _ = ag.call(t, rt.Method, path, nil, bearer(user))
			if status != 403 {
				t.Errorf("%s %s as a plain user: %d %s", rt.Method, rt.Path, status, body)
			}
		}
	}
	for method, paths := range ag.router.List() {
		for _, p := range paths {
			if (strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/oauth/")) && !inTable[method+" "+p] {
				t.Errorf("%s %s is routed outside the permission table", method, p)
			}
		}
	}
	// A mistyped permission is refused at start.
	bad := []authn.Route{{Method: "GET", Path: "/api/v1/x", Permission: "clusters:reed", Handler: func(*fasthttp.RequestCtx) error { return nil }}}
	if err := ag.authn.Mount(ag.router, bad); err == nil {
		t.Error("unknown permission accepted")
	}
}
