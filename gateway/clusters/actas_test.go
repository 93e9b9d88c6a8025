package clusters

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/proxy"
)

// The header rules alone: what ParseActAs takes and what it refuses,
// whoever asks.
func TestParseActAs(t *testing.T) {
	tests := []struct {
		name    string
		headers [][2]string
		want    ActAs
		refused string // in the 400's message; "" when taken
	}{
		{"none", nil, ActAs{}, ""},
		{"unrelated headers", [][2]string{{"Accept", "application/json"}, {"X-Remote-User", "root"}}, ActAs{}, ""},
		{"user", [][2]string{{"Impersonate-User", "bob"}}, ActAs{User: "bob"}, ""},
		{"lower-case names", [][2]string{{"impersonate-user", "bob"}, {"impersonate-group", "devs"}}, ActAs{User: "bob", Groups: []string{"devs"}}, ""},
		{"user and groups", [][2]string{{"Impersonate-User", "bob"}, {"Impersonate-Group", "devs"}, {"Impersonate-Group", "ops"}},
			ActAs{User: "bob", Groups: []string{"devs", "ops"}}, ""},
		{"groups without a user", [][2]string{{"Impersonate-Group", "system:masters"}}, ActAs{}, "needs Impersonate-User"},
		{"two users", [][2]string{{"Impersonate-User", "bob"}, {"Impersonate-User", "carol"}}, ActAs{}, "more than one Impersonate-User"},
		{"empty user", [][2]string{{"Impersonate-User", ""}}, ActAs{}, "names no user"},
		{"empty group", [][2]string{{"Impersonate-User", "bob"}, {"Impersonate-Group", ""}}, ActAs{}, "names no group"},
		{"uid", [][2]string{{"Impersonate-User", "bob"}, {"Impersonate-Uid", "1234"}}, ActAs{}, "Impersonate-Uid"},
		{"uid alone", [][2]string{{"Impersonate-Uid", "1234"}}, ActAs{}, "Impersonate-Uid"},
		{"extra", [][2]string{{"Impersonate-User", "bob"}, {"Impersonate-Extra-Berth.dev%2fimpersonator", "someone"}}, ActAs{}, "Impersonate-Extra-*"},
		{"extra alone", [][2]string{{"Impersonate-Extra-Scopes", "x"}}, ActAs{}, "Impersonate-Extra-*"},
		{"unknown impersonation header", [][2]string{{"Impersonate-Serviceaccount", "x"}}, ActAs{}, "Berth takes only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			h.DisableNormalizing()
			for _, kv := range tt.headers {
				h.Add(kv[0], kv[1])
			}
			got, err := ParseActAs(&h)
			if tt.refused != "" {
				if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("got %+v, %v; want a 400 saying %q", got, err, tt.refused)
				}
				return
			}
			if err != nil || got.User != tt.want.User || !slices.Equal(got.Groups, tt.want.Groups) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	var h fasthttp.RequestHeader
	h.Set("Impersonate-User", "bob")
	for range maxActAsGroups + 1 {
		h.Add("Impersonate-Group", "g")
	}
	if _, err := ParseActAs(&h); !fault.Is(err, fault.Invalid) {
		t.Errorf("%d groups: %v, want 400", maxActAsGroups+1, err)
	}
}

// actAsEnv is the proxy route served in-process (real identity,
// authentication, audit and proxy) in front of a stand-in API server that
// records what reaches it, with one cluster "prod" and these people:
// admin and root2 (Berth admins), bob (user; groups devs and ops; a view
// member, and ops is an edit member), carol (user, no member), dave (a
// disabled view member) and helper (a custom role with clusters:read and
// users:impersonate; a view member).
type actAsEnv struct {
	*apitest.Env
	svc      *Service
	upstream *apiServer
	client   *http.Client
	tokens   map[string]string
	users    map[string]*identity.User
}

func newActAsEnv(t *testing.T) *actAsEnv {
	t.Helper()
	e := apitest.New(t)
	pool := proxy.NewPool(proxy.PoolOptions{})
	svc, err := NewService(e.DB, e.Box, pool, e.Audit, e.IDs, e.Log, Options{Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	up := newAPIServer(t)
	ctx := context.Background()
	if _, err := svc.Register(ctx, admin, up.spec("prod", "gateway-token"), audit.Event{}); err != nil {
		t.Fatal(err)
	}
	system := &identity.Principal{UserID: "system", Username: "system", Permissions: []string{identity.PermAll}}
	if _, err := e.IDs.PutRole(ctx, system, identity.Role{Name: "support", Permissions: []string{identity.PermClustersRead, identity.PermUsersImpersonate}}, true, identity.Meta{}); err != nil {
		t.Fatal(err)
	}
	a := &actAsEnv{Env: e, svc: svc, upstream: up, tokens: map[string]string{}, users: map[string]*identity.User{}}
	for _, u := range []struct {
		name   string
		role   string
		groups []string
	}{
		{"admin", identity.RoleAdmin, nil}, {"root2", identity.RoleAdmin, nil},
		{"bob", identity.RoleUser, []string{"devs", "ops"}}, {"carol", identity.RoleUser, nil},
		{"dave", identity.RoleUser, nil}, {"helper", "support", nil},
	} {
		user, err := e.IDs.CreateUser(ctx, system, identity.NewUser{Username: u.name, Password: u.name + "-password-123", Roles: []string{u.role}, Groups: u.groups}, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.IDs.IssueTokens(ctx, user, identity.MethodPassword, "", identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		a.users[u.name], a.tokens[u.name] = user, tok.AccessToken
	}
	for _, m := range [][3]string{{"user", "bob", "view"}, {"group", "ops", "edit"}, {"user", "dave", "view"}, {"user", "helper", "view"}} {
		if _, err := svc.AddMember(ctx, "prod", m[0], m[1], m[2], audit.Event{}); err != nil {
			t.Fatal(err)
		}
	}
	disabled := identity.StatusDisabled
	if _, err := e.IDs.UpdateUser(ctx, system, a.users["dave"].ID, identity.UserChanges{Status: &disabled}, identity.Meta{}); err != nil {
		t.Fatal(err)
	}
	// The admin's kubeconfig key: scoped to clusters:read and prod.
	_, key, err := e.IDs.CreateAPIKey(ctx, system, identity.NewAPIKey{UserID: a.users["admin"].ID, Name: "kubeconfig",
		Scopes: []string{identity.PermClustersRead, identity.ClusterScopePrefix + "prod"}}, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	a.tokens["admin-key"] = key
	for _, tok := range a.tokens {
		e.Secret(tok)
	}

	route := NewProxyRoute(svc, e.Authn, proxy.New(proxy.Options{Pool: pool}), e.Audit)
	handler := middleware.Chain(route.Wrap(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusTeapot) }), middleware.RequestID())
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: handler}
	go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}
	a.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Shutdown()
	})
	return a
}

// get sends GET path through the proxy as who with headers, and returns
// the status, Berth's request id and the headers the cluster received
// (nil when nothing reached it).
func (a *actAsEnv) get(t *testing.T, who string, headers [][2]string) (int, string, http.Header) {
	t.Helper()
	before := len(a.upstream.requests())
	req, _ := http.NewRequest("GET", "http://berth/proxy/clusters/prod/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer "+a.tokens[who])
	for _, kv := range headers {
		req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := a.upstream.requests()
	switch len(seen) - before {
	case 0:
		return resp.StatusCode, resp.Header.Get("X-Request-Id"), nil
	case 1:
		return resp.StatusCode, resp.Header.Get("X-Request-Id"), seen[len(seen)-1]
	}
	t.Fatalf("one request reached the cluster %d times", len(seen)-before)
	return 0, "", nil
}

func as(user string, groups ...string) [][2]string {
	h := [][2]string{{"Impersonate-User", user}}
	for _, g := range groups {
		h = append(h, [2]string{"Impersonate-Group", g})
	}
	return h
}

// The proxy route with kubectl --as: who the cluster sees for each caller
// and each ask, and every bad ask refused before anything reaches the
// cluster, with its code, and audited with both names.
func TestProxyActAs(t *testing.T) {
	a := newActAsEnv(t)
	tests := []struct {
		name    string
		caller  string
		headers [][2]string
		code    int
		// user and groups the cluster sees (unprefixed, without "berth:"),
		// for a request that reaches it; impersonator is the extra.
		user         string
		groups       []string
		impersonator string
	}{
		{"no --as", "admin", nil, 200, "admin", []string{"role:cluster-admin"}, ""},
		{"member, no --as", "bob", nil, 200, "bob", []string{"role:edit", "group:devs", "group:ops"}, ""},
		{"admin as bob: bob's role, bob's groups", "admin", as("bob"), 200, "bob", []string{"role:edit", "group:devs", "group:ops"}, "admin"},
		{"username in another case", "admin", as("BOB"), 200, "bob", []string{"role:edit", "group:devs", "group:ops"}, "admin"},
		{"--as-group narrows, and the role with it", "admin", as("bob", "devs"), 200, "bob", []string{"role:view", "group:devs"}, "admin"},
		{"--as-group with every group", "admin", as("bob", "ops", "devs"), 200, "bob", []string{"role:edit", "group:devs", "group:ops"}, "admin"},
		{"admin as another admin", "admin", as("root2"), 200, "root2", []string{"role:cluster-admin"}, "admin"},
		{"custom role as bob: the caller's view role does not leak", "helper", as("bob"), 200, "bob", []string{"role:edit", "group:devs", "group:ops"}, "helper"},

		{"no permission", "bob", as("carol"), 403, "", nil, ""},
		{"no permission, as an admin", "bob", as("admin"), 403, "", nil, ""},
		{"custom role as an admin", "helper", as("admin"), 403, "", nil, ""},
		{"unknown user", "admin", as("nobody"), 403, "", nil, ""},
		{"disabled user", "admin", as("dave"), 403, "", nil, ""},
		{"not a member", "admin", as("carol"), 403, "", nil, ""},
		{"--as-group outside the user's groups", "admin", as("bob", "admins"), 403, "", nil, ""},
		{"--as-group system:masters", "admin", as("bob", "system:masters"), 403, "", nil, ""},
		{"--as-group leaving no membership", "admin", as("helper", "devs"), 403, "", nil, ""},
		{"system:admin", "admin", as("system:admin", "system:masters"), 403, "", nil, ""},
		{"a service account", "admin", as("system:serviceaccount:kube-system:default"), 403, "", nil, ""},
		{"prefixed name", "admin", as("berth:bob"), 403, "", nil, ""},
		{"user id", "admin", as("USER_ID_OF_BOB"), 403, "", nil, ""},
		{"kubeconfig key", "admin-key", as("bob"), 403, "", nil, ""},
		{"uid", "admin", append(as("bob"), [2]string{"Impersonate-Uid", "42"}), 400, "", nil, ""},
		{"client extra", "admin", append(as("bob"), [2]string{"Impersonate-Extra-Berth.dev%2fimpersonator", "root2"}), 400, "", nil, ""},
		{"client extra without --as", "bob", [][2]string{{"Impersonate-Extra-Berth.dev%2fclient-ip", "10.0.0.1"}}, 400, "", nil, ""},
		{"groups without --as", "bob", [][2]string{{"Impersonate-Group", "system:masters"}}, 400, "", nil, ""},
		{"two users", "admin", append(as("bob"), [2]string{"Impersonate-User", "root2"}), 400, "", nil, ""},
		{"lower-case header names", "admin", [][2]string{{"impersonate-user", "bob"}, {"impersonate-group", "devs"}}, 200, "bob", []string{"role:view", "group:devs"}, "admin"},
		{"two users, one lower-case", "admin", [][2]string{{"Impersonate-User", "bob"}, {"impersonate-user", "root2"}}, 400, "", nil, ""},
		{"comma-joined users", "admin", as("bob,root2"), 403, "", nil, ""},
		{"comma-joined groups", "admin", as("bob", "devs,ops"), 403, "", nil, ""},
		// A caller who cannot see the cluster learns nothing more with --as.
		{"non-member caller", "carol", as("bob"), 404, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.headers {
				tt.headers[i][1] = strings.ReplaceAll(tt.headers[i][1], "USER_ID_OF_BOB", a.users["bob"].ID)
			}
			code, rid, seen := a.get(t, tt.caller, tt.headers)
			if code != tt.code {
				t.Fatalf("status %d, want %d", code, tt.code)
			}
			evs := a.requestEvents(t, rid)
			if tt.user == "" {
				if seen != nil {
					t.Fatalf("refused, yet the cluster received %v", seen)
				}
				// Refusals of --as are audited, naming the caller and what
				// was asked; a non-member's 404 is not, as before.
				if tt.code == 404 {
					if len(evs) != 0 {
						t.Errorf("audited a non-member's request: %+v", evs)
					}
					return
				}
				if len(evs) != 1 || evs[0].Action != "proxy.impersonate" || evs[0].Result != audit.ResultFailure ||
					evs[0].ActorName != strings.TrimSuffix(tt.caller, "-key") || evs[0].Details["refusal"] == "" {
					t.Errorf("audit of the refusal: %+v", evs)
				}
				return
			}
			var groups []string
			for _, g := range seen.Values("Impersonate-Group") {
				groups = append(groups, strings.TrimPrefix(g, "berth:"))
			}
			if got := seen.Get("Impersonate-User"); got != "berth:"+tt.user || !slices.Equal(groups, tt.groups) {
				t.Errorf("the cluster saw %q %q, want berth:%s %q", got, groups, tt.user, tt.groups)
			}
			imp := seen.Values("Impersonate-Extra-Berth.dev%2fimpersonator")
			if tt.impersonator == "" && len(imp) != 0 || tt.impersonator != "" && !slices.Equal(imp, []string{"berth:" + tt.impersonator}) {
				t.Errorf("impersonator extra %q, want %q", imp, tt.impersonator)
			}
			if len(seen.Values("Impersonate-Uid")) != 0 || seen.Get("Authorization") != "Bearer gateway-token" {
				t.Errorf("the cluster's request: %v", seen)
			}
			if tt.impersonator == "" {
				if len(evs) != 0 {
					t.Errorf("a plain read audited: %+v", evs)
				}
				return
			}
			// Reads made as someone else are audited, with both names.
			if len(evs) != 1 || evs[0].Action != "proxy.read" || evs[0].ActorName != tt.caller ||
				evs[0].Details["as_user"] != tt.user || evs[0].Details["as_user_id"] != a.users[tt.user].ID ||
				evs[0].Details["as_role"] != strings.TrimPrefix(tt.groups[0], "role:") {
				t.Errorf("audit: %+v", evs)
			}
		})
	}
}

// requestEvents are the cluster audit events of one request.
func (a *actAsEnv) requestEvents(t *testing.T, rid string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for _, ev := range a.Events(t, audit.Query{Category: "cluster"}) {
		if ev.RequestID == rid {
			out = append(out, ev)
		}
	}
	return out
}

// A stream opened with --as rests on both users: it ends when the user
// acted as is disabled or loses the role it was opened with, and when the
// caller may no longer act as anyone; a write about someone else leaves
// it open.
func TestActAsStreamsRecheckBothUsers(t *testing.T) {
	system := &identity.Principal{UserID: "system", Username: "system", Permissions: []string{identity.PermAll}}
	ctx := context.Background()
	tests := []struct {
		name   string
		caller string
		change func(t *testing.T, a *actAsEnv)
		ends   string // in the refusal; "" when the stream goes on
	}{
		{"someone else changed", "admin", func(t *testing.T, a *actAsEnv) {
			name := "Carol"
			if _, err := a.IDs.UpdateUser(ctx, system, a.users["carol"].ID, identity.UserChanges{DisplayName: &name}, identity.Meta{}); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"the user acted as disabled", "admin", func(t *testing.T, a *actAsEnv) {
			disabled := identity.StatusDisabled
			if _, err := a.IDs.UpdateUser(ctx, system, a.users["bob"].ID, identity.UserChanges{Status: &disabled}, identity.Meta{}); err != nil {
				t.Fatal(err)
			}
		}, "disabled"},
		{"the user acted as loses the edit role", "admin", func(t *testing.T, a *actAsEnv) {
			ms, _ := a.svc.Members("prod")
			for _, m := range ms {
				if m.Kind == "group" && m.Subject == "ops" {
					if err := a.svc.RemoveMember(ctx, "prod", m.ID, audit.Event{}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}, "lost group berth:role:edit"},
		{"the caller's role loses users:impersonate", "helper", func(t *testing.T, a *actAsEnv) {
			if _, err := a.IDs.PutRole(ctx, system, identity.Role{Name: "support", Permissions: []string{identity.PermClustersRead}}, false, identity.Meta{}); err != nil {
				t.Fatal(err)
			}
		}, "users:impersonate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newActAsEnv(t)
			p, err := a.IDs.VerifyAccessToken(a.tokens[tt.caller])
			if err != nil {
				t.Fatal(err)
			}
			var h fasthttp.RequestHeader
			h.Set("Impersonate-User", "bob")
			checkedAt := a.svc.changes.current()
			acting, err := a.svc.ProxyIdentity(p, "prod", &h, Origin{ClientIP: "192.0.2.1", RequestID: "req-1"})
			if err != nil {
				t.Fatal(err)
			}
			allowed, refusal := a.svc.streamAccessAs(func() (*identity.Principal, error) { return a.IDs.Reverify(p) }, acting, "prod", acting.Identity, checkedAt)
			if !allowed() {
				t.Fatal("refused before any change")
			}
			tt.change(t, a)
			got := allowed()
			code, why := refusal()
			if tt.ends == "" {
				if !got {
					t.Fatalf("ended: %d %s", code, why)
				}
				return
			}
			if got || code != 403 || !strings.Contains(why, tt.ends) {
				t.Fatalf("allowed %v, refusal %d %q; want 403 saying %q", got, code, why, tt.ends)
			}
		})
	}
}

// ParseActAs runs on every proxied request: on kubectl's usual headers,
// without --as, it should cost next to nothing.
func BenchmarkParseActAs(b *testing.B) {
	var h fasthttp.RequestHeader
	for _, kv := range [][2]string{{"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
		{"User-Agent", "kubectl/v1.31.14 (linux/amd64) kubernetes/abcdef"}, {"Authorization", "Bearer x"},
		{"Kubectl-Command", "kubectl get"}, {"Kubectl-Session", "0a1b2c3d"}, {"Accept-Encoding", "gzip"}} {
		h.Set(kv[0], kv[1])
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseActAs(&h); err != nil {
			b.Fatal(err)
		}
	}
}

// TestActAsUpgrade: exec, attach and port-forward (an Upgrade request)
// take the same decision as any proxied request: a refused --as reaches
// no cluster, an allowed one reaches it as the user with the caller named.
func TestActAsUpgrade(t *testing.T) {
	a := newActAsEnv(t)
	for _, tt := range []struct {
		caller, as string
		code       int
		user       string
	}{
		{"bob", "carol", 403, ""},
		{"helper", "admin", 403, ""},
		{"admin", "system:admin", 403, ""},
		{"admin", "bob", 0, "berth:bob"},
	} {
		before := len(a.upstream.requests())
		req, _ := http.NewRequest("POST", "http://berth/proxy/clusters/prod/api/v1/namespaces/default/pods/p/exec?command=sh&stdin=true", nil)
		req.Header.Set("Authorization", "Bearer "+a.tokens[tt.caller])
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "SPDY/3.1")
		req.Header.Set("Impersonate-User", tt.as)
		resp, err := a.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen := a.upstream.requests()[before:]
		if tt.user == "" {
			if resp.StatusCode != tt.code || len(seen) != 0 {
				t.Errorf("%s as %s: %d, %d requests reached the cluster; want %d and none", tt.caller, tt.as, resp.StatusCode, len(seen), tt.code)
			}
			continue
		}
		if len(seen) != 1 || seen[0].Get("Impersonate-User") != tt.user || seen[0].Get("Impersonate-Extra-Berth.dev%2fimpersonator") != "berth:"+tt.caller {
			t.Errorf("%s as %s: the cluster saw %v", tt.caller, tt.as, seen)
		}
	}
}
