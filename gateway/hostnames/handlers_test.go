package hostnames

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

type api struct {
	*rig
	env                 *apitest.Env
	admin, owner, other string // tokens
	viewer              string
}

// newAPI serves the routes with cluster roles from a table: owner is
// admin of c1, other admin of c2, viewer a viewer of c1.
func newAPI(t *testing.T) *api {
	t.Helper()
	a := &api{rig: newRig(t)}
	a.env = apitest.New(t)
	a.rig.db = a.env.DB
	a.svc.db = a.env.DB
	_, a.admin = a.env.User(t, "boss", identity.RoleAdmin)
	owner, ownerTok := a.env.User(t, "owner")
	other, otherTok := a.env.User(t, "other")
	viewer, viewerTok := a.env.User(t, "viewer")
	a.owner, a.other, a.viewer = ownerTok, otherTok, viewerTok
	roles := map[string]map[string]string{"c1": {owner.ID: "admin", viewer.ID: "view"}, "c2": {other.ID: "admin"}}
	access := func(p *identity.Principal, cluster string) (string, bool) {
		if p.Can(identity.PermAll) {
			return "cluster-admin", true
		}
		role, ok := roles[cluster][p.UserID]
		return role, ok
	}
	a.env.Serve(t, Routes(NewHandlers(a.svc, a.env.Authn, a.env.Audit, access)))
	a.cluster(t, "c1", true)
	a.cluster(t, "c2", true)
	return a
}

func (a *api) do(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	status, out, _ := a.env.Do(t, method, path, token, body)
	m := map[string]any{}
	if len(out) > 0 {
		json.Unmarshal(out, &m)
	}
	return status, m
}

func (a *api) count(t *testing.T) int {
	t.Helper()
	n := 0
	for _, c := range []string{"c1", "c2"} {
		bs, _ := a.get(t, c)
		n += len(bs)
	}
	return n
}

// Bad input is a 400 and stores nothing; the rules of who may bind what.
func TestBindRefusals(t *testing.T) {
	a := newAPI(t)
	base := Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net"}
	if status, out := a.do(t, "PUT", "/api/v1/dns/settings", a.admin, base); status != http.StatusOK || out["base_domain"] != "apps.example.com" {
		t.Fatalf("settings: %d %v", status, out)
	}
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c2/hostnames", a.other, map[string]string{"hostname": "shop.example.org"}); status != http.StatusCreated {
		t.Fatalf("other binds: %d", status)
	}
	before := a.count(t)
	for _, tc := range []struct {
		name, hostname string
	}{
		{"over 253 characters", strings.Repeat("abcdefghi.", 25) + "example.com"},
		{"a label over 63", strings.Repeat("a", 64) + ".example.com"},
		{"an empty label", "app..example.com"},
		{"a leading hyphen", "-app.example.com"},
		{"a trailing hyphen", "app-.example.com"},
		{"an underscore", "my_app.example.com"},
		{"a bare wildcard", "*"},
		{"an IPv4 address", "192.0.2.10"},
		{"an IPv6 address", "2001:db8::10"},
		{"under another tenant's binding", "x.shop.example.org"},
		{"a wildcard over another tenant's binding", "*.example.org"},
		{"another cluster's name", "c2.apps.example.com"},
		{"under another cluster's name", "api.c2.apps.example.com"},
		{"the cluster's own name", "c1.apps.example.com"},
		{"the base domain", "apps.example.com"},
		{"a public suffix", "co.uk"},
		{"empty", ""},
	} {
		status, out := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": tc.hostname})
		if status != http.StatusBadRequest {
			t.Errorf("%s (%q): %d %v, want 400", tc.name, tc.hostname, status, out)
		}
	}
	if n := a.count(t); n != before {
		t.Errorf("refusals stored %d bindings", n-before)
	}

	// One cluster per hostname: 409, whoever holds it.
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": "Shop.Example.org."}); status != http.StatusConflict {
		t.Errorf("a hostname another cluster holds: %d, want 409", status)
	}
	// Who: a viewer may list, not bind; a stranger sees no cluster.
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.viewer, map[string]string{"hostname": "v.example.org"}); status != http.StatusForbidden {
		t.Errorf("a viewer binds: %d, want 403", status)
	}
	if status, _ := a.do(t, "GET", "/api/v1/clusters/c1/hostnames", a.viewer, nil); status != http.StatusOK {
		t.Errorf("a viewer lists: %d", status)
	}
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.other, map[string]string{"hostname": "o.example.org"}); status != http.StatusNotFound {
		t.Errorf("a stranger binds: %d, want 404", status)
	}
	if status, _ := a.do(t, "DELETE", "/api/v1/clusters/c2/hostnames/shop.example.org", a.owner, nil); status != http.StatusNotFound {
		t.Errorf("a stranger unbinds: %d, want 404", status)
	}
	if status, _ := a.do(t, "DELETE", "/api/v1/clusters/c1/hostnames/shop.example.org", a.owner, nil); status != http.StatusNotFound {
		t.Errorf("unbinding another cluster's hostname through one's own: %d, want 404", status)
	}
	if n := a.count(t); n != before {
		t.Errorf("refusals changed bindings: %d → %d", before, a.count(t))
	}

	// Settings: admins only; a public suffix or a bad target is a 400
	// and changes nothing.
	if status, _ := a.do(t, "PUT", "/api/v1/dns/settings", a.owner, base); status != http.StatusForbidden {
		t.Errorf("a member changes the DNS settings: %d", status)
	}
	for _, bad := range []Settings{
		{BaseDomain: "co.uk", Plugin: "zone", TargetHostname: "edge.example.net"},
		{BaseDomain: "github.io", Plugin: "zone", TargetHostname: "edge.example.net"},
		{BaseDomain: "apps.example.com", Plugin: "nope", TargetHostname: "edge.example.net"},
		{BaseDomain: "apps.example.com", Plugin: "zone"},
	} {
		if status, out := a.do(t, "PUT", "/api/v1/dns/settings", a.admin, bad); status != http.StatusBadRequest {
			t.Errorf("settings %+v: %d %v, want 400", bad, status, out)
		}
	}
	if s, _ := a.svc.Settings(); s.BaseDomain != "apps.example.com" || s.Plugin != "zone" {
		t.Errorf("refused settings changed them: %+v", s)
	}
	// A base domain under which a bound hostname would take a cluster's
	// name is a 409.
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c2/hostnames", a.other, map[string]string{"hostname": "c1.example.org"}); status != http.StatusCreated {
		t.Fatalf("other binds c1.example.org: %d", status)
	}
	if status, _ := a.do(t, "PUT", "/api/v1/dns/settings", a.admin, Settings{BaseDomain: "example.org", Plugin: "zone", TargetHostname: "edge.example.net"}); status != http.StatusConflict {
		t.Errorf("a base domain that makes c2's c1.example.org cluster c1's name: %d, want 409", status)
	}
	if s, _ := a.svc.Settings(); s.BaseDomain != "apps.example.com" {
		t.Errorf("a refused base domain was stored: %+v", s)
	}
}

// Binding, listing and unbinding, with the cluster's own name.
func TestBindListUnbind(t *testing.T) {
	a := newAPI(t)
	a.do(t, "PUT", "/api/v1/dns/settings", a.admin, Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net"})
	status, b := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": "Shop.Apps.Example.com."})
	if status != http.StatusCreated || b["hostname"] != "shop.apps.example.com" || b["dns_management_scope"] != PlatformManaged || b["status"] != Pending {
		t.Fatalf("bind: %d %v", status, b)
	}
	a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": "*.tenant.example.org"})
	status, list := a.do(t, "GET", "/api/v1/clusters/c1/hostnames", a.owner, nil)
	items, _ := list["items"].([]any)
	if status != http.StatusOK || list["ingress_cname_target"] != "c1.apps.example.com" || len(items) != 2 {
		t.Fatalf("list: %d %v", status, list)
	}
	if w := items[0].(map[string]any); w["hostname"] != "*.tenant.example.org" || w["dns_management_scope"] != SelfManaged || w["dns_management_status"] != NotManaged {
		t.Errorf("the wildcard binding: %v", w)
	}
	if status, _ := a.do(t, "DELETE", "/api/v1/clusters/c1/hostnames/shop.apps.example.com", a.owner, nil); status != http.StatusNoContent {
		t.Errorf("unbind: %d", status)
	}
	if status, _ := a.do(t, "DELETE", "/api/v1/clusters/c1/hostnames?hostname=*.tenant.example.org", a.owner, nil); status != http.StatusNoContent {
		t.Errorf("unbind by query: %d", status)
	}
	if status, _ := a.do(t, "DELETE", "/api/v1/clusters/c1/hostnames/shop.apps.example.com", a.owner, nil); status != http.StatusNotFound {
		t.Errorf("unbind twice: %d, want 404", status)
	}
	if n := a.count(t); n != 0 {
		t.Errorf("%d bindings left", n)
	}
	if !a.env.HasEventOn(t, "hostname", "dns.hostname.bind", "success") || !a.env.HasEventOn(t, "hostname", "dns.hostname.unbind", "success") {
		t.Error("binding and unbinding are not audited")
	}
}

// A cluster's hostnames are bounded.
func TestHostnamesPerClusterBounded(t *testing.T) {
	a := newAPI(t)
	for i := range MaxPerCluster {
		a.binding(t, "c1", "h"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26))+".example.org")
	}
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": "one-more.example.org"}); status != http.StatusConflict {
		t.Errorf("hostname %d: %d, want 409", MaxPerCluster+1, status)
	}
}
