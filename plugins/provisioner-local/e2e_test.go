//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/controlplane"
	"github.com/berthgw/berth/sdk/plugintest"
)

// The tests here run real etcd and kube-apiserver processes through the
// plugin, built and started as the gateway starts it.

// TestConformance runs the SDK's provisioner suite against the plugin
// process; its lifecycle check creates and deletes a real cluster.
func TestConformance(t *testing.T) {
	needBinaries(t)
	f := plugintest.Subprocess(plugintest.Build(t, "."), func(t *testing.T) []byte {
		cfg, _ := testConfig(t, "")
		return cfg
	})
	plugintest.RunProvisionerConformance(t, f, sdk.ClusterSpec{Name: "conformance"})
}

// TestConformanceInProcess runs the suite with the plugin inside the test
// process, so that the race detector watches the plugin's own code.
func TestConformanceInProcess(t *testing.T) {
	needBinaries(t)
	f := plugintest.InProcess(func(t *testing.T) sdk.Options {
		p := newProvisioner(plugintest.TestLogger(t, "provisioner-local"))
		t.Cleanup(p.shutdown)
		return options(p)
	}, func(t *testing.T) []byte {
		cfg, _ := testConfig(t, "")
		return cfg
	})
	plugintest.RunProvisionerConformance(t, f, sdk.ClusterSpec{Name: "conformance"})
}

// TestClusterLifecycle follows one cluster through everything the plugin
// promises: create with progress, the gateway identity and its
// impersonation rights, bootstrap tokens, re-adoption after the plugin is
// killed, restart of a crashed API server, restart from the data after the
// processes are gone, and delete.
func TestClusterLifecycle(t *testing.T) {
	needBinaries(t)
	bin := plugintest.Build(t, ".")
	cfg, dataDir := testConfig(t, `, "max_clusters": 1`)
	clusterDir := filepath.Join(dataDir, "clusters", "demo")
	etcdPIDFile := filepath.Join(clusterDir, "run", "etcd.pid")
	apiPIDFile := filepath.Join(clusterDir, "run", "kube-apiserver.pid")

	plugin1 := plugintest.StartProcess(t, bin)
	plugin1.Configure(t, cfg)
	prov, err := plugin1.Provisioner()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	spec := sdk.ClusterSpec{Name: "demo", KubernetesVersion: "1.31"}

	// --- create: asynchronous and idempotent by name ---
	start := time.Now()
	op, err := prov.CreateCluster(ctx, sdk.CreateClusterRequest{IdempotencyKey: "create-1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if op.Kind != sdk.OperationCreate || op.ClusterName != "demo" || op.Done() {
		t.Fatalf("CreateCluster returned %+v", op)
	}
	again, err := prov.CreateCluster(ctx, sdk.CreateClusterRequest{IdempotencyKey: "create-2", Spec: sdk.ClusterSpec{Name: "demo", KubernetesVersion: "v1.31.14"}})
	if err != nil || again.ID != op.ID {
		t.Errorf("creating the same cluster again with another key while it is created: %+v, %v; want operation %s", again, err, op.ID)
	}
	other := spec
	other.ControlPlane.CPUMillicores = 2000
	_, err = prov.CreateCluster(ctx, sdk.CreateClusterRequest{Spec: other})
	wantKind(t, "same name, other spec", err, sdk.ErrAlreadyExists)
	_, err = prov.CreateCluster(ctx, sdk.CreateClusterRequest{Spec: sdk.ClusterSpec{Name: "second"}})
	wantKind(t, "beyond max_clusters", err, sdk.ErrFailedPrecondition)
	_, err = prov.CreateCluster(ctx, sdk.CreateClusterRequest{Spec: sdk.ClusterSpec{Name: "Not_A_Label"}})
	wantKind(t, "bad name", err, sdk.ErrInvalidArgument)
	_, err = prov.CreateCluster(ctx, sdk.CreateClusterRequest{Spec: sdk.ClusterSpec{Name: "x", KubernetesVersion: "1.30"}})
	wantKind(t, "version the binaries are not", err, sdk.ErrInvalidArgument)
	_, err = prov.GetConnection(ctx, "demo")
	wantKind(t, "connection of a cluster being created", err, sdk.ErrFailedPrecondition)

	if done := waitOp(t, prov, op.ID); done.State != sdk.OperationSucceeded {
		t.Fatalf("create ended %s: %s\n%s", done.State, done.Error, logs(clusterDir))
	}
	t.Logf("FIGURE: time to a ready cluster (create call to operation succeeded): %s", time.Since(start).Round(10*time.Millisecond))
	var stages []string
	for _, ev := range plugin1.Events.Events() {
		if ev.Type == "operation.progress" && ev.Subject == op.ID && ev.Progress != nil {
			if len(stages) == 0 || stages[len(stages)-1] != ev.Progress.Stage {
				stages = append(stages, ev.Progress.Stage)
			}
		}
	}
	if want := []string{"allocating", "pki", "etcd", "apiserver", "rbac", "ready"}; !slices.Equal(stages, want) {
		t.Errorf("progress stages emitted: %v, want %v", stages, want)
	}
	cl, err := prov.GetCluster(ctx, "demo")
	if err != nil || cl.Phase != sdk.ClusterReady || cl.Spec.KubernetesVersion != "v1.31.14" {
		t.Errorf("cluster after create: %+v, %v", cl, err)
	}

	// --- the connection: the gateway identity may impersonate, nothing more ---
	conn, err := prov.GetConnection(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	kc := parseKubeconfig(t, conn.Kubeconfig)
	if kc.server != conn.APIEndpoint || string(kc.caPEM) != string(conn.CAPEM) {
		t.Errorf("kubeconfig server %q / CA differ from the connection's %q", kc.server, conn.APIEndpoint)
	}
	gw := newClusterClient(t, conn.APIEndpoint, conn.CAPEM, &kc.cert)
	var version struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := gw.get("/version", &version); err != nil || version.GitVersion != "v1.31.14" {
		t.Errorf("GET /version as the gateway: %+v, %v", version, err)
	}
	if user, groups, err := gw.whoami(); err != nil || user != gatewayUser || slices.ContainsFunc(groups, func(g string) bool { return g != "system:authenticated" }) {
		t.Errorf("the gateway identity is %q %v (%v), want %q with no groups of its own", user, groups, err, gatewayUser)
	}
	alice := gw.with("Impersonate-User", "alice").with("Impersonate-Group", "berth:role:view").with("Impersonate-Extra-Berth.dev%2fclient-Ip", "192.0.2.7")
	if user, groups, err := alice.whoami(); err != nil || user != "alice" || !slices.Contains(groups, "berth:role:view") {
		t.Errorf("impersonating alice: %q %v, %v", user, groups, err)
	}
	const cms = "/api/v1/namespaces/default/configmaps"
	if err := gw.expect(http.MethodGet, cms, nil, http.StatusForbidden, nil); err != nil {
		t.Errorf("the gateway itself must not read configmaps: %v", err)
	}
	if err := gw.get("/api/v1/nodes", nil); err != nil {
		t.Errorf("the gateway itself reads nodes, for its node history: %v", err)
	}
	if err := alice.get(cms, nil); err != nil {
		t.Errorf("alice in berth:role:view reads configmaps: %v", err)
	}
	if err := gw.with("Impersonate-User", "bob").expect(http.MethodGet, cms, nil, http.StatusForbidden, nil); err != nil {
		t.Errorf("bob without a Berth role: %v", err)
	}
	kubectlWhoami(t, conn.Kubeconfig)

	// --- bootstrap tokens: made with the admin certificate, and by GetJoinMaterial ---
	admin := adminClient(t, clusterDir, conn)
	secret := map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
		"metadata":   map[string]any{"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
		"stringData": map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true"},
	}
	if err := admin.expect(http.MethodPost, "/api/v1/namespaces/kube-system/secrets", secret, http.StatusCreated, nil); err != nil {
		t.Fatal(err)
	}
	anon := newClusterClient(t, conn.APIEndpoint, conn.CAPEM, nil)
	if user, _, err := anon.with("Authorization", "Bearer abcdef.0123456789abcdef").whoami(); err != nil || user != "system:bootstrap:abcdef" {
		t.Errorf("bootstrap token made with the admin certificate authenticates as %q, %v", user, err)
	}
	jm, err := prov.GetJoinMaterial(ctx, sdk.JoinMaterialRequest{IdempotencyKey: "join-1", ClusterName: "demo", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if jm.APIEndpoint != conn.APIEndpoint || jm.CACertHash != spkiHash(t, conn.CAPEM) || time.Until(jm.ExpiresAt) > time.Hour || time.Until(jm.ExpiresAt) < 50*time.Minute {
		t.Errorf("join material %s %s expires %s; want %s %s in an hour", jm.APIEndpoint, jm.CACertHash, jm.ExpiresAt, conn.APIEndpoint, spkiHash(t, conn.CAPEM))
	}
	id, _, _ := strings.Cut(jm.BootstrapToken, ".")
	if user, groups, err := anon.with("Authorization", "Bearer "+jm.BootstrapToken).whoami(); err != nil || user != "system:bootstrap:"+id || !slices.Contains(groups, "system:bootstrappers") {
		t.Errorf("the join token authenticates as %q %v, %v", user, groups, err)
	}

	t.Logf("FIGURE: memory of a fresh control plane: etcd %s, kube-apiserver %s", rss(controlplane.ReadPIDFile(etcdPIDFile)), rss(controlplane.ReadPIDFile(apiPIDFile)))

	// Something in etcd, to see it survive restarts.
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "survivor"}, "data": map[string]string{"k": "v"}}
	if err := admin.expect(http.MethodPost, cms, cm, http.StatusCreated, nil); err != nil {
		t.Fatal(err)
	}

	// --- kill -9 the plugin: the control plane keeps running and is re-adopted ---
	etcdPID, apiPID := controlplane.ReadPIDFile(etcdPIDFile), controlplane.ReadPIDFile(apiPIDFile)
	ri, ok := plugin1.ReattachInfo()
	if !ok || ri.Pid <= 0 {
		t.Fatalf("no pid for the plugin process: %+v", ri)
	}
	if err := syscall.Kill(ri.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the plugin process is gone", func() error {
		if plugin1.Exited() {
			return nil
		}
		return fmt.Errorf("pid %d still running", ri.Pid)
	})
	plugin1.Kill()
	if !controlplane.Alive(etcdPID) || !controlplane.Alive(apiPID) {
		t.Fatalf("the control plane died with the plugin (etcd %d alive %v, apiserver %d alive %v)", etcdPID, controlplane.Alive(etcdPID), apiPID, controlplane.Alive(apiPID))
	}

	plugin2 := plugintest.StartProcess(t, bin)
	plugin2.Configure(t, cfg)
	prov2, err := plugin2.Provisioner()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := prov2.GetOperation(ctx, op.ID); err != nil || got.State != sdk.OperationSucceeded {
		t.Errorf("the create operation after a plugin restart: %+v, %v", got, err)
	}
	eventually(t, time.Minute, "both processes re-adopted", func() error {
		n := 0
		for _, ev := range plugin2.Events.Events() {
			if ev.Type == "cluster.process.adopted" {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d adoption events", n)
		}
		return nil
	})
	if controlplane.ReadPIDFile(etcdPIDFile) != etcdPID || controlplane.ReadPIDFile(apiPIDFile) != apiPID {
		t.Errorf("pids changed across the plugin restart: etcd %d→%d, apiserver %d→%d", etcdPID, controlplane.ReadPIDFile(etcdPIDFile), apiPID, controlplane.ReadPIDFile(apiPIDFile))
	}
	conn2, err := prov2.GetConnection(ctx, "demo")
	if err != nil || conn2.APIEndpoint != conn.APIEndpoint {
		t.Fatalf("connection after the restart: %v", err)
	}
	if err := gw.get("/version", nil); err != nil {
		t.Errorf("the re-adopted cluster does not answer: %v", err)
	}

	// --- a crashed API server (not the plugin's child any more) is restarted ---
	if err := syscall.Kill(apiPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Minute, "the API server restarted and ready", func() error {
		if p := controlplane.ReadPIDFile(apiPIDFile); p == apiPID || !controlplane.Alive(p) {
			return fmt.Errorf("pid file says %d", p)
		}
		return admin.get("/readyz", nil)
	})
	if err := admin.get(cms+"/survivor", nil); err != nil {
		t.Errorf("data after the API server restart: %v", err)
	}

	// --- stop_on_exit: the plugin stops the control plane when the host shuts it down ---
	plugin2.Configure(t, []byte(strings.TrimSuffix(string(cfg), "}")+`, "stop_on_exit": true}`))
	etcdPID, apiPID = controlplane.ReadPIDFile(etcdPIDFile), controlplane.ReadPIDFile(apiPIDFile)
	plugin2.Kill()
	eventually(t, time.Minute, "the control plane stopped with the plugin", func() error {
		if controlplane.Alive(etcdPID) || controlplane.Alive(apiPID) {
			return fmt.Errorf("etcd %d alive %v, apiserver %d alive %v", etcdPID, controlplane.Alive(etcdPID), apiPID, controlplane.Alive(apiPID))
		}
		return nil
	})

	// --- the next plugin restarts it from its data ---
	plugin3 := plugintest.StartProcess(t, bin)
	plugin3.Configure(t, cfg)
	prov3, err := plugin3.Provisioner()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Minute, "the cluster restarted from its data", func() error {
		if p := controlplane.ReadPIDFile(apiPIDFile); p == apiPID || !controlplane.Alive(p) {
			return fmt.Errorf("pid file says %d", p)
		}
		return admin.get(cms+"/survivor", nil)
	})
	// RBAC answers from informers, which sync a moment after the API
	// server starts serving: poll.
	eventually(t, 2*time.Minute, "alice's view role after the restart from data", func() error { return alice.get(cms, nil) })
	if h, err := plugin3.Base().Health(ctx); err != nil || h.Status != sdk.HealthServing {
		t.Errorf("health with the cluster back: %+v, %v", h, err)
	}

	// --- delete: processes gone, data gone, cluster gone ---
	etcdPID, apiPID = controlplane.ReadPIDFile(etcdPIDFile), controlplane.ReadPIDFile(apiPIDFile)
	del, err := prov3.DeleteCluster(ctx, sdk.DeleteClusterRequest{IdempotencyKey: "delete-1", Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if done := waitOp(t, prov3, del.ID); done.State != sdk.OperationSucceeded {
		t.Fatalf("delete ended %s: %s", done.State, done.Error)
	}
	if controlplane.Alive(etcdPID) || controlplane.Alive(apiPID) {
		t.Errorf("processes left after delete: etcd %d %v, apiserver %d %v", etcdPID, controlplane.Alive(etcdPID), apiPID, controlplane.Alive(apiPID))
	}
	if _, err := os.Stat(clusterDir); !os.IsNotExist(err) {
		t.Errorf("cluster directory after delete: %v", err)
	}
	_, err = prov3.GetCluster(ctx, "demo")
	wantKind(t, "GetCluster after delete", err, sdk.ErrNotFound)
	if list, err := prov3.ListClusters(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListClusters after delete: %+v, %v", list, err)
	}
}

// TestCreateResumesAfterPluginKill kills the plugin right after it
// accepted a create; the next plugin process finishes the same operation.
func TestCreateResumesAfterPluginKill(t *testing.T) {
	needBinaries(t)
	bin := plugintest.Build(t, ".")
	cfg, dataDir := testConfig(t, "")
	plugin1 := plugintest.StartProcess(t, bin)
	plugin1.Configure(t, cfg)
	prov, err := plugin1.Provisioner()
	if err != nil {
		t.Fatal(err)
	}
	op, err := prov.CreateCluster(t.Context(), sdk.CreateClusterRequest{IdempotencyKey: "resume-1", Spec: sdk.ClusterSpec{Name: "resumed"}})
	if err != nil {
		t.Fatal(err)
	}
	ri, ok := plugin1.ReattachInfo()
	if !ok {
		t.Fatal("no pid for the plugin process")
	}
	if err := syscall.Kill(ri.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the plugin process is gone", func() error {
		if plugin1.Exited() {
			return nil
		}
		return fmt.Errorf("pid %d still running", ri.Pid)
	})
	plugin1.Kill()

	plugin2 := plugintest.StartProcess(t, bin)
	plugin2.Configure(t, cfg)
	prov2, err := plugin2.Provisioner()
	if err != nil {
		t.Fatal(err)
	}
	at, err := prov2.GetOperation(t.Context(), op.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the operation after the kill: %s at %q", at.State, at.Progress.Stage)
	// The key that created it still finds it, though the SDK's answer
	// cache died with the first process.
	again, err := prov2.CreateCluster(t.Context(), sdk.CreateClusterRequest{IdempotencyKey: "resume-1", Spec: sdk.ClusterSpec{Name: "resumed"}})
	if err != nil || again.ID != op.ID {
		t.Errorf("create with the same key after the restart: %+v, %v", again, err)
	}
	if done := waitOp(t, prov2, op.ID); done.State != sdk.OperationSucceeded {
		t.Fatalf("resumed create ended %s: %s\n%s", done.State, done.Error, logs(filepath.Join(dataDir, "clusters", "resumed")))
	}
	conn, err := prov2.GetConnection(t.Context(), "resumed")
	if err != nil {
		t.Fatal(err)
	}
	kc := parseKubeconfig(t, conn.Kubeconfig)
	if err := newClusterClient(t, conn.APIEndpoint, conn.CAPEM, &kc.cert).with("Impersonate-User", "alice").get("/api", nil); err != nil {
		t.Errorf("the gateway impersonating on the resumed cluster: %v", err)
	}
	del, err := prov2.DeleteCluster(t.Context(), sdk.DeleteClusterRequest{Name: "resumed"})
	if err != nil {
		t.Fatal(err)
	}
	if done := waitOp(t, prov2, del.ID); done.State != sdk.OperationSucceeded {
		t.Fatalf("delete ended %s: %s", done.State, done.Error)
	}
}

// adminClient reads the admin kubeconfig the plugin leaves for the host's
// operator.
func adminClient(t *testing.T, clusterDir string, conn sdk.Connection) *clusterClient {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(clusterDir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	kc := parseKubeconfig(t, data)
	return newClusterClient(t, conn.APIEndpoint, conn.CAPEM, &kc.cert)
}

// spkiHash computes kubeadm's CA hash independently of the plugin.
func spkiHash(t *testing.T, caPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(caPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// kubectlWhoami checks the kubeconfig with the real kubectl when the
// pinned one is there (build-k8s.sh builds it next to kube-apiserver).
func kubectlWhoami(t *testing.T, kubeconfig []byte) {
	t.Helper()
	dir, err := controlplane.CacheBinDir()
	if err != nil {
		return
	}
	kubectl := filepath.Join(dir, "kubectl")
	if controlplane.CheckExecutable(kubectl) != nil {
		t.Logf("no kubectl at %s; not checking the kubeconfig with it", kubectl)
		return
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig="+path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != gatewayUser {
		t.Errorf("kubectl auth whoami with the returned kubeconfig: %q, %v", out, err)
	}
}

// rss returns a process's resident memory as /proc reports it.
func rss(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// logs returns the tails of a cluster's process logs.
func logs(clusterDir string) string {
	var b strings.Builder
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		data, _ := os.ReadFile(filepath.Join(clusterDir, "logs", name))
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}
