package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var berthBin string

// TestMain builds the real binary once; these tests drive it as an operator
// would, through its command line, signals and exit codes.
func TestMain(m *testing.M) {
	if os.Getenv(envAsCLI) == "1" {
		runAsCLI()
	}
	dir, err := os.MkdirTemp("", "berth-bin-")
	if err != nil {
		panic(err)
	}
	berthBin = filepath.Join(dir, "berth")
	out, err := exec.Command("go", "build", "-o", berthBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func baseEnv(dataDir string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_DATA_DIR=" + dataDir, "BERTH_HTTP_ADDR=127.0.0.1:0", "BERTH_HTTPS_ADDR=127.0.0.1:0"}
	return env
}

func run(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestConfigErrorsExitNonZeroNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badFile, []byte("http:\n  addr: 127.0.0.1:8080\n  listen_backlog: 5\n"), 0o600)
	goodFile := filepath.Join(dir, "good.yaml")
	os.WriteFile(goodFile, []byte("log:\n  level: warn\n"), 0o600)

	tests := []struct {
		name string
		args []string
		env  []string
		key  string
	}{
		{"unknown key in file", []string{"serve", "--config", badFile}, nil, "http.listen_backlog"},
		{"bad duration from env", []string{"serve"}, []string{"BERTH_LIMITS_READ_TIMEOUT=fast"}, "limits.read_timeout"},
		{"bad address from env", []string{"serve"}, []string{"BERTH_HTTP_ADDR=not-an-address"}, "http.addr"},
		{"config check too", []string{"config", "check", "--config", badFile}, nil, "http.listen_backlog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append(baseEnv(filepath.Join(dir, "data")), tt.env...)
			_, stderr, code := run(t, env, tt.args...)
			if code != exitConfig {
				t.Errorf("exit %d, want %d", code, exitConfig)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.key) {
				t.Errorf("stderr %q: want one line naming %s", stderr, tt.key)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("a broken config still created the data dir")
	}
	out, _, code := run(t, baseEnv(filepath.Join(dir, "data")), "config", "check", "--config", goodFile)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("good config: %d %q", code, out)
	}
	out, _, code = run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "berth ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// server is a running `berth serve` child.
type server struct {
	cmd    *exec.Cmd
	stdout *bytes.Buffer
	mu     *sync.Mutex
	http   string
	https  string
	exited chan error
}

func startServer(t *testing.T, env []string) *server {
	t.Helper()
	cmd := exec.Command(berthBin, "serve")
	cmd.Env = env
	s := &server{cmd: cmd, stdout: &bytes.Buffer{}, mu: &sync.Mutex{}, exited: make(chan error, 1)}
	cmd.Stdout = lockedWriter{s.mu, s.stdout}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, HTTP, HTTPS string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "berth serving" {
				s.http, s.https = "http://"+line.HTTP, "https://"+line.HTTPS
				close(ready)
			}
		}
		s.exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-s.exited:
		t.Fatalf("berth serve exited early: %v", err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("berth serve did not start")
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return s
}

func (s *server) Stdout() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String()
}

func (s *server) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	s.cmd.Process.Signal(sig)
	return <-s.exited
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func healthy(t *testing.T, url string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The test trusts the self-signed certificate by skipping
		// verification; TLS verification is tested in the gateway package.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s/healthz: %d", url, resp.StatusCode)
	}
}

func TestServeBackupRestoreLifecycle(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	env := baseEnv(data)

	s := startServer(t, env)
	healthy(t, s.http)
	healthy(t, s.https)
	if n := strings.Count(s.Stdout(), "with password "); n != 1 {
		t.Fatalf("generated password printed %d times: %q", n, s.Stdout())
	}

	// A second server on the same data dir fails fast with a clear reason.
	_, stderr, code := run(t, env, "serve")
	if code == 0 || !strings.Contains(stderr, "in use") {
		t.Errorf("second serve: exit %d, %q", code, stderr)
	}

	// Online backup goes through the running server.
	bak := filepath.Join(root, "online.bak")
	out, stderr, code := run(t, env, "backup", "--out", bak)
	if code != 0 || !strings.Contains(out, "running server") {
		t.Fatalf("online backup: %d %q %q", code, out, stderr)
	}
	if st, err := os.Stat(bak); err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	// Backing up over an existing file is refused.
	if _, _, code := run(t, env, "backup", "--out", bak); code == 0 {
		t.Error("backup overwrote an existing file")
	}
	// Restore refuses a data dir with a live server.
	if _, stderr, code := run(t, env, "restore", "--in", bak); code == 0 || !strings.Contains(stderr, "running") {
		t.Errorf("restore into live dir: %d %q", code, stderr)
	}

	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0", err)
	}

	// Restart: same admin, no new password printed.
	s = startServer(t, env)
	if strings.Contains(s.Stdout(), "password") {
		t.Errorf("restart printed a password: %q", s.Stdout())
	}
	// kill -9 leaves a LOCK file whose flock died with the process.
	s.stop(t, syscall.SIGKILL)
	s = startServer(t, env)
	healthy(t, s.http)
	s.stop(t, syscall.SIGTERM)

	// Offline backup reads the data dir itself.
	offline := filepath.Join(root, "offline.bak")
	if out, stderr, code := run(t, env, "backup", "--out", offline); code != 0 || !strings.Contains(out, "data directory") {
		t.Fatalf("offline backup: %d %q %q", code, out, stderr)
	}

	// Restore into a fresh dir; with the old secret key copied over the
	// server starts on the restored data and finds its admin already there.
	restored := filepath.Join(root, "restored")
	renv := baseEnv(restored)
	out, stderr, code = run(t, renv, "restore", "--in", bak)
	if code != 0 || !strings.Contains(out, "secret.key") {
		t.Fatalf("restore: %d %q %q", code, out, stderr)
	}
	key, _ := os.ReadFile(filepath.Join(data, "secret.key"))
	os.WriteFile(filepath.Join(restored, "secret.key"), key, 0o600)
	s = startServer(t, renv)
	healthy(t, s.https)
	if strings.Contains(s.Stdout(), "password") {
		t.Errorf("restored server created a new admin: %q", s.Stdout())
	}
	s.stop(t, syscall.SIGTERM)
	// Restoring over existing data is refused.
	if _, stderr, code := run(t, renv, "restore", "--in", bak); code == 0 || !strings.Contains(stderr, "not empty") {
		t.Errorf("restore over data: %d %q", code, stderr)
	}
}
