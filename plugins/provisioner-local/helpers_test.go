//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/controlplane"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// needBinaries makes a test depend on etcd and kube-apiserver, as
// deploy/e2e/kubeenv does: with BERTH_E2E set (make test, CI) their absence
// fails the test, otherwise it is skipped with a message that says so.
func needBinaries(t *testing.T) binaries {
	t.Helper()
	b, err := findBinaries(Config{})
	if err == nil {
		return b
	}
	if v := os.Getenv("BERTH_E2E"); v != "" && v != "0" {
		t.Fatalf("BERTH_E2E=%s but the control-plane binaries are missing: %v", v, err)
	}
	t.Skipf("SKIPPED, NOT PASSED: this test runs real etcd and kube-apiserver: %v (run deploy/e2e/build-k8s.sh); set BERTH_E2E=1 to make this a failure", err)
	return b
}

// testConfig returns a configuration with a fresh data directory, and
// makes sure no control plane started under it outlives the test.
func testConfig(t *testing.T, extra string) (cfg []byte, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(func() { killClusters(t, dataDir) })
	return fmt.Appendf(nil, `{"data_dir": %q%s}`, dataDir, extra), dataDir
}

// killClusters SIGKILLs every process a pid file under dataDir names: the
// safety net of a failed test.
func killClusters(t *testing.T, dataDir string) {
	for _, pid := range controlplane.KillGroups(filepath.Join(dataDir, "clusters", "*", "run", "*.pid")) {
		t.Logf("killed leftover process group %d", pid)
	}
}

// eventually polls cond every 250 ms until it returns nil or limit
// passes, then fails with cond's last error. The limit only bounds a
// hang; nothing is asserted about how long things take.
func eventually(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitOp watches an operation to its end.
func waitOp(t *testing.T, p pluginclient.Provisioner, id string) sdk.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var last sdk.Operation
	if err := p.WatchOperation(ctx, id, func(op sdk.Operation) error { last = op; return nil }); err != nil {
		t.Fatalf("watch operation %s: %v", id, err)
	}
	if !last.Done() {
		t.Fatalf("watch of %s ended with the operation %s", id, last.State)
	}
	return last
}

// clusterClient is an HTTPS client of one identity to a test cluster.
type clusterClient struct {
	server string
	http   *http.Client
	header http.Header
}

func newClusterClient(t *testing.T, server string, caPEM []byte, cert *tls.Certificate) *clusterClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the cluster CA is not PEM")
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &clusterClient{server: server, header: http.Header{},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}}
}

// with returns a copy that adds header k: v to every request.
func (c *clusterClient) with(k, v string) *clusterClient {
	cp := *c
	cp.header = c.header.Clone()
	cp.header.Add(k, v)
	return &cp
}

// do makes a request and returns the status and body.
func (c *clusterClient) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.server+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// get expects 200 and decodes the body into out (when not nil).
func (c *clusterClient) get(path string, out any) error {
	return c.expect(http.MethodGet, path, nil, http.StatusOK, out)
}

func (c *clusterClient) expect(method, path string, body any, want int, out any) error {
	status, data, err := c.do(method, path, body)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: HTTP %d, want %d: %s", method, path, status, want, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// whoami asks the API server who the client is (SelfSubjectReview).
func (c *clusterClient) whoami() (user string, groups []string, err error) {
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	body := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
	if err := c.expect(http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews", body, http.StatusCreated, &review); err != nil {
		return "", nil, err
	}
	return review.Status.UserInfo.Username, review.Status.UserInfo.Groups, nil
}

// wantKind fails unless err matches kind.
func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error = %v, want one matching %v", what, err, kind)
	}
}
