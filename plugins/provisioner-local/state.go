package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthgw/berth/sdk"
)

// clusterState is what the plugin keeps about a cluster in
// <data_dir>/clusters/<name>/cluster.json. Together with the pid files it
// is all a restarted plugin needs to re-adopt or restart the cluster.
type clusterState struct {
	Spec      sdk.ClusterSpec  `json:"spec"`
	Phase     sdk.ClusterPhase `json:"phase"`
	Message   string           `json:"message,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
	Ports     ports            `json:"ports"`
	// CreateOp is the create operation; CreateKey its idempotency key,
	// kept so a retried create is answered even after a plugin restart,
	// when the SDK's in-memory answer cache is gone.
	CreateOp  string `json:"create_op"`
	CreateKey string `json:"create_key,omitempty"`
	DeleteOp  string `json:"delete_op,omitempty"`
}

const stateFile = "cluster.json"

// Paths inside a cluster's directory.
type clusterPaths struct{ dir string }

func (c clusterPaths) pki() string             { return filepath.Join(c.dir, "pki") }
func (c clusterPaths) file(name string) string { return filepath.Join(c.dir, "pki", name) }
func (c clusterPaths) etcdData() string        { return filepath.Join(c.dir, "etcd") }
func (c clusterPaths) certDir() string         { return filepath.Join(c.dir, "apiserver-certs") }
func (c clusterPaths) logs() string            { return filepath.Join(c.dir, "logs") }
func (c clusterPaths) run() string             { return filepath.Join(c.dir, "run") }
func (c clusterPaths) adminKubeconfig() string {
	return filepath.Join(c.dir, "admin.kubeconfig")
}

// saveState writes st atomically (a temporary file renamed over the old).
func saveState(dir string, st clusterState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the state of %s: %w", st.Spec.Name, err)
	}
	return writeFileAtomic(filepath.Join(dir, stateFile), data, 0o600)
}

func loadState(dir string) (clusterState, error) {
	var st clusterState
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("decode %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Spec.Name != filepath.Base(dir) {
		return st, errors.New("the state names another cluster than its directory")
	}
	return st, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
