package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/operations"
	"github.com/berthgw/berth/sdk/controlplane"
)

// The cluster lifecycle end to end: real provisioner-local plugin
// processes, started by the plugin host, creating real etcd +
// kube-apiserver control planes, driven through Berth's API; real kubectl
// through Berth's proxy into the new clusters.

var provisionerBin struct {
	once sync.Once
	path string
	sum  string
	err  error
}

// buildProvisioner builds plugins/provisioner-local once per test binary.
func buildProvisioner(t *testing.T) (path, sum string) {
	t.Helper()
	provisionerBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-provisioner-")
		if err != nil {
			provisionerBin.err = err
			return
		}
		bin := filepath.Join(dir, "provisioner-local")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = "../plugins/provisioner-local"
		if out, err := cmd.CombinedOutput(); err != nil {
			provisionerBin.err = fmt.Errorf("build provisioner-local: %v\n%s", err, out)
			return
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			provisionerBin.err = err
			return
		}
		s := sha256.Sum256(data)
		provisionerBin.path, provisionerBin.sum = bin, hex.EncodeToString(s[:])
	})
	if provisionerBin.err != nil {
		t.Fatal(provisionerBin.err)
	}
	return provisionerBin.path, provisionerBin.sum
}

// lifecycleEnv is what survives gateway restarts in a lifecycle test.
type lifecycleEnv struct {
	bins       kubeenv.Binaries
	dataDir    string // the gateway's
	pluginDir  string // provisioner-local's data_dir
	pluginPath string
	pluginSum  string
	quota      config.Quota
}

func newLifecycleEnv(t *testing.T) *lifecycleEnv {
	t.Helper()
	bins := kubeenv.MustBinaries(t)
	path, sum := buildProvisioner(t)
	le := &lifecycleEnv{bins: bins, dataDir: t.TempDir(), pluginDir: t.TempDir(), pluginPath: path, pluginSum: sum}
	// Registered after the TempDirs: runs first, killing what a failed
	// test left running.
	t.Cleanup(func() { killControlPlanes(t, le.pluginDir) })
	return le
}

// start runs a gateway over the environment's data, with provisioner-local
// as the default provisioner and one operation at a time.
func (le *lifecycleEnv) start(t *testing.T) *authGW {
	t.Helper()
	vars := map[string]string{
		"BERTH_DATA_DIR":                    le.dataDir,
		"BERTH_HTTP_ADDR":                   "127.0.0.1:0",
		"BERTH_HTTPS_ADDR":                  "127.0.0.1:0",
		"BERTH_LOG_LEVEL":                   "debug",
		"BERTH_ADMIN_PASSWORD":              adminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS":   "0",
		"BERTH_RATE_LIMITS_API_REQUESTS":    "0",
		"BERTH_RATE_LIMITS_PROXY_REQUESTS":  "0",
		"BERTH_AUTH_LOCKOUT_MAX_FAILURES":   "0",
		"BERTH_PROVISIONING_WORKERS":        "1",
		"BERTH_PROVISIONING_RETRY_MIN":      "200ms",
		"BERTH_PROVISIONING_RETRY_MAX":      "2s",
		"BERTH_PLUGINS_RESTART_BACKOFF_MIN": "100ms",
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.SyncWrites = false
	cfg.Provisioning.Quota = le.quota
	cfg.Provisioning.Provisioner = "local"
	cfg.Plugins.Instances = []config.Plugin{{
		Name: "local", Path: le.pluginPath, SHA256: le.pluginSum, Required: true, Capabilities: []string{"provisioner"},
		Config: map[string]any{
			"data_dir": le.pluginDir, "etcd_path": le.bins.Etcd, "kube_apiserver_path": le.bins.KubeAPIServer,
			"port_range_start": 23000, "port_range_end": 23099, "max_clusters": 8, "stop_on_exit": true,
		},
	}}
	ag := &authGW{testGateway: startWith(t, cfg, nil, nil)}
	ag.secret(adminPassword)
	t.Cleanup(func() { ag.checkNoSecrets(t) })
	return ag
}

// killControlPlanes SIGKILLs every process a provisioner-local pid file
// names: the safety net of a failed test.
func killControlPlanes(t *testing.T, pluginDir string) {
	for _, pid := range controlplane.KillGroups(filepath.Join(pluginDir, "clusters", "*", "run", "*.pid")) {
		t.Logf("killed leftover process group %d", pid)
	}
}

// pluginPID finds the running process of the plugin binary.
func pluginPID(t *testing.T, bin string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if exe, err := os.Readlink(d + "/exe"); err == nil && exe == bin {
			pid, _ := strconv.Atoi(filepath.Base(d))
			if controlplane.Alive(pid) {
				return pid
			}
		}
	}
	t.Fatalf("no running %s", bin)
	return 0
}

// waitFor polls cond until it holds; the limit only bounds a hang.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %s: %v", what, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getOp reads an operation through the API.
func (ag *authGW) getOp(t *testing.T, token, id string) operations.Operation {
	t.Helper()
	return decode[operations.Operation](t, ag.must(t, 200, "GET", "/api/v1/operations/"+id, nil, bearer(token)))
}

// waitOp polls an operation until it has finished and returns it with
// every status it was seen in.
func (ag *authGW) waitOp(t *testing.T, token, id string) (operations.Operation, []operations.Status) {
	t.Helper()
	var (
		op   operations.Operation
		seen []operations.Status
	)
	waitFor(t, 6*time.Minute, "operation "+id+" to finish", func() error {
		op = ag.getOp(t, token, id)
		if len(seen) == 0 || seen[len(seen)-1] != op.Status {
			seen = append(seen, op.Status)
		}
		if op.Active() {
			return fmt.Errorf("%s at stage %q: %s", op.Status, op.Stage, op.Message)
		}
		return nil
	})
	return op, seen
}

// provision asks for a cluster and returns the 202's operation.
func (ag *authGW) provision(t *testing.T, token, name, cpu string) operations.Operation {
	t.Helper()
	status, data, hdr := ag.call(t, "POST", "/api/v1/clusters", map[string]any{
		"name": name, "display_name": "made by " + name,
		"provision": map[string]any{"control_plane": map[string]string{"cpu": cpu, "memory": "1Gi"}, "workers": map[string]string{"cpu": "0", "memory": "0"}},
	}, bearer(token))
	if status != http.StatusAccepted {
		t.Fatalf("provision %s: %d %s", name, status, data)
	}
	op := decode[operations.Operation](t, data)
	if op.Status != operations.Pending || op.Type != operations.Create || op.Cluster != name || op.Provisioner != "local" || op.ID == "" {
		t.Fatalf("provision %s answered %+v", name, op)
	}
	if hdr.Get("Location") != "/api/v1/operations/"+op.ID {
		t.Errorf("Location %q", hdr.Get("Location"))
	}
	return op
}

type clusterOut struct {
	Name             string `json:"name"`
	Status           string `json:"status"`
	ConnectionStatus string `json:"connection_status"`
	APIEndpoint      string `json:"api_endpoint"`
	Provisioner      string `json:"provisioner"`
	Operation        string `json:"operation"`
	LastError        string `json:"last_error"`
	Resources        *struct {
		ControlPlane struct{ CPU, Memory string } `json:"control_plane"`
	} `json:"resources"`
}

// kubectlVia downloads a Berth kubeconfig for cluster and runs kubectl
// through Berth with it.
func (ag *authGW) kubectlVia(t *testing.T, kubectl, token, cluster string, args ...string) (string, error) {
	t.Helper()
	data := ag.must(t, 200, "POST", "/api/v1/clusters/"+cluster+"/kubeconfig", nil, bearer(token))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "token: "); ok {
			ag.secret(v)
		}
	}
	path := filepath.Join(t.TempDir(), cluster+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", path}, args...)...).CombinedOutput()
	return string(out), err
}

func TestClusterLifecycleE2E(t *testing.T) {
	le := newLifecycleEnv(t)
	le.quota = config.Quota{MaxClusters: 3, MaxCPU: "6"}
	ag := le.start(t)
	admin := ag.login(t, "admin", adminPassword).AccessToken

	// --- quota: checked before anything is stored ---
	status, data, _ := ag.call(t, "POST", "/api/v1/clusters", map[string]any{
		"name": "too-big", "provision": map[string]any{"control_plane": map[string]string{"cpu": "7"}},
	}, bearer(admin))
	if status != 403 || !strings.Contains(string(data), "quota_exceeded") || !strings.Contains(string(data), "CPU") {
		t.Fatalf("over the CPU quota: %d %s", status, data)
	}
	ag.must(t, 404, "GET", "/api/v1/clusters/too-big", nil, bearer(admin))
	// Bad shapes are 400 and store nothing either.
	for _, body := range []map[string]any{
		{"name": "bad-cpu", "provision": map[string]any{"control_plane": map[string]string{"cpu": "lots"}}},
		{"name": "bad-mem", "provision": map[string]any{"workers": map[string]string{"memory": "-1Gi"}}},
		{"name": "bad-prov", "provision": map[string]any{"provisioner": "nope"}},
		{"name": "Bad_Name", "provision": map[string]any{}},
		{"name": "both", "provision": map[string]any{}, "server": "https://127.0.0.1:1", "token": "x"},
	} {
		if status, data, _ := ag.call(t, "POST", "/api/v1/clusters", body, bearer(admin)); status != 400 {
			t.Errorf("%v: %d %s", body, status, data)
		}
	}
	if data := ag.must(t, 200, "GET", "/api/v1/operations", nil, bearer(admin)); !strings.Contains(string(data), `"total":0`) {
		t.Fatalf("refused requests left operations: %s", data)
	}

	// --- create: pending → running → succeeded ---
	made := ag.provision(t, admin, "made", "1")
	// With one worker busy on "made", a second create waits as pending;
	// cancelling it ends it at once and leaves no cluster.
	pend := ag.provision(t, admin, "pend", "1")
	if got := ag.getOp(t, admin, pend.ID); got.Status != operations.Pending {
		t.Fatalf("second operation with one worker: %s", got.Status)
	}
	cancelled := decode[operations.Operation](t, ag.must(t, 200, "POST", "/api/v1/operations/"+pend.ID+"/cancel", nil, bearer(admin)))
	if cancelled.Status != operations.Cancelled || cancelled.AttemptCount != 0 || cancelled.FinishedAt == nil {
		t.Fatalf("cancelled pending operation: %+v", cancelled)
	}
	ag.must(t, 404, "GET", "/api/v1/clusters/pend", nil, bearer(admin))
	ag.must(t, 409, "POST", "/api/v1/operations/"+pend.ID+"/cancel", nil, bearer(admin))

	c := decode[clusterOut](t, ag.must(t, 200, "GET", "/api/v1/clusters/made", nil, bearer(admin)))
	if c.Status == "provisioning" {
		if c.ConnectionStatus != "kubeconfig_pending" || c.Operation != made.ID || c.Provisioner != "local" {
			t.Errorf("provisioning cluster: %+v", c)
		}
		// One change at a time: deleting a cluster being created is 409.
		if status, data, _ := ag.call(t, "DELETE", "/api/v1/clusters/made", nil, bearer(admin)); status != 409 || !strings.Contains(string(data), made.ID) {
			t.Errorf("delete during create: %d %s", status, data)
		}
	}
	final, seen := ag.waitOp(t, admin, made.ID)
	if final.Status != operations.Succeeded || final.AttemptCount != 1 || final.StartedAt == nil || final.FinishedAt == nil ||
		final.Percent != 100 || final.ProvisionerOperation == "" {
		t.Fatalf("create finished as %+v", final)
	}
	if !containsStatus(seen, operations.Running) {
		t.Errorf("statuses seen %v: never running", seen)
	}
	waitFor(t, time.Minute, "made to be reachable", func() error {
		c = decode[clusterOut](t, ag.must(t, 200, "GET", "/api/v1/clusters/made", nil, bearer(admin)))
		if c.Status != "ready" || c.ConnectionStatus != "reachable" {
			return fmt.Errorf("%s / %s (%s)", c.Status, c.ConnectionStatus, c.LastError)
		}
		return nil
	})
	if !strings.HasPrefix(c.APIEndpoint, "https://127.0.0.1:230") || c.Resources == nil || c.Resources.ControlPlane.CPU != "1" || c.Resources.ControlPlane.Memory != "1Gi" {
		t.Errorf("ready cluster: %+v", c)
	}
	// kubectl through Berth's proxy into the new cluster.
	if out, err := ag.kubectlVia(t, le.bins.Kubectl, admin, "made", "create", "configmap", "hello", "--from-literal=k=v"); err != nil {
		t.Fatalf("kubectl create through Berth: %v\n%s", err, out)
	}
	if out, err := ag.kubectlVia(t, le.bins.Kubectl, admin, "made", "get", "configmap", "hello", "-o", "jsonpath={.data.k}"); err != nil || out != "v" {
		t.Fatalf("kubectl get through Berth: %v %q", err, out)
	}

	// --- listing and filters ---
	for q, want := range map[string]int{
		"/api/v1/operations":                              2,
		"/api/v1/operations?cluster=made":                 1,
		"/api/v1/operations?status=cancelled":             1,
		"/api/v1/operations?status=succeeded&type=create": 1,
		"/api/v1/operations?type=delete":                  0,
		"/api/v1/clusters/made/operations":                1,
	} {
		list := decode[struct {
			Items []operations.Operation `json:"items"`
			Total int                    `json:"total"`
		}](t, ag.must(t, 200, "GET", q, nil, bearer(admin)))
		if list.Total != want || len(list.Items) != want {
			t.Errorf("%s: %d items (total %d), want %d", q, len(list.Items), list.Total, want)
		}
	}
	for _, q := range []string{"/api/v1/operations?status=done", "/api/v1/operations?type=resize", "/api/v1/operations?page=0"} {
		ag.must(t, 400, "GET", q, nil, bearer(admin))
	}
	ag.must(t, 404, "GET", "/api/v1/operations/op_nope", nil, bearer(admin))
	// A user who is not a member sees neither the cluster nor its operations.
	ag.createUser(t, admin, "carol", "carol-Password-01")
	carol := ag.login(t, "carol", "carol-Password-01").AccessToken
	ag.must(t, 404, "GET", "/api/v1/operations/"+made.ID, nil, bearer(carol))
	ag.must(t, 404, "GET", "/api/v1/clusters/made/operations", nil, bearer(carol))
	if data := ag.must(t, 200, "GET", "/api/v1/operations", nil, bearer(carol)); !strings.Contains(string(data), `"total":0`) {
		t.Errorf("carol's operations: %s", data)
	}
	ag.must(t, 403, "POST", "/api/v1/operations/"+made.ID+"/cancel", nil, bearer(carol))
	ag.must(t, 409, "POST", "/api/v1/operations/"+made.ID+"/cancel", nil, bearer(admin))

	// --- the plugin is killed mid-create: the operation still ends ---
	second := ag.provision(t, admin, "second", "1")
	waitFor(t, 2*time.Minute, "second to be accepted by the plugin", func() error {
		if op := ag.getOp(t, admin, second.ID); op.ProvisionerOperation == "" {
			return fmt.Errorf("%s %s", op.Status, op.Stage)
		}
		return nil
	})
	if err := syscall.Kill(pluginPID(t, le.pluginPath), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if final, _ := ag.waitOp(t, admin, second.ID); final.Status != operations.Succeeded {
		t.Fatalf("create across a plugin kill: %+v", final)
	}
	if restarts := ag.plugins.List()[0].Restarts; restarts < 1 {
		t.Errorf("plugin restarts %d after a kill", restarts)
	}
	if out, err := ag.kubectlVia(t, le.bins.Kubectl, admin, "second", "get", "ns", "kube-system", "-o", "name"); err != nil || !strings.Contains(out, "namespace/kube-system") {
		t.Fatalf("kubectl into second: %v %s", err, out)
	}

	// --- cancel a running create: it ends cancelled and what was made is deleted ---
	third := ag.provision(t, admin, "third", "1")
	waitFor(t, 2*time.Minute, "third to be accepted by the plugin", func() error {
		if op := ag.getOp(t, admin, third.ID); op.ProvisionerOperation == "" {
			return fmt.Errorf("%s %s", op.Status, op.Stage)
		}
		return nil
	})
	// The quota counts clusters being made: a fourth is refused.
	if status, data, _ := ag.call(t, "POST", "/api/v1/clusters", map[string]any{"name": "fourth", "provision": map[string]any{}}, bearer(admin)); status != 403 || !strings.Contains(string(data), "at most 3 clusters") {
		t.Errorf("over the cluster quota: %d %s", status, data)
	}
	st, data, _ := ag.call(t, "POST", "/api/v1/operations/"+third.ID+"/cancel", nil, bearer(admin))
	if st != 202 && st != 409 { // 409 when the create finished first
		t.Fatalf("cancel running create: %d %s", st, data)
	}
	if st == 202 {
		if final, _ := ag.waitOp(t, admin, third.ID); final.Status != operations.Cancelled {
			t.Fatalf("cancelled create: %+v", final)
		}
	}
	// Either way the cluster goes: a delete operation follows the cancel.
	if st == 409 {
		ag.must(t, 202, "DELETE", "/api/v1/clusters/third", nil, bearer(admin))
	}
	ops := decode[struct {
		Items []operations.Operation `json:"items"`
	}](t, ag.must(t, 200, "GET", "/api/v1/operations?cluster=third&type=delete", nil, bearer(admin)))
	if len(ops.Items) != 1 {
		t.Fatalf("delete operations of third: %+v", ops.Items)
	}
	if final, _ := ag.waitOp(t, admin, ops.Items[0].ID); final.Status != operations.Succeeded {
		t.Fatalf("clean-up delete: %+v", final)
	}
	ag.must(t, 404, "GET", "/api/v1/clusters/third", nil, bearer(admin))
	if _, err := os.Stat(filepath.Join(le.pluginDir, "clusters", "third")); !os.IsNotExist(err) {
		t.Errorf("third's data after delete: %v", err)
	}

	// --- the gateway restarts mid-create: the operation resumes ---
	fourth := ag.provision(t, admin, "fourth", "1")
	waitFor(t, 2*time.Minute, "fourth to be accepted by the plugin", func() error {
		if op := ag.getOp(t, admin, fourth.ID); op.ProvisionerOperation == "" {
			return fmt.Errorf("%s %s", op.Status, op.Stage)
		}
		return nil
	})
	ag.checkNoSecrets(t)
	ag.stop(t)
	ag = le.start(t)
	admin = ag.login(t, "admin", adminPassword).AccessToken
	if final, _ := ag.waitOp(t, admin, fourth.ID); final.Status != operations.Succeeded {
		t.Fatalf("create across a gateway restart: %+v", final)
	}
	if out, err := ag.kubectlVia(t, le.bins.Kubectl, admin, "fourth", "get", "ns", "default", "-o", "name"); err != nil || !strings.Contains(out, "namespace/default") {
		t.Fatalf("kubectl into fourth: %v %s", err, out)
	}
	// The clusters made before the restart answer through Berth again once
	// the plugin has restarted their control planes.
	waitFor(t, 2*time.Minute, "made to answer after the restart", func() error {
		if out, err := ag.kubectlVia(t, le.bins.Kubectl, admin, "made", "get", "configmap", "hello", "-o", "name"); err != nil || !strings.Contains(out, "configmap/hello") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})

	// --- delete: processes gone, data removed, history kept ---
	pids, _ := filepath.Glob(filepath.Join(le.pluginDir, "clusters", "made", "run", "*.pid"))
	var running []int
	for _, f := range pids {
		if pid := controlplane.ReadPIDFile(f); pid > 0 && controlplane.Alive(pid) {
			running = append(running, pid)
		}
	}
	if len(running) < 2 {
		t.Fatalf("made's processes before delete: %v from %v", running, pids)
	}
	del := decode[operations.Operation](t, ag.must(t, 202, "DELETE", "/api/v1/clusters/made", nil, bearer(admin)))
	if del.Type != operations.Delete || del.Cluster != "made" {
		t.Fatalf("delete answered %+v", del)
	}
	if final, _ := ag.waitOp(t, admin, del.ID); final.Status != operations.Succeeded {
		t.Fatalf("delete: %+v", final)
	}
	for _, pid := range running {
		if controlplane.Alive(pid) {
			t.Errorf("process %d of made still running after delete", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(le.pluginDir, "clusters", "made")); !os.IsNotExist(err) {
		t.Errorf("made's data after delete: %v", err)
	}
	ag.must(t, 404, "GET", "/api/v1/clusters/made", nil, bearer(admin))
	if data := ag.must(t, 200, "GET", "/api/v1/clusters", nil, bearer(admin)); strings.Contains(string(data), `"made"`) {
		t.Errorf("deleted cluster listed: %s", data)
	}
	st, data, _ = ag.call(t, "GET", "/proxy/clusters/made/api", nil, bearer(admin))
	if st != 404 {
		t.Errorf("proxy to a deleted cluster: %d %s", st, data)
	}
	if data := ag.must(t, 200, "GET", "/api/v1/operations?cluster=made", nil, bearer(admin)); !strings.Contains(string(data), `"total":2`) {
		t.Errorf("history of made: %s", data)
	}
	if !ag.hasEvent(t, "cluster", "cluster.delete", "success") || !ag.hasEvent(t, "operation", "operation.cancel", "success") {
		t.Error("delete or cancel not audited")
	}
}

func containsStatus(seen []operations.Status, s operations.Status) bool {
	for _, v := range seen {
		if v == s {
			return true
		}
	}
	return false
}
