package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/client"
)

// operationServer answers GET /api/v1/operations/op_1 with states in
// turn, the last one for ever.
func operationServer(t *testing.T, states []client.Operation) string {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/operations/op_1" || r.Header.Get("Authorization") != "Bearer at-1" {
			w.WriteHeader(404)
			json.NewEncoder(w).Encode(map[string]any{"code": 404, "error": "not_found", "message": "operation not found", "request_id": "r1"})
			return
		}
		mu.Lock()
		op := states[min(n, len(states)-1)]
		n++
		mu.Unlock()
		json.NewEncoder(w).Encode(op)
	}))
	t.Cleanup(srv.Close)
	// Signed in, with a token fresh for an hour.
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	st, err := newStore()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveLogin(&client.Entry{Server: srv.URL, Username: "alice"},
		&client.Tokens{AccessToken: "at-1", RefreshToken: "brt_1", ExpiresIn: 3600}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

func runBerth(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	root := newRoot(&o, &e)
	root.SetArgs(args)
	err = root.Execute()
	return o.String(), e.String(), err
}

func TestOperationsWatchPrintsALinePerChange(t *testing.T) {
	operationServer(t, []client.Operation{
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "pending", Stage: "queued"},
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "running", Stage: "bootstrap-etcd", Percent: 30},
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "running", Stage: "bootstrap-etcd", Percent: 30},
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "running", Stage: "wait-apiserver", Message: "waiting for /readyz", Percent: 70},
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "succeeded", Stage: "done", Percent: 100},
	})
	out, errOut, err := runBerth("operations", "watch", "op_1", "--interval", "1ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	want := []string{
		"op_1 create demo   0% pending queued",
		"op_1 create demo  30% running bootstrap-etcd",
		"op_1 create demo  70% running wait-apiserver: waiting for /readyz",
		"op_1 create demo 100% succeeded done",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("watch printed:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
		t.Error("terminal control characters in output that is not a terminal")
	}
}

func TestOperationsWatchFailsWithTheOperationsError(t *testing.T) {
	operationServer(t, []client.Operation{
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "running", Percent: 10},
		{ID: "op_1", Cluster: "demo", Type: "create", Status: "failed", Percent: 10, Error: "kube-apiserver did not become ready"},
	})
	_, _, err := runBerth("operations", "watch", "op_1", "--interval", "1ms")
	if !errors.Is(err, errOperationFailed) || !strings.Contains(err.Error(), "kube-apiserver did not become ready") {
		t.Errorf("a failed operation: %v", err)
	}
	_, _, err = runBerth("operations", "watch", "op_2", "--interval", "1ms")
	if err == nil || !strings.Contains(err.Error(), "operation not found (HTTP 404, request r1)") {
		t.Errorf("an unknown operation: %v, want Berth's message", err)
	}
}

// On a terminal the bar is redrawn in place and ends with a newline.
func TestProgressOnATerminalRedrawsOneLine(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, tty: true}
	p.show(&client.Operation{ID: "op_1", Cluster: "demo", Type: "create", Status: "running", Percent: 50})
	p.show(&client.Operation{ID: "op_1", Cluster: "demo", Type: "create", Status: "succeeded", Percent: 100})
	p.end()
	out := b.String()
	if strings.Count(out, "\r\033[K") != 2 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("terminal output %q", out)
	}
	if !strings.Contains(out, "["+strings.Repeat("=", 15)+strings.Repeat(" ", 15)+"]  50%") {
		t.Errorf("half-way bar missing in %q", out)
	}
}

func TestCredentialPrintsAnExecCredential(t *testing.T) {
	server := operationServer(t, []client.Operation{{}})
	out, _, err := runBerth("credential", "--server", server, "--cluster", "demo")
	if err != nil {
		t.Fatal(err)
	}
	var ec struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Status     struct {
			Token               string    `json:"token"`
			ExpirationTimestamp time.Time `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &ec); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status.Token != "at-1" {
		t.Errorf("ExecCredential %+v", ec)
	}
	// An hour's token, renewed two minutes early.
	if d := time.Until(ec.Status.ExpirationTimestamp); d < 55*time.Minute || d > 58*time.Minute {
		t.Errorf("expires in %v, want about 58 minutes", d)
	}
	if _, _, err := runBerth("credential", "--cluster", "demo"); err == nil || !strings.Contains(err.Error(), "--server is required") {
		t.Errorf("no --server: %v", err)
	}
}
