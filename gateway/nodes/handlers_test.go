package nodes

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

// scriptedCluster answers each "METHOD path" (the path without its query)
// as scripted; anything else is a 404 Status, as an API server answers.
type scriptedCluster struct {
	mu      sync.Mutex
	answers map[string]answer
}

type answer struct {
	code int
	body []byte
	err  error
}

func (c *scriptedCluster) Call(_ *identity.Principal, _, method, path, _ string, _ []byte) (int, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path, _, _ = strings.Cut(path, "?")
	if a, ok := c.answers[method+" "+path]; ok {
		return a.code, a.body, a.err
	}
	return 404, kubeStatus(404, metav1.StatusReasonNotFound, "the server could not find the requested resource"), nil
}

// kubeStatus is a Status as a kube-apiserver writes it.
func kubeStatus(code int32, reason metav1.StatusReason, msg string) []byte {
	b, _ := json.Marshal(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: reason, Code: code})
	return b
}

const nodeJSON = `{"metadata":{"name":"edge-1","labels":{"node-role.kubernetes.io/worker":""}},"status":{"conditions":[{"type":"Ready","status":"True"}]}}`

// The node endpoints in-process against a scripted cluster: what the
// cluster answers decides the status, by its Status's reason, with its
// own message; a cluster the caller may not see is 404 before anything
// reaches it.
func TestNodeHandlers(t *testing.T) {
	forbidden := `nodes "edge-1" is forbidden: User "berth:vic" cannot patch resource "nodes" in API group "" at the cluster scope`
	c := &scriptedCluster{answers: map[string]answer{
		"GET /api/v1/nodes":          {200, []byte(`{"items":[` + nodeJSON + `]}`), nil},
		"GET /api/v1/nodes/edge-1":   {200, []byte(nodeJSON), nil},
		"PATCH /api/v1/nodes/edge-1": {403, kubeStatus(403, metav1.StatusReasonForbidden, forbidden), nil},
		"PATCH /api/v1/nodes/edge-2": {409, kubeStatus(409, metav1.StatusReasonConflict, "the object has been modified"), nil},
		"PATCH /api/v1/nodes/edge-3": {0, nil, errors.New("dial tcp 10.0.0.9:6443: connection refused")},
		"PATCH /api/v1/nodes/edge-4": {200, []byte(`{"metadata":{"name":"edge-4"},"spec":{"unschedulable":true}}`), nil},
		// A drain whose pod a budget never lets go.
		"PATCH /api/v1/nodes/edge-5":                         {200, []byte(`{"metadata":{"name":"edge-5"}}`), nil},
		"GET /api/v1/pods":                                   {200, []byte(`{"items":[{"metadata":{"name":"guarded","namespace":"work"}}]}`), nil},
		"POST /api/v1/namespaces/work/pods/guarded/eviction": {429, kubeStatus(429, metav1.StatusReasonTooManyRequests, "Cannot evict pod as it would violate the pod's disruption budget."), nil},
	}}
	e := apitest.New(t)
	h := NewHandlers(NewService(c), e.Authn, e.Audit, func(_ *fasthttp.RequestCtx, cluster string) bool { return cluster == "e2e" })
	read := identity.PermClustersRead
	e.Serve(t, []authn.Route{
		{Method: "GET", Path: "/api/v1/clusters/{name}/nodes", Permission: read, Handler: h.List},
		{Method: "GET", Path: "/api/v1/clusters/{name}/nodes/{node}", Permission: read, Handler: h.Get},
		{Method: "POST", Path: "/api/v1/clusters/{name}/nodes/{node}/cordon", Permission: read, Handler: h.Cordon},
		{Method: "POST", Path: "/api/v1/clusters/{name}/nodes/{node}/uncordon", Permission: read, Handler: h.Uncordon},
		{Method: "POST", Path: "/api/v1/clusters/{name}/nodes/{node}/drain", Permission: read, Handler: h.Drain},
	})
	_, tok := e.User(t, "vic")
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code, msg          string
	}{
		{"list", "GET", "/api/v1/clusters/e2e/nodes", nil, 200, "", `"roles":["worker"]`},
		{"detail", "GET", "/api/v1/clusters/e2e/nodes/edge-1", nil, 200, "", `"ready":true`},
		{"unknown node", "GET", "/api/v1/clusters/e2e/nodes/nope", nil, 404, "not_found", "the server could not find the requested resource"},
		{"cluster not visible", "GET", "/api/v1/clusters/other/nodes", nil, 404, "not_found", "not found"},
		{"RBAC refusal", "POST", "/api/v1/clusters/e2e/nodes/edge-1/cordon", nil, 403, "forbidden", `User \"berth:vic\" cannot patch`},
		{"conflict", "POST", "/api/v1/clusters/e2e/nodes/edge-2/uncordon", nil, 409, "conflict", "the object has been modified"},
		{"unreachable", "POST", "/api/v1/clusters/e2e/nodes/edge-3/cordon", nil, 502, "unavailable", "the cluster could not be reached"},
		{"cordon", "POST", "/api/v1/clusters/e2e/nodes/edge-4/cordon", nil, 200, "", `"unschedulable":true`},
		{"drain timeout too long", "POST", "/api/v1/clusters/e2e/nodes/edge-5/drain", map[string]any{"timeout_seconds": 99999}, 400, "invalid_request", "timeout_seconds must be from 1 to 3600"},
		{"drain held by a budget", "POST", "/api/v1/clusters/e2e/nodes/edge-5/drain", map[string]any{"timeout_seconds": 1}, 504, "unavailable", "drain timed out: 1 pods still on edge-5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.Do(t, tc.method, tc.path, tok, tc.body)
			if status != tc.status || !strings.Contains(string(body), tc.msg) || (tc.code != "" && !strings.Contains(string(body), `"error":"`+tc.code+`"`)) {
				t.Fatalf("%d %s, want %d %s %q", status, body, tc.status, tc.code, tc.msg)
			}
			if strings.Contains(string(body), "10.0.0.9") {
				t.Errorf("the cluster's address leaked: %s", body)
			}
		})
	}
	if !e.HasEvent(t, "node.cordon", "failure") || !e.HasEvent(t, "node.cordon", "success") || !e.HasEvent(t, "node.drain", "failure") {
		t.Error("node operations not audited")
	}
}

// GET …/node-events in-process: the query is checked before the cluster's
// visibility, and a visible cluster's events come newest first.
func TestNodeEventsHandler(t *testing.T) {
	e := apitest.New(t)
	fc := &fakeCluster{clusters: map[string][]map[string]any{"edge": {node("a", "1", "True")}}}
	hist := NewHistory(e.DB, fc, HistoryOptions{Now: e.Now})
	if _, err := hist.ObserveCluster("edge"); err != nil {
		t.Fatal(err)
	}
	h := NewHistoryHandlers(hist, func(_ *fasthttp.RequestCtx, cluster string) bool { return cluster == "edge" })
	e.Serve(t, []authn.Route{{Method: "GET", Path: "/api/v1/clusters/{name}/node-events", Permission: identity.PermClustersRead, Handler: h.Events}})
	_, tok := e.User(t, "nora")
	for _, tc := range []struct {
		name, query string
		status      int
		msg         string
	}{
		{"all", "", 200, `"total":2`},
		{"one kind", "?kind=ready&node=a", 200, `"total":1`},
		{"unknown kind", "?kind=exploded", 400, "kind must be one of joined, ready, not_ready, offline, deleted"},
		{"long node name", "?node=" + strings.Repeat("n", 254), 400, "node must be at most 253 characters"},
		{"bad page size", "?page_size=501", 400, "page_size must be a whole number from 1 to 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.Do(t, "GET", "/api/v1/clusters/edge/node-events"+tc.query, tok, nil)
			if status != tc.status || !strings.Contains(string(body), tc.msg) {
				t.Fatalf("%d %s, want %d %q", status, body, tc.status, tc.msg)
			}
		})
	}
	if status, body, _ := e.Do(t, "GET", "/api/v1/clusters/other/node-events", tok, nil); status != 404 || !strings.Contains(string(body), `"error":"not_found"`) {
		t.Errorf("a cluster the caller may not see: %d %s", status, body)
	}
}
