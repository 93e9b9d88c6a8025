package replicas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/sdk/controlplane"
)

// buildProvisioner builds the first-party provisioner-local plugin and
// returns its path and SHA-256.
func buildProvisioner(t *testing.T) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "provisioner-local")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../../../plugins/provisioner-local"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build provisioner-local: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return bin, hex.EncodeToString(sum[:])
}

// leader returns the replica that leads the duties: the candidate of the
// election whose key is oldest.
func (f *fleet) leader(t *testing.T) *replica {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: f.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(context.Background(), "/berth/leaders/duties/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("no leader: %v", err)
	}
	_, pid, _ := strings.Cut(string(resp.Kvs[0].Value), "/")
	for _, r := range f.replicas {
		if strconv.Itoa(r.pid()) == pid {
			return r
		}
	}
	t.Fatalf("the leader %s is none of the replicas", resp.Kvs[0].Value)
	return nil
}

// A cluster being created by the replica that leads, which is then killed
// with SIGKILL, is created all the same: the next leader resumes the
// operation (its own provisioner does not know the work, so it begins it
// again, as the operation's id makes safe), and the cluster answers
// through the balancer.
func TestOperationOfAKilledReplicaCompletesOnAnother(t *testing.T) {
	bins := kubeenv.MustBinaries(t)
	plugin, sum := buildProvisioner(t)
	pluginDirs := make([]string, 3)
	for i := range pluginDirs {
		pluginDirs[i] = t.TempDir()
	}
	t.Cleanup(func() {
		// What the killed replica's plugin left running.
		for _, dir := range pluginDirs {
			controlplane.KillGroups(filepath.Join(dir, "clusters", "*", "run", "*.pid"))
		}
	})
	f := startFleetWith(t, func(i int) string {
		return fmt.Sprintf(`provisioning:
  provisioner: local
  workers: 1
  retry_min: 200ms
  retry_max: 2s
plugins:
  instances:
    - name: local
      path: %s
      sha256: %s
      required: true
      capabilities: [provisioner]
      config:
        data_dir: %s
        etcd_path: %s
        kube_apiserver_path: %s
        port_range_start: %d
        port_range_end: %d
        max_clusters: 4
        stop_on_exit: true
`, plugin, sum, pluginDirs[i], bins.Etcd, bins.KubeAPIServer, 23000+100*i, 23099+100*i)
	})
	token := login(t, f.lb)
	var op struct{ ID, Status string }
	status, err := call("POST", f.lb+"/api/v1/clusters", token, map[string]any{
		"name": "made", "provision": map[string]any{"control_plane": map[string]string{"cpu": "1", "memory": "1Gi"}, "workers": map[string]string{"cpu": "0", "memory": "0"}},
	}, &op)
	if status != 202 {
		t.Fatalf("provision: %d %v", status, err)
	}
	getOp := func() (o struct {
		Status               string
		ProvisionerOperation string `json:"provisioner_operation_id"`
		AttemptCount         int    `json:"attempt_count"`
		Error                string
	}) {
		call("GET", f.lb+"/api/v1/operations/"+op.ID, token, nil, &o)
		return o
	}
	until(t, "the provisioner at work", func() bool { return getOp().ProvisionerOperation != "" })
	leader := f.leader(t)
	leader.kill9()
	t.Logf("killed %s, the leader, while it created the cluster", leader.name)

	deadline := time.Now().Add(6 * time.Minute)
	for {
		o := getOp()
		if o.Status == "succeeded" {
			break
		}
		if o.Status == "failed" || o.Status == "cancelled" || time.Now().After(deadline) {
			t.Fatalf("the operation after its replica died: %+v", o)
		}
		time.Sleep(time.Second)
	}
	if next := f.leader(t); next == leader {
		t.Fatalf("%s leads although it was killed", leader.name)
	}
	var c struct {
		Status           string
		ConnectionStatus string `json:"connection_status"`
	}
	until(t, "the new cluster reachable", func() bool {
		call("GET", f.lb+"/api/v1/clusters/made", token, nil, &c)
		return c.ConnectionStatus == "reachable"
	})
	var ns struct{ Kind string }
	if status, err := call("GET", f.lb+"/proxy/clusters/made/api/v1/namespaces/default", token, nil, &ns); status != 200 || ns.Kind != "Namespace" {
		t.Fatalf("the new cluster through the balancer: %d %v %+v", status, err, ns)
	}
}
