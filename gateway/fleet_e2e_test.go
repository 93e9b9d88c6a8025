package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// fleetE2E is the e2e Berth with the shared kube-apiserver registered
// twice more, as "a" (labels env=prod) and "b" (env=dev), and bob a member
// of both with different roles: view on a, which may read configmaps
// everywhere; edit on b, which this test binds to namespace team-b only.
// The same API server under two names, so the difference in what bob
// gets from each is the cluster's RBAC applied per cluster.
type fleetE2E struct {
	*e2eCluster
	bob string
	kc  string // the admin's kubeconfig
}

func startFleetE2E(t *testing.T) *fleetE2E {
	t.Helper()
	e := startE2E(t)
	for name, env := range map[string]string{"a": "prod", "b": "dev"} {
		e.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
			"name": name, "server": e.env.Server, "token": e.env.UserToken, "labels": map[string]string{"env": env},
			"certificate_authority_data": base64.StdEncoding.EncodeToString(e.env.CAData),
		}, bearer(e.admin))
	}
	kc := e.kubeconfigFor(t, "admin", e.admin)
	for _, ns := range []string{"team-b", "team-c"} {
		e.mustKubectl(t, kc, "", "create", "namespace", ns)
	}
	rb := filepath.Join(e.dir, "edit-team-b.yaml")
	os.WriteFile(rb, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-berth-role-edit, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-read-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "berth:role:edit"}]
`), 0o600)
	e.mustKubectl(t, kc, "", "apply", "-f", rb)
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
	for i := range 30 {
		ns := []string{"team-b", "team-c"}[i%2]
		fmt.Fprintf(&b, "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cm-%02d, namespace: %s, labels: {num: \"%d\"}}\n  data: {color: %s}\n",
			i, ns, i, []string{"red", "blue", "green"}[i%3])
	}
	e.mustKubectl(t, kc, b.String(), "apply", "-f", "-")
	e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/a/members", map[string]any{"user": "bob", "role": "view"}, bearer(e.admin))
	e.must(t, 201, "POST", "/api/v1/clusters/b/members", map[string]any{"user": "bob", "role": "edit"}, bearer(e.admin))
	bob := e.login(t, "bob", "bob-password-12345").AccessToken
	return &fleetE2E{e2eCluster: e, bob: bob, kc: kc}
}

// bobKubeconfig is a kubeconfig with bob's access token (not a key scoped
// to one cluster, as Berth's kubeconfigs carry) and server path path.
func (f *fleetE2E) bobKubeconfig(t *testing.T, path string) string {
	t.Helper()
	data := string(f.must(t, 200, "POST", "/api/v1/clusters/a/kubeconfig", nil, bearer(f.bob)))
	var lines []string
	for _, line := range strings.Split(data, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "token: "); ok {
			f.secret(v)
			line = strings.Replace(line, v, f.bob, 1)
		}
		lines = append(lines, strings.ReplaceAll(line, "/proxy/clusters/a", path))
	}
	out := filepath.Join(f.dir, "bob-"+strings.ReplaceAll(path, "/", "-")+".kubeconfig")
	os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o600)
	return out
}

type fleetList struct {
	Kind     string
	Metadata struct {
		Clusters []string `json:"berth.dev/clusters"`
		Failed   []struct {
			Cluster string
			Code    int
		} `json:"berth.dev/failed-clusters"`
	}
	Total int
	Items []struct {
		Metadata struct {
			Name, Namespace string
			Annotations     map[string]string
		}
	}
}

func (l fleetList) keys() []string {
	var out []string
	for _, it := range l.Items {
		out = append(out, it.Metadata.Annotations["berth.dev/cluster"]+"/"+it.Metadata.Namespace+"/"+it.Metadata.Name)
	}
	return out
}

func (f *fleetE2E) list(t *testing.T, token, path string) (int, fleetList, http.Header, []byte) {
	t.Helper()
	status, body, h := f.call(t, "GET", path, nil, bearer(token))
	var l fleetList
	json.Unmarshal(body, &l)
	return status, l, h, body
}

func TestFleetListEndToEnd(t *testing.T) {
	f := startFleetE2E(t)

	// team-b: both clusters answer bob; every configmap twice, tagged.
	status, l, h, body := f.list(t, f.bob, "/proxy/fleet/api/v1/namespaces/team-b/configmaps")
	if status != 200 || l.Kind != "ConfigMapList" || l.Total != 30 || len(l.Items) != 30 || !slices.Equal(l.Metadata.Clusters, []string{"a", "b"}) || len(l.Metadata.Failed) != 0 || h.Get("Warning") != "" {
		t.Fatalf("team-b: %d %s", status, body)
	}
	if k := l.keys(); k[0] != "a/team-b/cm-00" || k[1] != "b/team-b/cm-00" {
		t.Errorf("order (name, then namespace, then cluster): %v", k[:4])
	}

	// All namespaces: only a's view role may list cluster-wide; b's RBAC
	// refuses bob, and b is named, not fatal.
	status, l, h, body = f.list(t, f.bob, "/proxy/fleet/api/v1/configmaps?selector=metadata.namespace~team&pageSize=100")
	if status != 200 || l.Total != 30 || !slices.Equal(l.Metadata.Clusters, []string{"a"}) || len(l.Metadata.Failed) != 1 || l.Metadata.Failed[0].Cluster != "b" || l.Metadata.Failed[0].Code != 403 {
		t.Fatalf("all namespaces: %d %s", status, body)
	}
	if w := h.Get("Warning"); !strings.Contains(w, `cluster \"b\" left out (403)`) || !strings.Contains(w, "forbidden") {
		t.Errorf("Warning: %q", w)
	}
	for _, k := range l.keys() {
		if !strings.HasPrefix(k, "a/") {
			t.Fatalf("an item not from a: %s", k)
		}
	}

	// The list query applies to the union; the cluster is a field.
	status, l, _, body = f.list(t, f.bob, "/proxy/fleet/api/v1/namespaces/team-b/configmaps?selector=metadata.annotations.berth.dev/cluster=b,data.color=blue|green&sortName=metadata.labels.num&sortFunc=number&sortOrder=desc&pageSize=3&pageNum=2")
	// team-b holds even i; blue or green: i%3 != 0 → 2,4,8,10,14,16,20,22,26,28: desc page 2 = 20,16,14.
	if status != 200 || l.Total != 10 || !slices.Equal(l.keys(), []string{"b/team-b/cm-20", "b/team-b/cm-16", "b/team-b/cm-14"}) {
		t.Errorf("query on the union: %d %v %s", status, l.keys(), body)
	}
	status, l, _, _ = f.list(t, f.bob, "/proxy/fleet/api/v1/namespaces/team-b/configmaps?sortName=metadata.annotations.berth.dev/cluster&sortOrder=desc&pageSize=1")
	if status != 200 || l.Total != 30 || l.keys()[0] != "b/team-b/cm-00" {
		t.Errorf("sort by cluster: %d %v", status, l.keys())
	}

	// Choosing clusters.
	if status, l, _, body = f.list(t, f.bob, "/proxy/fleet/api/v1/namespaces/team-b/configmaps?clusters=b&pageSize=1"); status != 200 || l.Total != 15 || !slices.Equal(l.Metadata.Clusters, []string{"b"}) {
		t.Errorf("clusters=b: %d %s", status, body)
	}
	if status, l, _, body = f.list(t, f.bob, "/proxy/fleet/api/v1/namespaces/team-b/configmaps?clusterSelector=env%3Dprod&pageSize=1"); status != 200 || !slices.Equal(l.Metadata.Clusters, []string{"a"}) {
		t.Errorf("clusterSelector=env=prod: %d %s", status, body)
	}
	// A cluster bob is no member of (e2e) and one that does not exist get
	// the same answer, naming neither.
	_, e2eBody, _ := f.call(t, "GET", "/proxy/fleet/api/v1/namespaces/team-b/configmaps?clusters=a,e2e", nil, bearer(f.bob))
	st, noneBody, _ := f.call(t, "GET", "/proxy/fleet/api/v1/namespaces/team-b/configmaps?clusters=a,nope", nil, bearer(f.bob))
	if st != 403 || string(e2eBody) != string(noneBody) || strings.Contains(string(noneBody), "nope") {
		t.Errorf("unreachable clusters=: %d %s / %s", st, e2eBody, noneBody)
	}
	// The admin reaches all three.
	if status, l, _, body = f.list(t, f.admin, "/proxy/fleet/api/v1/namespaces/team-b/configmaps?pageSize=1"); status != 200 || !slices.Equal(l.Metadata.Clusters, []string{"a", "b", "e2e"}) || l.Total != 45 {
		t.Errorf("admin: %d %s", status, body)
	}

	// Every cluster refusing is a 502 Status naming them.
	status, _, h, body = f.list(t, f.bob, "/proxy/fleet/api/v1/secrets")
	if status != 502 || !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), `\"a\" 403`) || !strings.Contains(string(body), `\"b\" 403`) || len(h.Values("Warning")) != 2 {
		t.Errorf("all failing: %d %s %v", status, body, h.Values("Warning"))
	}

	// Bad input: a clear 4xx, nothing fetched.
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/proxy/fleet/api/v1/configmaps?clusterSelector=env+in+(", 400},
		{"GET", "/proxy/fleet/api/v1/configmaps?clusters=Not_A_Name", 400},
		{"GET", "/proxy/fleet/api/v1/configmaps?clusters=a&clusters=b", 400},
		{"GET", "/proxy/fleet/version", 400},
		{"GET", "/proxy/fleet/healthz", 400},
		{"GET", "/proxy/fleet", 400},
		{"GET", "/proxy/fleet/api/v1/namespaces/team-b/configmaps/cm-00", 400},
		{"GET", "/proxy/fleet/api/v1/namespaces/team-b/configmaps?pageSize=0", 400},
		{"GET", "/proxy/fleet/api/v1/namespaces/team-b/configmaps?watch=1&selector=data.color", 400},
		{"GET", "/proxy/fleet/api/v1/namespaces/team-b/configmaps?watch=1&pageSize=3", 400},
		{"GET", "/proxy/fleet/api/v1/../../../api/v1/configmaps", 400},
		{"DELETE", "/proxy/fleet/api/v1/namespaces/team-b/configmaps", 405},
	} {
		if st, b, _ := f.call(t, c.method, c.path, nil, bearer(f.bob)); st != c.code || !strings.Contains(string(b), `"kind":"Status"`) {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, st, b, c.code)
		}
	}
	// kubectl --as on the fleet path: refused, not run as the caller.
	for _, h := range [][2]string{{"Impersonate-User", "bob"}, {"Impersonate-Group", "devs"}, {"Impersonate-Uid", "1"}} {
		st, b, _ := f.call(t, "GET", "/proxy/fleet/api/v1/configmaps", nil, bearer(f.admin), header(h[0], h[1]))
		if st != 400 || !strings.Contains(string(b), "not served on the fleet path") {
			t.Errorf("%s on the fleet path: %d %s, want 400", h[0], st, b)
		}
	}
	if st, _, _ := f.call(t, "GET", "/proxy/fleet/api/v1/configmaps", nil); st != 401 {
		t.Errorf("no credential: %d", st)
	}
	// Nothing was deleted by the refused DELETE.
	if status, l, _, _ = f.list(t, f.admin, "/proxy/fleet/api/v1/namespaces/team-b/configmaps?clusters=e2e&pageSize=1"); l.Total != 15 {
		t.Errorf("after the refused DELETE: %d total %d", status, l.Total)
	}

	// kubectl: --raw reaches the fleet path (it replaces the server's
	// path), and a kubeconfig whose server is the fleet path serves
	// kubectl get -A (discovery is read from the first cluster).
	bkc := f.bobKubeconfig(t, "/proxy/clusters/a")
	out := f.mustKubectl(t, bkc, "", "get", "--raw", "/proxy/fleet/api/v1/namespaces/team-b/configmaps?selector=metadata.name=cm-04")
	if !strings.Contains(out, `"berth.dev/cluster":"a"`) || !strings.Contains(out, `"berth.dev/cluster":"b"`) || !strings.Contains(out, `"total":2`) {
		t.Errorf("kubectl get --raw on the fleet path: %s", out)
	}
	fkc := f.bobKubeconfig(t, "/proxy/fleet")
	out, err := f.kubectlOnce(fkc, "", "get", "configmaps", "-A", "-o", "custom-columns=CLUSTER:.metadata.annotations.berth\\.dev/cluster,NS:.metadata.namespace,NAME:.metadata.name")
	rows := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		rows[strings.Join(strings.Fields(line), " ")] = true
	}
	if err != nil || !rows["a team-c cm-01"] || !rows["a team-b cm-00"] || !strings.Contains(out, `Warning: cluster "b" left out (403)`) {
		t.Errorf("kubectl get configmaps -A on the fleet path: %v\n%s", err, out)
	}
}

// watchLines reads a watch response's events into a channel.
func watchLines(t *testing.T, url, token string) (<-chan string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("watch %s: %d", url, resp.StatusCode)
	}
	lines := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, func() {
		cancel()
		resp.Body.Close()
		for range lines {
		}
		<-done
	}
}

type watchEvent struct {
	Type   string
	Object struct {
		Metadata struct {
			Name        string
			Annotations map[string]string
		}
	}
}

// next waits (bounded; not a timing check) for the next event.
func next(t *testing.T, lines <-chan string) watchEvent {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the watch ended")
		}
		var ev watchEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("event %q: %v", l, err)
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event")
	}
	return watchEvent{}
}

func (f *fleetE2E) setColor(t *testing.T, name, color string) {
	t.Helper()
	f.mustKubectl(t, f.kc, "", "-n", "team-b", "patch", "configmap", name, "--type=merge", "-p", fmt.Sprintf(`{"data":{"color":%q}}`, color))
}

func TestFilteredWatchEndToEnd(t *testing.T) {
	f := startFleetE2E(t)
	f.mustKubectl(t, f.kc, "", "-n", "team-b", "create", "configmap", "w1", "--from-literal=color=red")

	// kubectl through one cluster: kubectl get --raw streams the watch
	// (kubectl cannot add selector= to `get -w`: its query is its own).
	bkc := f.bobKubeconfig(t, "/proxy/clusters/a")
	cmd := f.kubectlCmd(context.Background(), bkc, "get", "--raw", "/proxy/clusters/a/api/v1/namespaces/team-b/configmaps?watch=1&selector=data.color=blue,metadata.name~w")
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
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
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// w1 red → blue: ADDED; blue → blue (label): MODIFIED; → red: DELETED;
	// w2 created green: nothing; w2 deleted: nothing; w1 → blue: ADDED.
	f.setColor(t, "w1", "blue")
	if ev := next(t, lines); ev.Type != "ADDED" || ev.Object.Metadata.Name != "w1" {
		t.Fatalf("w1 turned blue: %+v (kubectl: %s)", ev, stderr.String())
	}
	f.mustKubectl(t, f.kc, "", "-n", "team-b", "label", "configmap", "w1", "x=1")
	if ev := next(t, lines); ev.Type != "MODIFIED" {
		t.Fatalf("w1 labelled: %+v", ev)
	}
	f.setColor(t, "w1", "red")
	if ev := next(t, lines); ev.Type != "DELETED" || ev.Object.Metadata.Name != "w1" {
		t.Fatalf("w1 turned red: %+v", ev)
	}
	f.mustKubectl(t, f.kc, "", "-n", "team-b", "create", "configmap", "w2", "--from-literal=color=green")
	f.mustKubectl(t, f.kc, "", "-n", "team-b", "delete", "configmap", "w2")
	f.setColor(t, "w1", "blue")
	if ev := next(t, lines); ev.Type != "ADDED" || ev.Object.Metadata.Name != "w1" {
		t.Fatalf("w2's events passed, or w1 blue again: %+v", ev)
	}

	// The fleet path: one stream, each event's object tagged.
	fl, stop := watchLines(t, f.http+"/proxy/fleet/api/v1/namespaces/team-b/configmaps?watch=1&selector=data.color=yellow", f.bob)
	f.setColor(t, "w1", "yellow")
	got := map[string]string{}
	for range 2 {
		ev := next(t, fl)
		got[ev.Object.Metadata.Annotations["berth.dev/cluster"]] = ev.Type + " " + ev.Object.Metadata.Name
	}
	if got["a"] != "ADDED w1" || got["b"] != "ADDED w1" {
		t.Errorf("fleet watch: %v", got)
	}
	stop()

	// Many cycles: open, see one event, leave. Goroutines and heap come
	// back (bounded waits; nothing timed is asserted).
	settle := func() (int, uint64) {
		var last int
		for range 100 {
			runtime.GC()
			n := runtime.NumGoroutine()
			if n == last {
				break
			}
			last = n
			time.Sleep(20 * time.Millisecond)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return last, ms.HeapInuse
	}
	// One cycle first, so pools and connections exist before counting.
	cycle := func(i int) {
		fl, stop := watchLines(t, f.http+"/proxy/fleet/api/v1/namespaces/team-b/configmaps?watch=1&selector=metadata.name=w1", f.bob)
		f.setColor(t, "w1", fmt.Sprint("c", i))
		next(t, fl)
		next(t, fl)
		stop()
	}
	cycle(0)
	g0, h0 := settle()
	for i := 1; i <= 30; i++ {
		cycle(i)
	}
	var g1 int
	var h1 uint64
	for range 50 {
		if g1, h1 = settle(); g1 <= g0+2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g1 > g0+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before 30 watch cycles, %d after\n%s", g0, g1, buf[:runtime.Stack(buf, true)])
	}
	if h1 > h0+32<<20 {
		t.Errorf("heap in use: %d before, %d after", h0, h1)
	}
	t.Logf("30 fleet watch cycles: goroutines %d → %d, heap in use %d → %d", g0, g1, h0, h1)
}

func TestFleetNodesEndToEnd(t *testing.T) {
	f := startFleetE2E(t)
	f.mustKubectl(t, f.kc, `apiVersion: v1
kind: Node
metadata: {name: edge-1, labels: {node-role.kubernetes.io/worker: ""}}
spec: {unschedulable: true}
`, "apply", "-f", "-")
	f.mustKubectl(t, f.kc, "", "patch", "node", "edge-1", "--subresource=status", "--type=merge", "-p",
		`{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":null,"lastTransitionTime":"2026-01-01T00:00:00Z"}],"addresses":[{"type":"InternalIP","address":"10.0.0.7"},{"type":"Hostname","address":"edge-1"}],"nodeInfo":{"kubeletVersion":"v1.31.0","containerRuntimeVersion":"containerd://2.0.0","kernelVersion":"6.1.0","osImage":"Debian","machineID":"","systemUUID":"","bootID":"","kubeProxyVersion":"","operatingSystem":"linux","architecture":"amd64"}}}`)

	var all struct {
		Items  []map[string]any
		Total  int
		Failed []struct {
			Cluster string
			Code    int
		} `json:"failed_clusters"`
	}
	json.Unmarshal(f.must(t, 200, "GET", "/api/v1/nodes", nil, bearer(f.admin)), &all)
	seen := map[string]bool{}
	for _, n := range all.Items {
		if n["name"] == "edge-1" {
			seen[n["cluster"].(string)] = true
			if n["status"] != "Ready" || n["unschedulable"] != true || n["kubelet_version"] != "v1.31.0" || n["container_runtime_version"] != "containerd://2.0.0" || fmt.Sprint(n["roles"]) != "[worker]" || !strings.Contains(fmt.Sprint(n["addresses"]), "10.0.0.7") {
				t.Errorf("node: %v", n)
			}
		}
	}
	if !seen["a"] || !seen["b"] || !seen["e2e"] || len(all.Failed) != 0 {
		t.Errorf("admin's fleet nodes: %+v", all)
	}
	// Bob's roles there do not include nodes: each cluster's RBAC refuses
	// him, and each is named.
	var bobs struct {
		Items  []map[string]any
		Failed []struct {
			Cluster string
			Code    int
		} `json:"failed_clusters"`
	}
	json.Unmarshal(f.must(t, 200, "GET", "/api/v1/nodes", nil, bearer(f.bob)), &bobs)
	if len(bobs.Items) != 0 || len(bobs.Failed) != 2 || bobs.Failed[0].Cluster != "a" || bobs.Failed[0].Code != 403 || bobs.Failed[1].Cluster != "b" {
		t.Errorf("bob's fleet nodes: %+v", bobs)
	}

	// The node history of the fleet.
	f.Gateway.fleetOps.history.ObserveAll(context.Background())
	var evs struct {
		Items []struct{ Cluster, Node, Kind string }
		Total int
	}
	json.Unmarshal(f.must(t, 200, "GET", "/api/v1/node-events?node=edge-1&type=joined", nil, bearer(f.admin)), &evs)
	if evs.Total != 3 || len(evs.Items) != 3 {
		t.Errorf("joined events of edge-1: %+v", evs)
	}
	json.Unmarshal(f.must(t, 200, "GET", "/api/v1/node-events?cluster=b&limit=1", nil, bearer(f.bob)), &evs)
	if len(evs.Items) != 1 || evs.Items[0].Cluster != "b" || evs.Total < 2 {
		t.Errorf("bob's events of b: %+v", evs)
	}
	for _, q := range []struct {
		query string
		code  int
	}{
		{"cluster=e2e", 404}, {"cluster=nope", 404}, {"type=exploded", 400}, {"limit=0", 400}, {"limit=1001", 400}, {"limit=x", 400},
	} {
		if st, body, _ := f.call(t, "GET", "/api/v1/node-events?"+q.query, nil, bearer(f.bob)); st != q.code {
			t.Errorf("node-events?%s: %d %s", q.query, st, body)
		}
	}
}
