package join

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/proxy"
)

// apiServer stands in for a cluster's API server: it answers every call
// with code, and a refusal with a Status as a kube-apiserver writes it.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	code int
	seen []string
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{code: http.StatusCreated}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		code := a.code
		a.seen = append(a.seen, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code >= 300 {
			json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
				Reason: metav1.StatusReasonForbidden, Code: int32(code),
				Message: `secrets is forbidden: User "berth:ann" cannot create resource "secrets" in API group "" in the namespace "kube-system"`})
			return
		}
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *apiServer) answer(code int) {
	a.mu.Lock()
	a.code = code
	a.mu.Unlock()
}

// The join-token endpoints and /join in-process, against a stand-in API
// server: refusals answer with their status and message, and a token
// trades once for the script.
func TestJoinHandlers(t *testing.T) {
	e := apitest.New(t)
	reg, err := clusters.NewService(e.DB, e.Box, proxy.NewPool(proxy.PoolOptions{}), e.Audit, e.IDs, e.Log, clusters.Options{Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	api := newAPIServer(t)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	root := &identity.Principal{UserID: "usr_root", Username: "root", Permissions: []string{identity.PermAll}}
	if _, err := reg.Register(context.Background(), root, clusters.Spec{Name: "edge", Conn: &clusters.Connection{Server: api.URL, Token: "gw-token-123456", CAData: ca}}, audit.Event{}); err != nil {
		t.Fatal(err)
	}
	h := NewHandlers(NewService(e.DB, reg, e.Audit, []byte("mac key"), e.Now), e.Authn, func(*fasthttp.RequestCtx) string { return "https://berth.example.com" })
	write := identity.PermClustersWrite
	e.Serve(t, []authn.Route{
		{Method: "POST", Path: "/api/v1/clusters/{name}/join-tokens", Permission: write, Handler: h.Create},
		{Method: "GET", Path: "/api/v1/clusters/{name}/join-tokens", Permission: write, Handler: h.List},
		{Method: "DELETE", Path: "/api/v1/join-tokens/{id}", Permission: write, Handler: h.Revoke},
		{Method: "GET", Path: "/join", Permission: authn.Public, AddrScope: AddrScope, Handler: h.Script},
	})
	_, ann := e.User(t, "ann", identity.RoleAdmin)

	for _, tc := range []struct {
		name, method, path string
		body               any
		clusterSays        int
		status             int
		code, msg          string
	}{
		{"ttl too long", "POST", "/api/v1/clusters/edge/join-tokens", map[string]any{"ttl_seconds": 99999999}, 201, 400, "invalid_request", "ttl_seconds must be from"},
		{"too many uses", "POST", "/api/v1/clusters/edge/join-tokens", map[string]any{"ttl_seconds": 3600, "max_uses": 100000}, 201, 400, "invalid_request", "max_uses must be from 1 to"},
		{"unknown cluster", "POST", "/api/v1/clusters/nope/join-tokens", map[string]any{"ttl_seconds": 3600}, 201, 404, "not_found", "not found"},
		{"the cluster refuses", "POST", "/api/v1/clusters/edge/join-tokens", map[string]any{"ttl_seconds": 3600}, 403, 403, "forbidden", `cannot create resource \"secrets\"`},
		{"list of an unknown cluster", "GET", "/api/v1/clusters/nope/join-tokens", nil, 201, 404, "not_found", "not found"},
		{"revoke an unknown token", "DELETE", "/api/v1/join-tokens/abcdef", nil, 201, 404, "not_found", "not found"},
		{"malformed token", "GET", "/join?token=nope", nil, 201, 404, "not_found", "not found"},
		{"unknown token", "GET", "/join?token=abcdef.0123456789abcdef", nil, 201, 404, "not_found", "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api.answer(tc.clusterSays)
			status, body, _ := e.Do(t, tc.method, tc.path, ann, tc.body)
			if status != tc.status || !strings.Contains(string(body), `"error":"`+tc.code+`"`) || !strings.Contains(string(body), tc.msg) {
				t.Fatalf("%d %s, want %d %s %q", status, body, tc.status, tc.code, tc.msg)
			}
		})
	}

	api.answer(http.StatusCreated)
	out := e.Must(t, 201, "POST", "/api/v1/clusters/edge/join-tokens", ann, map[string]any{"ttl_seconds": 3600, "max_uses": 1})
	var c struct {
		ID          string `json:"id"`
		Value       string `json:"value"`
		JoinCommand string `json:"join_command"`
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	e.Secret(c.Value)
	if c.JoinCommand != "curl -sfL 'https://berth.example.com/join?token="+c.Value+"' | sh -" {
		t.Errorf("create: %s", out)
	}
	if list := e.Must(t, 200, "GET", "/api/v1/clusters/edge/join-tokens", ann, nil); strings.Contains(string(list), c.Value) || !strings.Contains(string(list), `"status":"active"`) {
		t.Errorf("list: %s", list)
	}
	if script := e.Must(t, 200, "GET", "/join?token="+c.Value, "", nil); !strings.HasPrefix(string(script), "#!/bin/sh") {
		t.Errorf("script: %.80s", script)
	}
	// Used up: the same 404 as any other refusal.
	e.Must(t, 404, "GET", "/join?token="+c.Value, "", nil)
	// Revoking deletes the Secret in the cluster; the cluster's refusal of
	// that is the caller's to see.
	api.answer(http.StatusForbidden)
	if status, body, _ := e.Do(t, "DELETE", "/api/v1/join-tokens/"+c.ID, ann, nil); status != 403 || !strings.Contains(string(body), "forbidden") {
		t.Errorf("revoke refused by the cluster: %d %s", status, body)
	}
	api.answer(http.StatusOK)
	e.Must(t, 204, "DELETE", "/api/v1/join-tokens/"+c.ID, ann, nil)
}
