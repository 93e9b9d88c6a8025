package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/breakglass"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/nodes"
)

// kubeAdmin sends one request to the test cluster's API server directly,
// as its admin (system:masters), for set-up a kubelet or an operator would
// do outside Berth.
func (e *e2eCluster) kubeAdmin(t *testing.T, method, path, contentType, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, e.env.Server+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.env.AdminToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := e.env.HTTPClient()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return data
}

// setReady reports a node's Ready condition through the status
// subresource, as its kubelet (or, for Unknown, the node controller) would.
func (e *e2eCluster) setReady(t *testing.T, node, status, reason, message string) {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339)
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{map[string]any{
		"type": "Ready", "status": status, "reason": reason, "message": message,
		"lastHeartbeatTime": now, "lastTransitionTime": now,
	}}}})
	e.kubeAdmin(t, "PATCH", "/api/v1/nodes/"+node+"/status", "application/strategic-merge-patch+json", string(patch))
}

func (e *e2eCluster) createNode(t *testing.T, name string) {
	t.Helper()
	e.kubeAdmin(t, "POST", "/api/v1/nodes", "application/json", fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q}}`, name))
}

// observe runs one observation of the e2e cluster now, instead of waiting
// for the observer's interval, and returns what it recorded as node/kind.
func (e *e2eCluster) observe(t *testing.T, h *nodes.History) []string {
	t.Helper()
	evs, err := h.ObserveCluster("e2e")
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Node+"/"+ev.Kind)
	}
	return out
}

type nodeEventList struct {
	Items []nodes.Event `json:"items"`
	Total int           `json:"total"`
}

// Berth lists a real API server's Nodes as the gateway's own identity
// (bound to nothing but deploy/rbac/berth-rbac.yaml) and records each
// change of their lifecycle; the history survives a restart of the
// observer without announcing the nodes again.
func TestNodeHistoryEndToEnd(t *testing.T) {
	// A long interval keeps the background observer out of the way; the
	// test observes explicitly after each change.
	e := startE2EWith(t, map[string]string{"BERTH_PROXY_PROBE_INTERVAL": "1h"})
	h := e.fleetOps.history
	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{"a node registers, no kubelet status yet", func() { e.createNode(t, "edge-1") }, []string{"edge-1/joined"}},
		{"its kubelet reports not ready", func() {
			e.setReady(t, "edge-1", "False", "KubeletNotReady", "container runtime network not ready")
		}, []string{"edge-1/not_ready"}},
		{"nothing changed", func() {}, nil},
		{"it becomes ready; a second node joins ready", func() {
			e.setReady(t, "edge-1", "True", "KubeletReady", "kubelet is posting ready status")
			e.createNode(t, "edge-2")
			e.setReady(t, "edge-2", "True", "KubeletReady", "kubelet is posting ready status")
		}, []string{"edge-1/ready", "edge-2/joined", "edge-2/ready"}},
		{"the first kubelet stops reporting", func() {
			e.setReady(t, "edge-1", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
		}, []string{"edge-1/offline"}},
		{"the second node is deleted", func() { e.kubeAdmin(t, "DELETE", "/api/v1/nodes/edge-2", "", "") }, []string{"edge-2/deleted"}},
	}
	var all []string
	for _, st := range steps {
		st.change()
		if got := e.observe(t, h); !slices.Equal(got, st.want) {
			t.Fatalf("%s: recorded %q, want %q", st.name, got, st.want)
		}
		all = append(all, st.want...)
	}

	// The API answers newest first.
	list := decode[nodeEventList](t, e.must(t, 200, "GET", "/api/v1/clusters/e2e/node-events", nil, bearer(e.admin)))
	var got []string
	for _, ev := range list.Items {
		got = append([]string{ev.Node + "/" + ev.Kind}, got...)
		if ev.Cluster != "e2e" || ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("event fields: %+v", ev)
		}
	}
	if list.Total != len(all) || !slices.Equal(got, all) {
		t.Fatalf("node-events: %d %q, want %q", list.Total, got, all)
	}
	offline := list.Items[1]
	if offline.Kind != nodes.EventOffline || offline.Reason != "NodeStatusUnknown" || offline.Message != "Kubelet stopped posting node status." || offline.TransitionTime == nil {
		t.Errorf("offline event: %+v", offline)
	}
	for _, q := range []struct {
		query string
		total int
		first string
	}{
		{"?node=edge-1", 4, "edge-1/offline"},
		{"?kind=joined", 2, "edge-2/joined"},
		{"?node=edge-2&kind=deleted", 1, "edge-2/deleted"},
		{"?page=2&page_size=2", len(all), "edge-2/ready"},
		{"?node=nope", 0, ""},
	} {
		l := decode[nodeEventList](t, e.must(t, 200, "GET", "/api/v1/clusters/e2e/node-events"+q.query, nil, bearer(e.admin)))
		first := ""
		if len(l.Items) > 0 {
			first = l.Items[0].Node + "/" + l.Items[0].Kind
		}
		if l.Total != q.total || first != q.first {
			t.Errorf("%s: total %d first %q, want %d %q", q.query, l.Total, first, q.total, q.first)
		}
	}
	for _, bad := range []string{"?kind=rebooted", "?page=0", "?node=" + strings.Repeat("n", 254)} {
		if status, body, _ := e.call(t, "GET", "/api/v1/clusters/e2e/node-events"+bad, nil, bearer(e.admin)); status != 400 {
			t.Errorf("%s: %d %s", bad, status, body)
		}
	}

	// A restarted gateway (a new observer over the same store) compares
	// with the stored state: no node is announced as joined again.
	h2 := nodes.NewHistory(e.db, e.clusters, nodes.HistoryOptions{Now: e.clock.Now})
	if got := e.observe(t, h2); len(got) != 0 {
		t.Errorf("after restart: recorded %q", got)
	}
	e.setReady(t, "edge-1", "True", "KubeletReady", "kubelet is posting ready status")
	if got := e.observe(t, h2); !slices.Equal(got, []string{"edge-1/ready"}) {
		t.Errorf("after restart, edge-1 back: %q", got)
	}

	// Members may read it; others do not learn the cluster exists.
	e.createUser(t, e.admin, "vic", "vic-password-12345", "user")
	e.createUser(t, e.admin, "nora", "nora-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "vic", "role": "view"}, bearer(e.admin))
	vic := e.login(t, "vic", "vic-password-12345").AccessToken
	nora := e.login(t, "nora", "nora-password-12345").AccessToken
	if l := decode[nodeEventList](t, e.must(t, 200, "GET", "/api/v1/clusters/e2e/node-events", nil, bearer(vic))); l.Total != len(all)+1 {
		t.Errorf("view member sees %d events", l.Total)
	}
	for _, path := range []string{"/api/v1/clusters/e2e/node-events", "/api/v1/clusters/nope/node-events"} {
		if status, _, _ := e.call(t, "GET", path, nil, bearer(nora)); status != 404 {
			t.Errorf("non-member %s: %d, want 404", path, status)
		}
	}
}

// kubeconfigToken is the bearer token inside a kubeconfig.
func kubeconfigToken(t *testing.T, kc []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(kc), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "token: "); ok {
			return v
		}
	}
	t.Fatalf("no token in kubeconfig:\n%s", kc)
	return ""
}

// A break-glass kubeconfig reaches the real kube-apiserver directly, as a
// cluster-admin ServiceAccount, with real kubectl and nothing but the
// file; it is refused to members below cluster-admin, to a wrong
// password (creating nothing in the cluster) and to machine credentials,
// and it stops working when its holder loses cluster-admin or the cluster
// is unregistered.
func TestAdminKubeconfigEndToEnd(t *testing.T) {
	e := startE2E(t)
	ctx := context.Background()
	const path = "/api/v1/clusters/e2e/kubeconfig"

	status, kc, hdr := e.call(t, "POST", path, map[string]any{"password": adminPassword}, bearer(e.admin))
	if status != 200 {
		t.Fatalf("admin: %d %s", status, kc)
	}
	token := kubeconfigToken(t, kc)
	e.secret(token) // searched for in logs, audit and store when the test ends
	if hdr.Get("Cache-Control") != "no-store" || !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment;") || !strings.HasPrefix(hdr.Get("Content-Type"), "application/yaml") {
		t.Errorf("headers: %v", hdr)
	}
	if !strings.Contains(string(kc), "server: "+e.env.Server+"\n") || strings.Contains(string(kc), "/proxy/clusters/") {
		t.Fatalf("the kubeconfig does not point straight at the API server:\n%s", kc)
	}
	// The token lasts TokenTTL, as the cluster issued it.
	var claims struct{ Exp, Iat int64 }
	if parts := strings.Split(token, "."); len(parts) == 3 {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(payload, &claims)
	}
	if claims.Exp-claims.Iat != int64(breakglass.TokenTTL/time.Second) {
		t.Errorf("token lifetime %d s, want %d", claims.Exp-claims.Iat, int64(breakglass.TokenTTL/time.Second))
	}

	// Real kubectl, with only this file, straight to kube-apiserver.
	file := filepath.Join(t.TempDir(), "admin.kubeconfig")
	os.WriteFile(file, kc, 0o600)
	if out, err := e.env.KubectlWith(ctx, file, "auth", "can-i", "*", "*"); err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Fatalf("kubectl auth can-i '*' '*': %q %v", out, err)
	}
	adminSA := breakglass.ServiceAccountName(&identity.Principal{Username: "admin", UserID: e.userID(t, "admin")})
	if out, err := e.env.KubectlWith(ctx, file, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || string(out) != "system:serviceaccount:kube-system:"+adminSA {
		t.Errorf("kubectl auth whoami: %q %v, want %s", out, err, adminSA)
	}
	e.createNode(t, "edge-9")
	if out, err := e.env.KubectlWith(ctx, file, "get", "nodes", "-o", "name"); err != nil || strings.TrimSpace(string(out)) != "node/edge-9" {
		t.Errorf("kubectl get nodes: %q %v", out, err)
	}
	labels, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccount", adminSA, "-o", "jsonpath={.metadata.labels}")
	if err != nil || !strings.Contains(string(labels), `"berth.dev/break-glass":"true"`) {
		t.Errorf("ServiceAccount labels: %s %v", labels, err)
	}
	// Asking again reuses the ServiceAccount and its binding.
	kc2 := e.must(t, 200, "POST", path, map[string]any{"password": adminPassword}, bearer(e.admin))
	e.secret(kubeconfigToken(t, kc2))

	// A cluster-admin member who is not a fleet admin: a wrong password is
	// 403 and creates nothing; the right one works.
	carl := e.createUser(t, e.admin, "carl", "carl-password-12345", "user")
	carlMember := decode[struct{ ID string }](t, e.must(t, 201, "POST", "/api/v1/clusters/e2e/members",
		map[string]any{"user": "carl", "role": "cluster-admin"}, bearer(e.admin))).ID
	carlTok := e.login(t, "carl", "carl-password-12345").AccessToken
	carlSA := breakglass.ServiceAccountName(&identity.Principal{Username: "carl", UserID: carl.ID})
	if status, body, _ := e.call(t, "POST", path, map[string]any{"password": "not-carls-password"}, bearer(carlTok)); status != 403 || !strings.Contains(string(body), "password is wrong") {
		t.Errorf("wrong password: %d %s", status, body)
	}
	if out, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccount", carlSA); err == nil {
		t.Errorf("a wrong password created %s: %s", carlSA, out)
	}
	if out, err := e.env.Kubectl(ctx, "get", "clusterrolebinding", carlSA); err == nil {
		t.Errorf("a wrong password created the binding %s: %s", carlSA, out)
	}
	carlKC := e.must(t, 200, "POST", path, map[string]any{"password": "carl-password-12345"}, bearer(carlTok))
	e.secret(kubeconfigToken(t, carlKC))
	carlFile := filepath.Join(t.TempDir(), "carl.kubeconfig")
	os.WriteFile(carlFile, carlKC, 0o600)
	if out, err := e.env.KubectlWith(ctx, carlFile, "auth", "can-i", "delete", "nodes"); err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Errorf("carl's kubeconfig: %q %v", out, err)
	}

	// Refusals.
	e.createUser(t, e.admin, "vic", "vic-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "vic", "role": "view"}, bearer(e.admin))
	vic := e.login(t, "vic", "vic-password-12345").AccessToken
	apiKey := decode[apiKeyOut](t, e.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "ci"}, bearer(e.admin))).Key
	e.secret(apiKey)
	proxyKC := e.must(t, 200, "POST", path, nil, bearer(e.admin)) // no body: the kubeconfig through Berth
	scoped := kubeconfigToken(t, proxyKC)
	e.secret(scoped)
	if !strings.Contains(string(proxyKC), "/proxy/clusters/e2e") || strings.Contains(string(proxyKC), "server: "+e.env.Server+"\n") {
		t.Errorf("GET kubeconfig does not go through Berth:\n%s", proxyKC)
	}
	for _, tc := range []struct {
		name   string
		tok    string
		body   any
		path   string
		status int
		msg    string
	}{
		{"view member", vic, map[string]any{"password": "vic-password-12345"}, path, 403, "cluster-admin role"},
		{"API key", apiKey, map[string]any{"password": adminPassword}, path, 403, "password sign-in"},
		{"scoped kubeconfig key", scoped, map[string]any{"password": adminPassword}, path, 403, "password sign-in"},
		{"no password", e.admin, map[string]any{}, path, 400, "password is required"},
		{"unknown field", e.admin, map[string]any{"password": adminPassword, "ttl": 9}, path, 400, "unknown field"},
		{"unknown cluster", e.admin, map[string]any{"password": adminPassword}, "/api/v1/clusters/nope/kubeconfig", 404, "not found"},
	} {
		status, body, _ := e.call(t, "POST", tc.path, tc.body, bearer(tc.tok))
		if status != tc.status || !strings.Contains(string(body), tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, status, body, tc.status, tc.msg)
		}
	}
	out, _ := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccounts", "-l", "berth.dev/break-glass=true", "-o", "name")
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"serviceaccount/" + adminSA, "serviceaccount/" + carlSA}) && !slices.Equal(got, []string{"serviceaccount/" + carlSA, "serviceaccount/" + adminSA}) {
		t.Errorf("break-glass ServiceAccounts: %q", got)
	}

	// Carl loses cluster-admin: Berth deletes his ServiceAccount and its
	// binding, which revokes his token. The API server looks the account
	// up through an informer, so the deletion reaches its authenticator a
	// moment after Berth's sweep: poll, bounded.
	e.must(t, 204, "DELETE", "/api/v1/clusters/e2e/members/"+carlMember, nil, bearer(e.admin))
	revoked, last := false, ""
	for i := 0; i < 60 && !revoked; i++ {
		o, err := e.env.KubectlWith(ctx, carlFile, "auth", "can-i", "get", "nodes")
		last = fmt.Sprint(string(o), err)
		revoked = err != nil && strings.Contains(err.Error(), "Unauthorized")
		if !revoked {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if !revoked {
		t.Errorf("carl's token still works 30 s after he lost cluster-admin: %s", last)
	}
	if out, err := e.env.Kubectl(ctx, "get", "clusterrolebinding", carlSA); err == nil {
		t.Errorf("carl's binding outlived his role: %s", out)
	}
	// The admin, still cluster-admin everywhere, keeps his.
	if _, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccount", adminSA); err != nil {
		t.Errorf("the sweep removed the admin's ServiceAccount: %v", err)
	}
	if out, err := e.env.KubectlWith(ctx, file, "auth", "can-i", "get", "nodes"); err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Errorf("the admin's kubeconfig after the sweep: %q %v", out, err)
	}
	// The audit event follows both deletes: poll, bounded.
	var revocations []audit.Event
	for i := 0; i < 40 && len(revocations) == 0; i++ {
		if revocations = e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: breakglass.RevokeAction}); len(revocations) == 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if len(revocations) != 1 || revocations[0].Result != audit.ResultSuccess || revocations[0].Details["service_account"] != "kube-system/"+carlSA {
		t.Errorf("revocation audit: %+v", revocations)
	}

	// Disabling a user revokes too (a write to the user, not to a
	// membership).
	dora := e.createUser(t, e.admin, "dora", "dora-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "dora", "role": "cluster-admin"}, bearer(e.admin))
	doraKC := e.must(t, 200, "POST", path, map[string]any{"password": "dora-password-12345"}, bearer(e.login(t, "dora", "dora-password-12345").AccessToken))
	e.secret(kubeconfigToken(t, doraKC))
	doraSA := breakglass.ServiceAccountName(&identity.Principal{Username: "dora", UserID: dora.ID})
	if _, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccount", doraSA); err != nil {
		t.Fatalf("dora's ServiceAccount: %v", err)
	}
	e.must(t, 200, "PUT", "/api/v1/users/"+dora.ID, map[string]any{"status": "disabled"}, bearer(e.admin))
	gone := false
	for i := 0; i < 60 && !gone; i++ {
		_, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccount", doraSA)
		if gone = err != nil; !gone {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if !gone {
		t.Error("a disabled user's break-glass ServiceAccount is still there after 30 s")
	}

	// Audited, success and failure, without the token.
	reasons := map[string]bool{}
	for _, ev := range e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: breakglass.Action}) {
		reasons[ev.Result+"/"+ev.Reason] = true
		if ev.Result == audit.ResultSuccess && ev.Details["service_account"] == "" {
			t.Errorf("success without the ServiceAccount: %+v", ev)
		}
	}
	for _, want := range []string{"success/", "failure/bad_password", "failure/not_cluster_admin", "failure/not_password_sign_in", "failure/not_found"} {
		if !reasons[want] {
			t.Errorf("no audit event %s; have %v", want, reasons)
		}
	}
	evs, _ := json.Marshal(e.auditEvents(t, audit.Query{}))
	if bytes.Contains(evs, []byte(token)) || strings.Contains(e.logs.String(), token) {
		t.Error("the token is in the audit log or the gateway's log")
	}

	// Unregistering the cluster revokes what is left, the admin's grant,
	// in the background once the DELETE is answered: poll, bounded.
	e.must(t, 204, "DELETE", "/api/v1/clusters/e2e", nil, bearer(e.admin))
	waitFor(t, 30*time.Second, "the admin's kubeconfig to be refused after unregistering", func() error {
		o, err := e.env.KubectlWith(ctx, file, "auth", "can-i", "get", "nodes")
		if err != nil && strings.Contains(err.Error(), "Unauthorized") {
			return nil
		}
		return fmt.Errorf("still answered: %s %v", o, err)
	})
	if out, err := e.env.Kubectl(ctx, "-n", "kube-system", "get", "serviceaccount", adminSA); err == nil {
		t.Errorf("the admin's ServiceAccount outlived the cluster's registration: %s", out)
	}
	if out, err := e.env.Kubectl(ctx, "get", "clusterrolebinding", adminSA); err == nil {
		t.Errorf("the admin's binding outlived the cluster's registration: %s", out)
	}
	// Its audit event follows both deletes: poll, bounded.
	waitFor(t, 10*time.Second, "the unregistering's revocation to be audited", func() error {
		var final *audit.Event
		for _, ev := range e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: breakglass.RevokeAction}) {
			if ev.Details["trigger"] == "cluster_unregistered" {
				final = &ev
			}
		}
		if final == nil || final.Result != audit.ResultSuccess || final.Details["service_account"] != "kube-system/"+adminSA ||
			final.Details["deleted_by"] != "admin" {
			return fmt.Errorf("have %+v", final)
		}
		return nil
	})
}

// userID is the id of a Berth user, by name.
func (e *e2eCluster) userID(t *testing.T, username string) string {
	t.Helper()
	list := decode[struct {
		Items []userOut `json:"items"`
	}](t, e.must(t, 200, "GET", "/api/v1/users?page_size=500", nil, bearer(e.admin)))
	for _, u := range list.Items {
		if u.Username == username {
			return u.ID
		}
	}
	t.Fatalf("no user %s", username)
	return ""
}
