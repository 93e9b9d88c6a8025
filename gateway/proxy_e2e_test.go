package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/clusters"
)

// e2eCluster is a real etcd + kube-apiserver registered in a real Berth,
// reached with the pinned kubectl through Berth's proxy.
type e2eCluster struct {
	*authGW
	env   *kubeenv.Env
	admin string // Berth admin access token
	// scraper is an API key of the admin's for /metrics: unlike an access
	// token, it outlives a signing-key rotation.
	scraper string
	dir     string
}

func startE2E(t *testing.T) *e2eCluster {
	t.Helper()
	return startE2EWith(t, nil)
}

// startE2EWith is startE2E with extra BERTH_* settings.
func startE2EWith(t *testing.T, extraEnv map[string]string) *e2eCluster {
	t.Helper()
	return startE2EOn(t, extraEnv, stoppedClock())
}

// startE2EOn is startE2EWith on clock.
func startE2EOn(t *testing.T, extraEnv map[string]string, clock *fakeClock) *e2eCluster {
	t.Helper()
	env := kube.ForTest(t)
	ctx := context.Background()
	// Berth's identity in the cluster is the unprivileged user, bound to
	// nothing but the documented impersonator role: proof that role is
	// enough.
	manifest, err := os.ReadFile("../deploy/rbac/berth-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rbac := filepath.Join(dir, "rbac.yaml")
	os.WriteFile(rbac, []byte(strings.ReplaceAll(string(manifest), "BERTH_GATEWAY_USER", kubeenv.UnprivilegedUser)), 0o600)
	if out, err := env.Kubectl(ctx, "apply", "-f", rbac); err != nil {
		t.Fatalf("apply rbac: %v\n%s", err, out)
	}
	// The built-in view/edit/admin ClusterRoles are aggregated by
	// kube-controller-manager, which this environment does not run, so
	// they have no rules here. Bind the view group to an explicit
	// read-only role as well; the manifest's own bindings stay as shipped.
	readOnly := filepath.Join(dir, "read-only.yaml")
	os.WriteFile(readOnly, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-read-only}
rules:
- apiGroups: ["", "apps"]
  resources: ["configmaps", "deployments", "pods", "namespaces"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-berth-role-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-read-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "berth:role:view"}]
`), 0o600)
	if out, err := env.Kubectl(ctx, "apply", "-f", readOnly); err != nil {
		t.Fatalf("apply read-only role: %v\n%s", err, out)
	}

	vars := map[string]string{"BERTH_RATE_LIMITS_PROXY_REQUESTS": "0"}
	for k, v := range extraEnv {
		vars[k] = v
	}
	ag := startAuthOn(t, vars, clock)
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.secret(env.UserToken, env.AdminToken)
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "e2e", "server": env.Server, "token": env.UserToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(env.CAData),
	}, bearer(admin))
	scraper := decode[struct {
		Key string `json:"key"`
	}](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "metrics"}, bearer(admin))).Key
	ag.secret(scraper)
	return &e2eCluster{authGW: ag, env: env, admin: admin, scraper: scraper, dir: dir}
}

// kubeconfigFor downloads a kubeconfig for the bearer of token and returns
// its path; it points at Berth's HTTPS listener and trusts its certificate.
func (e *e2eCluster) kubeconfigFor(t *testing.T, who, token string) string {
	t.Helper()
	data := e.must(t, 200, "POST", "/api/v1/clusters/e2e/kubeconfig", nil, bearer(token))
	if !strings.Contains(string(data), "/proxy/clusters/e2e") || !strings.Contains(string(data), "certificate-authority-data") {
		t.Fatalf("kubeconfig: %s", data)
	}
	var tok string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "token: "); ok {
			tok = v
		}
	}
	e.secret(tok)
	path := filepath.Join(e.dir, who+".kubeconfig")
	os.WriteFile(path, data, 0o600)
	return path
}

// kubectlCmd runs kubectl through Berth with a discovery cache of this
// test's and this kubeconfig's own. The default cache (~/.kube/cache) is
// keyed by host and port only: an earlier test's gateway on the same port
// left discovery there that answered 304 for this one, and kubectls
// running side by side (a watch and a command) would share it.
func (e *e2eCluster) kubectlCmd(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	cache := e.kubectlCacheDir(kubeconfig)
	return exec.CommandContext(ctx, e.env.KubectlPath, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", cache}, args...)...)
}

// kubectl runs kubectl through Berth. A read-only command runs twice with
// the same cache directory, the second time after its discovery cache
// expired (see expireDiscovery), and must give the same outcome both times:
// a user's kubectl reuses ~/.kube/cache for months.
func (e *e2eCluster) kubectl(t *testing.T, kubeconfig string, stdin string, args ...string) (string, error) {
	t.Helper()
	out, err := e.kubectlOnce(kubeconfig, stdin, args...)
	if !readOnlyKubectl(args) {
		return out, err
	}
	e.expireDiscovery(t, kubeconfig)
	if out2, err2 := e.kubectlOnce(kubeconfig, stdin, args...); !sameOutcome(out, err, out2, err2) {
		t.Errorf("kubectl %s, again with the same cache dir after its discovery expired, gave another outcome:\nfirst (%v):\n%s\nsecond (%v):\n%s",
			strings.Join(args, " "), err, out, err2, out2)
	}
	return out, err
}

// kubectlOnce runs kubectl through Berth once.
func (e *e2eCluster) kubectlOnce(kubeconfig string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.kubectlCmd(ctx, kubeconfig, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *e2eCluster) mustKubectl(t *testing.T, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	out, err := e.kubectl(t, kubeconfig, stdin, args...)
	if err != nil {
		logs := strings.Split(e.logs.String(), "\n")
		t.Fatalf("kubectl %s: %v\n%s\nlast gateway log lines:\n%s", strings.Join(args, " "), err, out,
			strings.Join(logs[max(0, len(logs)-8):], "\n"))
	}
	return out
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
`

func TestProxyKubectlEndToEnd(t *testing.T) {
	e := startE2E(t)
	kc := e.kubeconfigFor(t, "admin", e.admin)

	// The connection test reaches the real apiserver and records what it
	// saw; a wrong credential is an error, not "unreachable".
	type testResult struct {
		Reachable         bool   `json:"reachable"`
		KubernetesVersion string `json:"kubernetes_version"`
		LatencyMS         *int64 `json:"latency_ms"`
		Error             string `json:"error"`
	}
	type clusterView struct {
		ConnectionStatus  string `json:"connection_status"`
		KubernetesVersion string `json:"kubernetes_version"`
		LastObservedAt    string `json:"last_observed_at"`
		LastError         string `json:"last_error"`
	}
	tr := decode[testResult](t, e.must(t, 200, "POST", "/api/v1/clusters/e2e/test", nil, bearer(e.admin)))
	if !tr.Reachable || tr.KubernetesVersion != kubeenv.Version || tr.LatencyMS == nil || tr.Error != "" {
		t.Errorf("test of a reachable cluster: %+v", tr)
	}
	cv := decode[clusterView](t, e.must(t, 200, "GET", "/api/v1/clusters/e2e", nil, bearer(e.admin)))
	if cv.ConnectionStatus != "reachable" || cv.KubernetesVersion != kubeenv.Version || cv.LastObservedAt == "" || cv.LastError != "" {
		t.Errorf("cluster after a good probe: %+v", cv)
	}
	e.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "e2e-wrong-token", "server": e.env.Server, "token": "not-a-valid-token",
		"certificate_authority_data": base64.StdEncoding.EncodeToString(e.env.CAData),
	}, bearer(e.admin))
	tr = decode[testResult](t, e.must(t, 200, "POST", "/api/v1/clusters/e2e-wrong-token/test", nil, bearer(e.admin)))
	cv = decode[clusterView](t, e.must(t, 200, "GET", "/api/v1/clusters/e2e-wrong-token", nil, bearer(e.admin)))
	if tr.Reachable || tr.Error == "" || cv.ConnectionStatus != "error" || cv.LastError == "" || cv.LastObservedAt == "" {
		t.Errorf("cluster with a wrong token: test %+v, cluster %+v", tr, cv)
	}

	// Discovery, raw paths and version through Berth. kubectl --raw
	// replaces the server URL's path, so the raw path names the cluster.
	if out := e.mustKubectl(t, kc, "", "get", "--raw", "/proxy/clusters/e2e/version"); !strings.Contains(out, kubeenv.Version) {
		t.Fatalf("get --raw /version: %s", out)
	}
	if out := e.mustKubectl(t, kc, "", "get", "namespaces"); !strings.Contains(out, "kube-system") {
		t.Fatalf("get namespaces: %s", out)
	}
	e.mustKubectl(t, kc, "", "create", "namespace", "team-a")

	// Client-side apply, then server-side apply, then patches.
	e.mustKubectl(t, kc, deployment, "apply", "-f", "-")
	e.mustKubectl(t, kc, strings.Replace(deployment, "replicas: 2", "replicas: 3", 1), "apply", "--server-side", "--field-manager=e2e", "--force-conflicts", "-f", "-")
	e.mustKubectl(t, kc, "", "-n", "team-a", "patch", "deployment", "web", "-p", `{"metadata":{"labels":{"patched":"strategic"}}}`)
	e.mustKubectl(t, kc, "", "-n", "team-a", "patch", "deployment", "web", "--type=json", "-p", `[{"op":"add","path":"/metadata/labels/jsonpatch","value":"yes"}]`)
	e.mustKubectl(t, kc, "", "-n", "team-a", "patch", "deployment", "web", "--type=merge", "-p", `{"spec":{"replicas":4}}`)
	out := e.mustKubectl(t, kc, "", "-n", "team-a", "get", "deployment", "web", "-o", "json", "--show-managed-fields")
	var dep struct {
		Metadata struct {
			Labels        map[string]string
			ManagedFields []struct{ Manager string }
		}
		Spec struct{ Replicas int }
	}
	if err := json.Unmarshal([]byte(out), &dep); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, out)
	}
	if dep.Spec.Replicas != 4 || dep.Metadata.Labels["patched"] != "strategic" || dep.Metadata.Labels["jsonpatch"] != "yes" {
		t.Errorf("after patches: replicas=%d labels=%v", dep.Spec.Replicas, dep.Metadata.Labels)
	}
	managers := fmt.Sprint(dep.Metadata.ManagedFields)
	if !strings.Contains(managers, "e2e") {
		t.Errorf("server-side apply field manager missing: %s", managers)
	}
	if out := e.mustKubectl(t, kc, "", "-n", "team-a", "get", "deployments", "-l", "tier=front", "-o", "name"); strings.TrimSpace(out) != "deployment.apps/web" {
		t.Errorf("label selector: %q", out)
	}
	if out := e.mustKubectl(t, kc, "", "-n", "team-a", "describe", "deployment", "web"); !strings.Contains(out, "nginx:1.27") {
		t.Errorf("describe: %s", out)
	}
	// Table output (the default for get) passes untouched.
	if out := e.mustKubectl(t, kc, "", "-n", "team-a", "get", "deployments"); !strings.Contains(out, "READY") {
		t.Errorf("table output: %s", out)
	}

	// A large write streams through (1 MiB of data in one ConfigMap, near
	// etcd's limit for an object); a body over limits.max_body_bytes is
	// refused by Berth with a Status before it reaches the cluster.
	big := filepath.Join(e.dir, "big.txt")
	os.WriteFile(big, bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o600)
	e.mustKubectl(t, kc, "", "-n", "team-a", "create", "configmap", "big", "--from-file=data="+big)
	if out := e.mustKubectl(t, kc, "", "-n", "team-a", "get", "configmap", "big", "-o", "jsonpath={.data.data}"); len(out) != 1<<20 {
		t.Errorf("big configmap came back with %d bytes of data", len(out))
	}
	// (A raw connection: Berth answers after the first bytes, while a Go
	// client would still be writing and report the reset instead.)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.http, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /proxy/clusters/e2e/api/v1/namespaces/team-a/configmaps HTTP/1.1\r\nHost: berth\r\n"+
		"Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", e.admin, 5<<20, bytes.Repeat([]byte(" "), 16<<10))
	hresp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("5 MiB body: %v", err)
	}
	hbody, _ := io.ReadAll(hresp.Body)
	conn.Close()
	if hresp.StatusCode != 413 || !strings.Contains(string(hbody), `"kind":"Status"`) {
		t.Errorf("5 MiB body: %d %s", hresp.StatusCode, hbody)
	}

	// get -w: events arrive while the watch is open.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := e.kubectlCmd(ctx, kc, "-n", "team-a", "get", "configmaps", "-w", "-o", "name")
	stdout, _ := w.StdoutPipe()
	var werr strings.Builder
	w.Stderr = &werr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Create the configmap until the watch reports it (the watch may
	// start after the first create; a bounded wait, not a timing check).
	seen := false
	for i := 0; i < 20 && !seen; i++ {
		e.mustKubectl(t, kc, "", "-n", "team-a", "create", "configmap", fmt.Sprintf("watched-%d", i))
		deadline := time.After(3 * time.Second)
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					w.Wait()
					t.Fatalf("watch ended early: %s", werr.String())
				}
				if strings.HasPrefix(l, "configmap/watched-") {
					seen = true
					break wait
				}
			case <-deadline:
				break wait
			}
		}
	}
	// The open watch shows in the per-cluster stream gauge, and leaves it
	// when the client goes. Bounded waits, not timing checks: kubectl may
	// have shown the configmap from its initial list, before its watch
	// request reached Berth.
	gauge := func(v string) bool {
		want := `berth_proxy_open_streams{cluster="e2e",kind="watch"} ` + v
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if _, m := e.scrape(t, e.scraper); strings.Contains(string(m), want) {
				return true
			}
		}
		return false
	}
	if seen && !gauge("1") {
		t.Error("the watch gauge never showed the open kubectl watch")
	}
	w.Process.Kill()
	w.Wait()
	if !seen {
		t.Fatal("kubectl get -w never showed a created configmap")
	}
	if !gauge("0") {
		t.Error("the watch gauge did not return to 0 after kubectl left")
	}

	e.mustKubectl(t, kc, "", "-n", "team-a", "delete", "deployment", "web")
	if _, err := e.kubectl(t, kc, "", "-n", "team-a", "get", "deployment", "web"); err == nil {
		t.Error("deployment still there after delete")
	}

	// Writes through the proxy are audited, without secrets, with the user,
	// cluster, method, path and status.
	if !e.hasEvent(t, "cluster", "proxy.delete", audit.ResultSuccess) || !e.hasEvent(t, "cluster", "proxy.patch", audit.ResultSuccess) {
		t.Error("proxy writes not audited")
	}
	found := false
	for _, ev := range e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: "proxy.delete"}) {
		if ev.ActorName == "admin" && ev.ResourceID == "e2e" && ev.Details["method"] == "DELETE" &&
			ev.Details["path"] == "/apis/apps/v1/namespaces/team-a/deployments/web" && ev.Details["status"] == "200" && ev.ClientIP != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no proxy.delete event with user, cluster, method, path and status: %+v",
			e.auditEvents(t, audit.Query{ResourceType: "cluster", Action: "proxy.delete"}))
	}
}

// A view member reads but the cluster itself refuses their delete, with
// the impersonated user in its message; a non-member is refused by Berth.
func TestProxyRBACThroughImpersonation(t *testing.T) {
	e := startE2E(t)
	akc := e.kubeconfigFor(t, "admin", e.admin)
	e.mustKubectl(t, akc, "", "create", "namespace", "shared")
	e.mustKubectl(t, akc, "", "-n", "shared", "create", "configmap", "precious")

	e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	e.createUser(t, e.admin, "carol", "carol-password-1234", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "bob", "role": "view"}, bearer(e.admin))
	bob := e.login(t, "bob", "bob-password-12345").AccessToken
	carol := e.login(t, "carol", "carol-password-1234").AccessToken

	bkc := e.kubeconfigFor(t, "bob", bob)
	// The cluster sees bob as Berth asserts him: user, role group, extras.
	who := e.mustKubectl(t, bkc, "", "auth", "whoami", "-o", "json")
	if !strings.Contains(who, `"berth:bob"`) || !strings.Contains(who, `"berth:role:view"`) || !strings.Contains(who, "berth.dev/client-ip") {
		t.Errorf("whoami through Berth: %s", who)
	}
	if out := e.mustKubectl(t, bkc, "", "-n", "shared", "get", "configmaps"); !strings.Contains(out, "precious") {
		t.Fatalf("view member cannot read: %s", out)
	}
	out, err := e.kubectl(t, bkc, "", "-n", "shared", "delete", "configmap", "precious")
	if err == nil || !strings.Contains(out, "Forbidden") || !strings.Contains(out, "berth:bob") {
		t.Fatalf("view member's delete: err=%v out=%s", err, out)
	}
	// Client-sent impersonation is stripped: bob cannot become an admin.
	out, err = e.kubectl(t, bkc, "", "--as", "system:admin", "--as-group", "system:masters", "-n", "shared", "delete", "configmap", "precious")
	if err == nil {
		t.Fatalf("client impersonation got through: %s", out)
	}
	e.mustKubectl(t, akc, "", "-n", "shared", "get", "configmap", "precious")

	// Carol is no member: Berth refuses her before the cluster sees her,
	// as if the cluster did not exist.
	status, body, _ := e.call(t, "GET", "/proxy/clusters/e2e/api/v1/namespaces/shared/configmaps", nil, bearer(carol))
	var st struct{ Kind, Reason string }
	json.Unmarshal(body, &st)
	if status != 404 || st.Kind != "Status" || st.Reason != "NotFound" {
		t.Errorf("non-member: %d %s", status, body)
	}
	// No token, a bad token, an unknown cluster.
	for _, c := range []struct {
		path, token string
		code        int
	}{
		{"/proxy/clusters/e2e/api/v1/namespaces", "", 401},
		{"/proxy/clusters/e2e/api/v1/namespaces", "garbage-token", 401},
		{"/proxy/clusters/nope/api/v1/namespaces", e.admin, 404},
		{"/api/v1/cube/proxy/clusters/e2e/api/v1/namespaces/shared/configmaps", bob, 200},
	} {
		var opts []opt
		if c.token != "" {
			opts = append(opts, bearer(c.token))
		}
		if status, body, _ := e.call(t, "GET", c.path, nil, opts...); status != c.code {
			t.Errorf("%s: %d %s, want %d", c.path, status, body, c.code)
		}
	}
}

// Selector, sort and page over a few hundred real objects.
func TestProxyListQueryEndToEnd(t *testing.T) {
	e := startE2E(t)
	kc := e.kubeconfigFor(t, "admin", e.admin)
	e.mustKubectl(t, kc, "", "create", "namespace", "many")
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-%03d\n    namespace: many\n    labels: {app.kubernetes.io/name: app-%d, parity: %s}\n  data: {size: \"%d\"}\n",
			i, i%4, map[bool]string{true: "even", false: "odd"}[i%2 == 0], 1000-i)
	}
	e.mustKubectl(t, kc, b.String(), "apply", "-f", "-")

	type list struct {
		Kind  string
		Total int
		Items []struct {
			Metadata struct{ Name string }
		}
	}
	get := func(q string) (int, list) {
		status, body, _ := e.call(t, "GET", "/proxy/clusters/e2e/api/v1/namespaces/many/configmaps?"+q, nil, bearer(e.admin))
		var l list
		json.Unmarshal(body, &l)
		return status, l
	}
	status, l := get("selector=metadata.labels.app.kubernetes.io/name=app-1,metadata.labels.parity=odd&sortName=data.size&sortFunc=number&sortOrder=asc&pageSize=10&pageNum=2")
	if status != 200 || l.Kind != "ConfigMapList" || l.Total != 75 || len(l.Items) != 10 {
		t.Fatalf("filtered list: %d kind=%s total=%d items=%d", status, l.Kind, l.Total, len(l.Items))
	}
	// app-1 and odd: i = 1, 5, 9, …; size 1000-i ascending means i descending.
	if l.Items[0].Metadata.Name != "cm-257" || l.Items[9].Metadata.Name != "cm-221" {
		t.Errorf("order: first %s last %s", l.Items[0].Metadata.Name, l.Items[9].Metadata.Name)
	}
	if status, l = get("selector=metadata.name~CM-29&sortOrder=desc&pageSize=3"); status != 200 || l.Total != 10 || l.Items[0].Metadata.Name != "cm-299" {
		t.Errorf("fuzzy + desc: %d %+v", status, l)
	}
	if status, _ = get("pageSize=0"); status != 400 {
		t.Errorf("pageSize=0: %d", status)
	}
	// A plain list is not paged by Berth.
	if status, l = get(""); status != 200 || len(l.Items) != 300 || l.Total != 0 {
		t.Errorf("plain list: %d items=%d total=%d", status, len(l.Items), l.Total)
	}
	// Protobuf passes untouched.
	req, _ := http.NewRequest("GET", e.http+"/proxy/clusters/e2e/api/v1/namespaces/many/configmaps/cm-001", nil)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Accept", "application/vnd.kubernetes.protobuf")
	resp, body := e.do(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.kubernetes.protobuf" || !bytes.HasPrefix(body, []byte("k8s\x00")) {
		t.Errorf("protobuf: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body[:min(len(body), 8)])
	}
	// Per-cluster metrics.
	_, metrics := e.scrape(t, e.admin)
	for _, want := range []string{`berth_proxy_requests_total{cluster="e2e",code="200",method="GET"}`, `berth_proxy_upstream_latency_seconds_bucket{cluster="e2e"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// clientCert issues a client certificate for cn in orgs from ca, valid
// until notAfter, and returns the certificate and key PEMs.
func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, notAfter time.Time, cn string, orgs ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// kubectl with a client certificate works through Berth: the CN names the
// Berth user, the O values are groups, and a group membership grants the
// cluster. A certificate for no Berth user is refused, and a watch opened
// with a certificate ends when the certificate expires.
func TestProxyClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caFile := newClientCA(t)

	// The periodic recheck is pushed out of the test's reach: only the
	// certificate's expiry can end the watch below, when real time and the
	// gateway's clock reach it.
	e := startE2EOn(t, map[string]string{"BERTH_TLS_CLIENT_AUTH_CA_FILE": caFile, "BERTH_PROXY_STREAM_RECHECK_INTERVAL": "1h"}, runningClock())
	akc := e.kubeconfigFor(t, "admin", e.admin)
	e.mustKubectl(t, akc, "", "create", "namespace", "certs")
	e.mustKubectl(t, akc, "", "-n", "certs", "create", "configmap", "seen-by-cert")
	e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"group": "devs", "role": "view"}, bearer(e.admin))

	kubeconfigWithCert := func(name string, certPEM, keyPEM []byte) string {
		path := filepath.Join(dir, name+".kubeconfig")
		data := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: c
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: u, user: {client-certificate-data: %s, client-key-data: %s}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
`, e.https+"/proxy/clusters/e2e", base64.StdEncoding.EncodeToString(e.CertificatePEM()),
			base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM))
		os.WriteFile(path, []byte(data), 0o600)
		return path
	}
	bobCert, bobKey := clientCert(t, ca, caKey, time.Now().Add(time.Hour), "bob", "devs")
	bkc := kubeconfigWithCert("bob-cert", bobCert, bobKey)
	if out := e.mustKubectl(t, bkc, "", "-n", "certs", "get", "configmaps"); !strings.Contains(out, "seen-by-cert") {
		t.Fatalf("client-certificate kubectl: %s", out)
	}
	who := e.mustKubectl(t, bkc, "", "auth", "whoami", "-o", "json")
	if !strings.Contains(who, `"berth:bob"`) || !strings.Contains(who, `"berth:group:devs"`) || !strings.Contains(who, "client_certificate") {
		t.Errorf("whoami with a client certificate: %s", who)
	}
	mallCert, mallKey := clientCert(t, ca, caKey, time.Now().Add(time.Hour), "mallory", "devs")
	out, err := e.kubectl(t, kubeconfigWithCert("mallory", mallCert, mallKey), "", "-n", "certs", "get", "configmaps")
	if err == nil || !strings.Contains(out, "must be logged in") {
		t.Errorf("certificate of an unknown user: err=%v out=%s", err, out)
	}

	e.mustKubectl(t, akc, "", "create", "namespace", "watched")
	seq := 0
	expires := time.Now().Add(15 * time.Second)
	shortCert, shortKey := clientCert(t, ca, caKey, expires, "bob", "devs")
	w := e.startWatcher(t, kubeconfigWithCert("bob-short", shortCert, shortKey), e.admin, &seq, 1)
	if time.Now().After(expires) {
		t.Fatal("the machine took longer than the certificate's life to open the watch")
	}
	w.ends(t, e, "client certificate expired", 0)
}

// watcher is a running `kubectl get configmaps -w` in namespace watched.
type watcher struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *strings.Builder
	exited chan struct{}
}

// startWatcher starts kubectl's watch with kubeconfig and returns once the
// watch is open through Berth (Berth counts open, the watches it ends
// with this one) and delivers events. kubectl lists before it watches, so
// an event seen proves nothing on its own: it may come from the list.
func (e *e2eCluster) startWatcher(t *testing.T, kubeconfig, admin string, seq *int, open int) *watcher {
	t.Helper()
	w := &watcher{lines: make(chan string, 100), stderr: &strings.Builder{}, exited: make(chan struct{})}
	w.cmd = e.kubectlCmd(context.Background(), kubeconfig, "-n", "watched", "get", "configmaps", "-w", "-o", "name")
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		for range w.lines { // unblock the reader if the test left lines unread
		}
		<-w.exited
	})
	e.waitWatches(t, open)
	if !w.sees(t, e, admin, seq) {
		t.Fatalf("the watch never reported a new configmap; kubectl: %s", w.stderr)
	}
	return w
}

// sees creates configmaps until the watch reports one, and says whether
// it did.
func (w *watcher) sees(t *testing.T, e *e2eCluster, admin string, seq *int) bool {
	t.Helper()
	for range 10 {
		*seq++
		name := fmt.Sprintf("ev-%d", *seq)
		e.must(t, 201, "POST", "/proxy/clusters/e2e/api/v1/namespaces/watched/configmaps",
			map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}}, bearer(admin))
		deadline := time.After(3 * time.Second)
		for {
			select {
			case l, ok := <-w.lines:
				if !ok {
					return false
				}
				if l == "configmap/"+name {
					return true
				}
				continue
			case <-w.exited:
				return false
			case <-deadline:
			}
			break
		}
	}
	return false
}

// ends waits (bounded, not a timing check) for kubectl to exit, and for
// Berth to count open the watches that remain. The watch must have ended
// with Berth's ERROR event, which kubectl -o name prints as a Status
// ("status/<unknown>"; TestWithdrawnWatchTellsKubectlWhy reads the reason
// in kubectl's table output).
func (w *watcher) ends(t *testing.T, e *e2eCluster, what string, open int) {
	t.Helper()
	select {
	case <-w.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the open watch went on", what)
	}
	var rest []string
	for l := range w.lines { // closed before exited
		rest = append(rest, l)
	}
	if len(rest) == 0 || !strings.HasPrefix(rest[len(rest)-1], "status/") {
		t.Errorf("%s: the watch did not end with Berth's ERROR event; kubectl's last lines: %q, stderr %q, exit %v", what, rest, w.stderr.String(), w.cmd.ProcessState)
	}
	e.waitWatches(t, open)
}

// waitWatches waits (bounded, not a timing check) until Berth counts n
// open watches on the cluster.
func (e *e2eCluster) waitWatches(t *testing.T, n int) {
	t.Helper()
	want := fmt.Sprintf("berth_proxy_open_streams{cluster=%q,kind=\"watch\"} %d\n", "e2e", n)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, m := e.scrape(t, e.scraper); strings.Contains(string(m), want) {
			return
		}
	}
	t.Fatalf("Berth never counted %d open watches", n)
}

// A watch outlives the check made when it opened. Withdrawing access
// afterwards must end it too: a removed membership, a changed role, a lost
// group whose membership it relied on, a logout, a revoked API key, a
// disabled user, an API key reaching its expiry. Someone else's watch on
// the same cluster goes on through all of it, and so does bob's own watch
// when a write does not concern it; it ends only when the key that signed
// its token is withdrawn.
func TestStreamsEndWhenAccessIsWithdrawn(t *testing.T) {
	// The periodic recheck is pushed out of the test's reach: writes and
	// expiries alone must end the watches; the clock runs, so the key's
	// expiry comes.
	e := startE2EOn(t, map[string]string{"BERTH_PROXY_STREAM_RECHECK_INTERVAL": "1h"}, runningClock())
	akc := e.kubeconfigFor(t, "admin", e.admin)
	e.mustKubectl(t, akc, "", "create", "namespace", "watched")
	seq := 0

	bob := e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	e.createUser(t, e.admin, "carol", "carol-password-1234", "user")
	addMember := func(user, role string) string {
		return decode[struct{ ID string }](t, e.must(t, 201, "POST", "/api/v1/clusters/e2e/members",
			map[string]any{"user": user, "role": role}, bearer(e.admin))).ID
	}
	member := addMember("bob", "view")
	addMember("carol", "view")
	// Kubeconfigs carrying an access token instead of the API key
	// kubeconfigFor's download holds.
	withToken := func(who, token string) string {
		data, err := os.ReadFile(e.kubeconfigFor(t, who, token))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, "token: "); i >= 0 {
				line = line[:i] + "token: " + token
			}
			out = append(out, line)
		}
		path := filepath.Join(e.dir, who+"-token.kubeconfig")
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	carol := e.login(t, "carol", "carol-password-1234").AccessToken
	control := e.startWatcher(t, withToken("carol", carol), e.admin, &seq, 1)

	bobToken := e.login(t, "bob", "bob-password-12345").AccessToken
	w := e.startWatcher(t, withToken("bob", bobToken), e.admin, &seq, 2)
	e.must(t, 204, "DELETE", "/api/v1/clusters/e2e/members/"+member, nil, bearer(e.admin))
	w.ends(t, e, "membership removed", 1)
	if status, body, _ := e.call(t, "GET", "/proxy/clusters/e2e/api/v1/namespaces/watched/configmaps", nil, bearer(bobToken)); status != 404 {
		t.Errorf("removed member's new request: %d %s", status, body)
	}

	member = addMember("bob", "view")
	w = e.startWatcher(t, withToken("bob", bobToken), e.admin, &seq, 2)
	e.must(t, 200, "PUT", "/api/v1/clusters/e2e/members/"+member, map[string]any{"role": "edit"}, bearer(e.admin))
	w.ends(t, e, "role changed", 1)

	// Through a group only: bob leaves the group, and with it the cluster.
	// (The view role again: only its group holds read rights in this
	// cluster, see startE2EWith.)
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"group": "ops", "role": "view"}, bearer(e.admin))
	e.must(t, 200, "PUT", "/api/v1/users/"+bob.ID, map[string]any{"groups": []string{"ops"}}, bearer(e.admin))
	for _, m := range decode[struct{ Items []clusters.Member }](t, e.must(t, 200, "GET", "/api/v1/clusters/e2e/members", nil, bearer(e.admin))).Items {
		if m.Kind == "user" && m.Name == "bob" {
			e.must(t, 204, "DELETE", "/api/v1/clusters/e2e/members/"+m.ID, nil, bearer(e.admin))
		}
	}
	w = e.startWatcher(t, withToken("bob", bobToken), e.admin, &seq, 2)
	// A write that concerns neither bob nor the cluster's members: the
	// watch goes on.
	e.createUser(t, e.admin, "dave", "dave-password-1234", "user")
	if !w.sees(t, e, e.admin, &seq) {
		t.Fatalf("an unrelated write ended bob's watch: %s", w.stderr)
	}
	e.must(t, 200, "PUT", "/api/v1/users/"+bob.ID, map[string]any{"groups": []string{}}, bearer(e.admin))
	w.ends(t, e, "group left", 1)
	addMember("bob", "view")

	w = e.startWatcher(t, withToken("bob", bobToken), e.admin, &seq, 2)
	e.must(t, 204, "POST", "/api/v1/auth/logout", nil, bearer(bobToken))
	w.ends(t, e, "logout", 1)

	bobToken = e.login(t, "bob", "bob-password-12345").AccessToken
	w = e.startWatcher(t, e.kubeconfigFor(t, "bob", bobToken), e.admin, &seq, 2)
	keys := decode[struct{ Items []struct{ ID string } }](t, e.must(t, 200, "GET", "/api/v1/auth/api-keys", nil, bearer(bobToken)))
	if len(keys.Items) == 0 {
		t.Fatal("bob has no API key")
	}
	// Newest first: the key of the kubeconfig just downloaded. The others
	// (from the token kubeconfigs above) stay.
	e.must(t, 204, "DELETE", "/api/v1/auth/api-keys/"+keys.Items[0].ID, nil, bearer(bobToken))
	w.ends(t, e, "API key revoked", 1)

	// Nothing is written: the key simply expires.
	expires := time.Now().Add(15 * time.Second).UTC().Truncate(time.Second)
	shortKey := decode[struct{ Key string }](t, e.must(t, 201, "POST", "/api/v1/auth/api-keys",
		map[string]any{"name": "short", "expires_at": expires.Format(time.RFC3339)}, bearer(bobToken))).Key
	w = e.startWatcher(t, withToken("bob", shortKey), e.admin, &seq, 2)
	if time.Now().After(expires) {
		t.Fatal("the machine took longer than the key's life to open the watch")
	}
	w.ends(t, e, "API key expired", 1)

	w = e.startWatcher(t, withToken("bob", bobToken), e.admin, &seq, 2)
	e.must(t, 200, "PUT", "/api/v1/users/"+bob.ID, map[string]any{"status": "disabled"}, bearer(e.admin))
	w.ends(t, e, "user disabled", 1)

	// Carol's watch saw every check and is still open.
	select {
	case <-control.exited:
		t.Fatalf("a watch whose access never changed was ended: %s", control.stderr)
	default:
	}
	if !control.sees(t, e, e.admin, &seq) {
		t.Fatalf("the control watch stopped reporting: %s", control.stderr)
	}

	// Last, since it ends every access token: the signing key is withdrawn
	// after a leak, and carol's watch, opened with a token it signed, ends.
	e.must(t, 201, "POST", "/api/v1/signing-keys/rotate", map[string]any{"retire_previous": true}, bearer(e.admin))
	control.ends(t, e, "signing key withdrawn", 0)
}
