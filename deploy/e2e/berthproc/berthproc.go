// Package berthproc runs the real berth binary for end-to-end tests: it
// builds berth and the plugins a test needs once, starts `berth serve`
// as a child process on free loopback ports with the test's environment
// and configuration file, waits until it is ready, and speaks its JSON
// API. A test can kill it (SIGKILL) and start it again on the same data.
package berthproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/berthgw/berth/internal/freeport"
)

// Binary is one program to build: the main package Package in the module
// directory Dir (relative to the test's directory), written as Out.
type Binary struct{ Dir, Out, Package string }

// Build builds binaries into a new temporary directory and returns it; a
// test's TestMain calls it once and removes the directory when done.
// Builds are static (CGO off) and ignore any go.work, as releases are.
func Build(binaries ...Binary) (string, error) {
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		return "", err
	}
	for _, b := range binaries {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, b.Out), b.Package)
		cmd.Dir = b.Dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("build %s: %v\n%s", b.Out, err, out)
		}
	}
	return dir, nil
}

// AdminPassword is the first admin's password in every Gateway.
const AdminPassword = "admin-Password-0001"

// Gateway is one berth process (and, after Kill9 and Start, the next on
// the same data directory and ports).
type Gateway struct {
	// Base is its plain HTTP address, http://127.0.0.1:<port>.
	Base string
	// Env is the process's whole environment; a test may add to it
	// before Start.
	Env []string
	// Args follow `berth serve`.
	Args []string

	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// New prepares a gateway running bin: free ports, a data directory of the
// test's, the admin's password, no rate limits on sign-in and the API,
// and config (YAML; empty for none) as its configuration file. extraEnv
// are more NAME=value pairs.
func New(t *testing.T, bin, config string, extraEnv ...string) *Gateway {
	t.Helper()
	ports, err := freeport.Pick(2)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{Base: "http://127.0.0.1:" + strconv.Itoa(ports[0]), bin: bin, Args: []string{"serve"}}
	g.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_DATA_DIR=" + t.TempDir(),
		"BERTH_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(ports[0]),
		"BERTH_HTTPS_ADDR=127.0.0.1:" + strconv.Itoa(ports[1]),
		"BERTH_ADMIN_PASSWORD=" + AdminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS=0", "BERTH_RATE_LIMITS_API_REQUESTS=0",
	}, extraEnv...)
	if config != "" {
		path := filepath.Join(t.TempDir(), "berth.yaml")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		g.Args = append(g.Args, "--config", path)
	}
	return g
}

// Start runs the process and waits until /readyz answers 200. When the
// test fails, its last log lines are printed.
func (g *Gateway) Start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(g.bin, g.Args...)
	cmd.Env = g.Env
	logs := &bytes.Buffer{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			g.mu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			g.mu.Unlock()
		}
		cmd.Wait()
		close(done)
	}()
	g.mu.Lock()
	g.cmd, g.logs, g.done = cmd, logs, done
	g.mu.Unlock()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			lines := strings.Split(g.Logs(), "\n")
			t.Logf("berth's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	Eventually(t, "berth ready", func() bool {
		select {
		case <-done:
			t.Fatalf("berth exited:\n%s", g.Logs())
		default:
		}
		resp, err := http.Get(g.Base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// PID is the running process's id.
func (g *Gateway) PID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd.Process.Pid
}

// Kill9 kills the process with SIGKILL and waits for it to end.
func (g *Gateway) Kill9() {
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Logs is what the current process has written so far.
func (g *Gateway) Logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.String()
}

// Call sends body (nil, raw []byte, or a value to encode) as JSON with
// token as the bearer (none when empty) and header pairs, decodes a JSON
// answer into out (when not nil) and returns the status.
func (g *Gateway) Call(t *testing.T, token, method, path string, body, out any, header ...string) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, g.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode
}

// Must is Call that fails the test unless the status is want.
func (g *Gateway) Must(t *testing.T, want int, token, method, path string, body, out any) {
	t.Helper()
	var raw json.RawMessage
	if got := g.Call(t, token, method, path, body, &raw); got != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// Login signs user in with password and returns the access token.
func (g *Gateway) Login(t *testing.T, user, password string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	g.Must(t, 200, "", "POST", "/api/v1/auth/login", map[string]string{"username": user, "password": password}, &tok)
	return tok.AccessToken
}

// Admin signs the first admin in.
func (g *Gateway) Admin(t *testing.T) string { t.Helper(); return g.Login(t, "admin", AdminPassword) }

// Eventually polls cond every 100 ms and fails the test after a minute,
// naming what it waited for.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}
