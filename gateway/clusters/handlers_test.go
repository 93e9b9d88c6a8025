package clusters

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/proxy"
)

// routes are the registry's entries in the gateway's route table, with
// the same permissions (gateway/clusters_wire.go, kubeconfig_wire.go).
func routes(h *Handlers) []authn.Route {
	const get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
	read, write := identity.PermClustersRead, identity.PermClustersWrite
	return []authn.Route{
		{Method: get, Path: "/api/v1/clusters", Permission: read, Handler: h.List},
		{Method: post, Path: "/api/v1/clusters", Permission: write, Handler: h.Create},
		{Method: get, Path: "/api/v1/clusters/{name}", Permission: read, Handler: h.Get},
		{Method: put, Path: "/api/v1/clusters/{name}", Permission: write, Handler: h.Update},
		{Method: del, Path: "/api/v1/clusters/{name}", Permission: write, Handler: h.Delete},
		{Method: post, Path: "/api/v1/clusters/{name}/test", Permission: read, Handler: h.Test},
		{Method: get, Path: "/api/v1/clusters/{name}/members", Permission: write, Handler: h.Members},
		{Method: post, Path: "/api/v1/clusters/{name}/members", Permission: write, Handler: h.AddMember},
		{Method: put, Path: "/api/v1/clusters/{name}/members/{id}", Permission: write, Handler: h.SetMemberRole},
		{Method: del, Path: "/api/v1/clusters/{name}/members/{id}", Permission: write, Handler: h.RemoveMember},
		{Method: post, Path: "/api/v1/clusters/{name}/kubeconfig", Permission: read, Handler: h.Kubeconfig},
		{Method: get, Path: "/api/v1/clusters/{name}/kubeconfig", Permission: authn.Public, Handler: h.KubeconfigGet},
	}
}

// apiEnv is the registry's API served in-process, with a fleet admin and
// their token. server is Berth's address for kubeconfigs (Handlers.server).
func apiEnv(t *testing.T, server func() (string, error)) (*apitest.Env, *identity.User, string) {
	t.Helper()
	e := apitest.New(t)
	svc, err := NewService(e.DB, e.Box, proxy.NewPool(proxy.PoolOptions{}), e.Audit, e.IDs, e.Log, Options{Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	if server == nil {
		server = func() (string, error) { return "https://berth.example.com", nil }
	}
	e.Serve(t, routes(NewHandlers(svc, e.Authn, e.IDs, server, func() []byte { return nil }, 30*24*time.Hour)))
	u, admin := e.User(t, "admin", identity.RoleAdmin)
	return e, u, admin
}

// caB64 is a real CA certificate (a test server's will do: the API only
// checks it parses).
func caB64(t *testing.T) string {
	return base64.StdEncoding.EncodeToString(newAPIServer(t).spec("x", "x").Conn.CAData)
}

func clusterCount(t *testing.T, e *apitest.Env, token string) int {
	t.Helper()
	var l struct{ Total int }
	json.Unmarshal(e.Must(t, 200, "GET", "/api/v1/clusters", token, nil), &l)
	return l.Total
}

func TestClusterAPIRefusesBadInput(t *testing.T) {
	e, _, admin := apiEnv(t, nil)
	ca := caB64(t)
	e.Secret("tok-secret-1")
	good := func(mut func(m map[string]any)) map[string]any {
		m := map[string]any{"name": "edge-1", "server": "https://127.0.0.1:1", "token": "tok-secret-1", "certificate_authority_data": ca}
		if mut != nil {
			mut(m)
		}
		return m
	}
	tests := []struct {
		name string
		body any
		want int
	}{
		{"upper-case name", good(func(m map[string]any) { m["name"] = "Edge" }), 400},
		{"dotted name", good(func(m map[string]any) { m["name"] = "a.b" }), 400},
		{"64-char name", good(func(m map[string]any) { m["name"] = strings.Repeat("a", 64) }), 400},
		{"empty name", good(func(m map[string]any) { m["name"] = "" }), 400},
		{"no credential", good(func(m map[string]any) { delete(m, "token") }), 400},
		{"token and cert", good(func(m map[string]any) { m["client_certificate_data"] = ca; m["client_key_data"] = ca }), 400},
		{"bad base64", good(func(m map[string]any) { m["certificate_authority_data"] = "%%%" }), 400},
		{"CA not PEM", good(func(m map[string]any) {
			m["certificate_authority_data"] = base64.StdEncoding.EncodeToString([]byte("nope"))
		}), 400},
		{"plain http", good(func(m map[string]any) { m["server"] = "http://127.0.0.1:1" }), 400},
		{"server with query", good(func(m map[string]any) { m["server"] = "https://h:1/?a=b" }), 400},
		{"kubeconfig and fields", good(func(m map[string]any) { m["kubeconfig"] = "apiVersion: v1" }), 400},
		{"kubeconfig file refs", map[string]any{"name": "k", "kubeconfig": "apiVersion: v1\nclusters: [{name: c, cluster: {server: 'https://h', certificate-authority: /etc/passwd}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: m, context: {cluster: c, user: u}}]\ncurrent-context: m\n"}, 400},
		{"oversized kubeconfig", map[string]any{"name": "k", "kubeconfig": strings.Repeat("#", 300<<10)}, 400},
		{"unknown field", good(func(m map[string]any) { m["colour"] = "red" }), 400},
		{"token with newline", good(func(m map[string]any) { m["token"] = "a\nb" }), 400},
		{"bad JSON", []byte(`{"name": "x"`), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := e.Do(t, "POST", "/api/v1/clusters", admin, tt.body)
			if status != tt.want || !strings.Contains(string(body), `"error":"`) {
				t.Fatalf("status %d, want %d: %s", status, tt.want, body)
			}
		})
	}
	if n := clusterCount(t, e, admin); n != 0 {
		t.Fatalf("refused requests created %d clusters", n)
	}
	e.Must(t, 201, "POST", "/api/v1/clusters", admin, good(nil))
	if status, _, _ := e.Do(t, "POST", "/api/v1/clusters", admin, good(nil)); status != 409 {
		t.Errorf("duplicate: %d, want 409", status)
	}
	// Wrong content type, and a rename through PUT.
	if status, _, _ := e.Do(t, "PUT", "/api/v1/clusters/edge-1", admin, url.Values{"name": {"x"}}); status != 415 {
		t.Errorf("form body: %d, want 415", status)
	}
	if status, _, _ := e.Do(t, "PUT", "/api/v1/clusters/edge-1", admin, map[string]any{"name": "edge-2"}); status != 400 {
		t.Errorf("rename: %d, want 400", status)
	}
	if n := clusterCount(t, e, admin); n != 1 {
		t.Fatalf("clusters: %d, want 1", n)
	}
}

// Each refusal of the registry's API answers with its status, code and
// message: the handlers return faults and httpapi.Serve writes them.
func TestClusterAPIRefusals(t *testing.T) {
	e, _, admin := apiEnv(t, nil)
	e.Secret("t-prod-secret")
	e.Must(t, 201, "POST", "/api/v1/clusters", admin, map[string]any{"name": "prod", "server": "https://127.0.0.1:1", "token": "t-prod-secret", "certificate_authority_data": caB64(t)})
	_, dora := e.User(t, "dora")
	m := e.Must(t, 201, "POST", "/api/v1/clusters/prod/members", admin, map[string]any{"user": "dora", "role": "view"})
	var member struct{ ID string }
	json.Unmarshal(m, &member)
	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		code, msg                 string
	}{
		{"unknown cluster", "GET", "/api/v1/clusters/nope", admin, nil, 404, "not_found", "cluster not found"},
		{"non-member's kubeconfig", "POST", "/api/v1/clusters/nope/kubeconfig", dora, nil, 404, "not_found", "cluster not found"},
		{"page size", "GET", "/api/v1/clusters?page_size=0", admin, nil, 400, "invalid_request", "page_size must be"},
		{"no permission", "POST", "/api/v1/clusters", dora, map[string]any{"name": "mine"}, 403, "forbidden", "clusters:write"},
		{"unknown user", "POST", "/api/v1/clusters/prod/members", admin, map[string]any{"user": "nobody", "role": "view"}, 400, "invalid_request", `no user "nobody"`},
		{"unknown role", "POST", "/api/v1/clusters/prod/members", admin, map[string]any{"user": "dora", "role": "root"}, 400, "invalid_request", "role must be one of"},
		{"user and group", "POST", "/api/v1/clusters/prod/members", admin, map[string]any{"user": "dora", "group": "g", "role": "view"}, 400, "invalid_request", "not both"},
		{"already a member", "POST", "/api/v1/clusters/prod/members", admin, map[string]any{"user": "dora", "role": "edit"}, 409, "conflict", "change the role with PUT /api/v1/clusters/prod/members/" + member.ID},
		{"no such grant", "PUT", "/api/v1/clusters/prod/members/mbr_nope", admin, map[string]any{"role": "edit"}, 404, "not_found", "no such member of the cluster"},
		{"members of an unknown cluster", "GET", "/api/v1/clusters/nope/members", admin, nil, 404, "not_found", "cluster not found"},
		{"no provisioning", "POST", "/api/v1/clusters", admin, map[string]any{"name": "made", "provision": map[string]any{}}, 400, "invalid_request", "provisioning is not enabled"},
		{"bad quantity", "POST", "/api/v1/clusters", admin, map[string]any{"name": "made", "provision": map[string]any{"workers": map[string]string{"cpu": "lots"}}}, 400, "invalid_request", `provision.workers.cpu: "lots" is not a quantity`},
		{"reshape a registered cluster", "PUT", "/api/v1/clusters/prod", admin, map[string]any{"provision": map[string]any{"workers": map[string]string{"cpu": "2"}}}, 400, "invalid_request", "registered, not provisioned"},
		{"kubeconfig by GET", "GET", "/api/v1/clusters/prod/kubeconfig", "", nil, 405, "method_not_allowed", "POST /api/v1/clusters/prod/kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.Do(t, tc.method, tc.path, tc.token, tc.body)
			var got struct {
				Code    int    `json:"code"`
				Error   string `json:"error"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &got); err != nil || status != tc.status || got.Code != tc.status || got.Error != tc.code || !strings.Contains(got.Message, tc.msg) {
				t.Fatalf("%d %s, want %d %s %q", status, body, tc.status, tc.code, tc.msg)
			}
		})
	}
	if _, _, h := e.Do(t, "GET", "/api/v1/clusters/prod/kubeconfig", "", nil); h.Get("Allow") != "POST" {
		t.Errorf("405 without Allow: POST: %q", h.Get("Allow"))
	}
}

// Without a configured address clients can use, Berth refuses to write a
// kubeconfig (409 saying to set public_url) instead of trusting the
// request's Host; with public_url it writes that, whatever the Host.
// (Which address the gateway's configuration gives is
// TestKubeconfigServerFor's, in package gateway.)
func TestKubeconfigNeedsAConfiguredAddress(t *testing.T) {
	noAddress := errors.New("Berth has no HTTPS listener and no public_url: an administrator must set public_url (BERTH_PUBLIC_URL) to the https:// address clients reach Berth at")
	for _, tc := range []struct {
		name   string
		server func() (string, error)
		status int
		want   string
	}{
		{"no HTTPS listener, no public_url", func() (string, error) { return "", noAddress }, 409, "set public_url (BERTH_PUBLIC_URL)"},
		{"public_url", func() (string, error) { return "https://berth.example.com", nil }, 200, "server: https://berth.example.com/proxy/clusters/prod\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, carol, admin := apiEnv(t, tc.server)
			e.Must(t, 201, "POST", "/api/v1/clusters", admin, map[string]any{"name": "prod", "server": "https://127.0.0.1:1", "token": "t"})
			status, body, _ := e.Do(t, "POST", "/api/v1/clusters/prod/kubeconfig", admin, nil, func(r *http.Request) { r.Host = "evil.example" })
			if status != tc.status || !strings.Contains(string(body), tc.want) || strings.Contains(string(body), "evil.example") {
				t.Fatalf("%d %s", status, body)
			}
			if status == 200 {
				cfg, err := clientcmd.Load(body)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range cfg.AuthInfos {
					e.Secret(u.Token)
				}
			}
			// Nothing is minted by a refused download.
			u, err := e.IDs.UserPrincipal(carol.ID)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := e.IDs.ListAPIKeys(u, u.UserID)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[status == 200]; len(keys) != want {
				t.Errorf("%d API keys, want %d", len(keys), want)
			}
		})
	}
}
