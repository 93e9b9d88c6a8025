package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
)

// Berth's audit of proxied requests follows how the real kube-apiserver
// parses them. Each variant of an exec, attach, port-forward or proxy
// path goes through Berth to the real apiserver; its answer shows whether
// the subresource's handler ran (its own error about the pod, node or
// service) or no route matched ("the server could not find the requested
// resource"). Berth's audit event must name the subresource exactly when
// the handler ran — a trailing slash or an escaped letter no longer hides
// an exec — and paths Berth refuses (duplicate slashes, a changed case in
// the root) never reach the apiserver or the audit log.
func TestProxyAuditFollowsAPIServerParsing(t *testing.T) {
	e := startE2E(t)
	e.must(t, 201, "POST", "/proxy/clusters/e2e/api/v1/namespaces/default/pods", map[string]any{
		"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "box"},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}},
	}, bearer(e.admin))
	const (
		api = "/proxy/clusters/e2e/api/v1"
		pod = api + "/namespaces/default/pods/box"
	)
	tests := []struct {
		method, path string
		// routed says whether the apiserver has a handler for the path;
		// the test checks it against the apiserver's answer.
		routed bool
		// action is the audit event Berth must record, "" for none.
		action string
	}{
		{"POST", pod + "/exec?command=sh", true, "proxy.exec"},
		{"GET", pod + "/exec?command=sh", true, "proxy.exec"},
		{"POST", pod + "/exec/?command=sh", true, "proxy.exec"},
		{"GET", pod + "/exec/?command=sh", true, "proxy.exec"},
		{"GET", pod + "/%65xec?command=sh", true, "proxy.exec"},
		{"POST", pod + "/EXEC?command=sh", false, "proxy.create"},
		{"GET", pod + "/EXEC?command=sh", false, ""},
		{"GET", pod + "/exec/more?command=sh", false, ""},
		{"POST", pod + "/attach", true, "proxy.attach"},
		{"GET", pod + "/attach/", true, "proxy.attach"},
		{"GET", pod + "/%61ttach", true, "proxy.attach"},
		{"POST", pod + "/portforward", true, "proxy.portforward"},
		{"GET", pod + "/portforward/?ports=80", true, "proxy.portforward"},
		{"GET", pod + "/proxy", true, "proxy.proxy"},
		{"GET", pod + "/proxy/", true, "proxy.proxy"},
		{"GET", pod + "/proxy/some/path", true, "proxy.proxy"},
		{"GET", api + "/namespaces/default/pods/box:80/proxy/", true, "proxy.proxy"},
		{"GET", pod + "/PROXY/", false, ""},
		{"GET", api + "/nodes/nowhere/proxy/metrics", true, "proxy.proxy"},
		{"GET", api + "/nodes/nowhere/proxy/", true, "proxy.proxy"},
		{"GET", api + "/namespaces/default/services/nosvc/proxy/", true, "proxy.proxy"},
		{"GET", api + "/namespaces/default/services/nosvc/pr%6Fxy", true, "proxy.proxy"},
		// The old /api/v1/proxy/... form is gone from the apiserver.
		{"GET", api + "/proxy/namespaces/default/pods/box", false, ""},
		{"GET", pod, true, ""},
		{"DELETE", api + "/namespaces/default/configmaps", true, "proxy.deletecollection"},
	}
	for _, tt := range tests {
		status, body, hdr := e.call(t, tt.method, tt.path, nil, bearer(e.admin))
		if routed := apiserverRouted(t, status, body); routed != tt.routed {
			t.Errorf("%s %s: the apiserver answered %d %s; the test expects routed=%v", tt.method, tt.path, status, body, tt.routed)
		}
		// A connect subresource is audited exactly when the apiserver
		// serves the path.
		if connect := strings.HasPrefix(tt.action, "proxy.exec") || strings.HasPrefix(tt.action, "proxy.attach") ||
			strings.HasPrefix(tt.action, "proxy.portforward") || strings.HasPrefix(tt.action, "proxy.proxy"); connect && !tt.routed {
			t.Fatalf("bad table row: %s %s", tt.method, tt.path)
		}
		got := ""
		for _, ev := range eventsOfRequest(t, e.authGW, hdr.Get("X-Request-Id")) {
			got += ev.Action
		}
		if got != tt.action {
			t.Errorf("%s %s (apiserver: %d): audited %q, want %q", tt.method, tt.path, status, got, tt.action)
		}
	}

	// Paths the proxy refuses never reach the apiserver or the audit log.
	for _, path := range []string{
		pod + "//exec?command=sh",
		api + "/namespaces/default/pods//box/exec?command=sh",
		"/proxy/clusters/e2e/API/v1/namespaces/default/pods/box/exec?command=sh",
		pod + "/%2e%2e/box/exec?command=sh",
		pod + "/exec%2F?command=sh",
	} {
		status, body, hdr := e.call(t, "POST", path, nil, bearer(e.admin))
		if status != 400 || !strings.Contains(string(body), "path is not allowed through the proxy") {
			t.Errorf("POST %s: %d %s, want the proxy's 400", path, status, body)
		}
		if evs := eventsOfRequest(t, e.authGW, hdr.Get("X-Request-Id")); len(evs) != 0 {
			t.Errorf("POST %s: refused, yet audited %+v", path, evs)
		}
	}
}

// apiserverRouted reads a kube-apiserver answer: true when a handler of
// the path ran (it answered about the object: a result, its own 400, or a
// NotFound naming the object), false when no route matched.
func apiserverRouted(t *testing.T, status int, body []byte) bool {
	t.Helper()
	var st struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Details struct {
			Kind string `json:"kind"`
		} `json:"details"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
		return status < 400 // a real answer, not an error
	}
	if status == 404 && st.Details.Kind == "" && st.Message == "the server could not find the requested resource" {
		return false
	}
	return true
}

// eventsOfRequest returns the audit events Berth wrote for request id.
func eventsOfRequest(t *testing.T, ag *authGW, id string) []audit.Event {
	t.Helper()
	if id == "" {
		t.Fatal("no X-Request-Id on the response")
	}
	var out []audit.Event
	for _, ev := range ag.auditEvents(t, audit.Query{Category: "cluster"}) {
		if ev.RequestID == id {
			out = append(out, ev)
		}
	}
	return out
}

// The cluster sees Berth's request id, never the client's, in the
// impersonated extra berth.dev/request-id: the real apiserver's
// SelfSubjectReview reports the extras it received, and the audit event
// links both ids.
func TestProxyImpersonatesBerthsRequestID(t *testing.T) {
	e := startE2E(t)
	const forged = "someone-elses-request-0001"
	status, body, hdr := e.call(t, "POST", "/proxy/clusters/e2e/apis/authentication.k8s.io/v1/selfsubjectreviews",
		map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
		bearer(e.admin), header("X-Request-Id", forged))
	var review struct {
		Status struct {
			UserInfo struct {
				Username string              `json:"username"`
				Extra    map[string][]string `json:"extra"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if status != 201 || json.Unmarshal(body, &review) != nil {
		t.Fatalf("selfsubjectreview: %d %s", status, body)
	}
	id := hdr.Get("X-Request-Id")
	got := review.Status.UserInfo.Extra["berth.dev/request-id"]
	if id == forged || len(got) != 1 || got[0] != id {
		t.Fatalf("the cluster saw request id %v, Berth answered %q, the client sent %q", got, id, forged)
	}
	evs := eventsOfRequest(t, e.authGW, id)
	if len(evs) != 1 || evs[0].ClientRequestID != forged {
		t.Errorf("audit events of the request: %+v, want one with client_request_id %q", evs, forged)
	}
}
