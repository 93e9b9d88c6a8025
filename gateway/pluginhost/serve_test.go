package pluginhost

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
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/internal/syncbuf"
)

// children returns the pids whose parent is ppid.
func children(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// After ") " come the state and the parent pid.
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// berthServe runs `berth serve` (built from ./cmd/berth) with one required
// plugin, and returns the process, its HTTP base URL and the plugin's pid.
func berthServe(t *testing.T, crashFile string) (*exec.Cmd, string, int, chan error) {
	t.Helper()
	berth := build(t, "../../cmd/berth")
	plugin := build(t, testplugin)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`data_dir: %q
http:
  addr: 127.0.0.1:0
https:
  addr: ""
log:
  level: debug
store:
  sync_writes: false
plugins:
  health_interval: 100ms
  restart_backoff_min: 10ms
  restart_backoff_max: 100ms
  max_failures: 2
  instances:
    - name: tp
      path: %q
      sha256: %s
      required: true
      capabilities: [notifier, billing]
      env: ["TESTPLUGIN_CRASH_FILE=%s"]
      config:
        label: e2e
`, filepath.Join(dir, "data"), plugin, sha(t, plugin), crashFile)
	cfgPath := filepath.Join(dir, "berth.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berth, "serve", "--config", cfgPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BERTH_ADMIN_PASSWORD=plugin-test-password", "BERTH_SECRET_KEY=" + strings.Repeat("ab", 32)}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, HTTP string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "berth serving" {
				addr <- "http://" + line.HTTP
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("berth logs:\n%s", logs.String())
		}
	})
	var base string
	select {
	case base = <-addr:
	case err := <-exited:
		t.Fatalf("berth serve exited: %v\n%s", err, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("berth serve did not start\n%s", logs.String())
	}
	var pid int
	waitFor(t, "the plugin process", func() bool {
		kids := children(cmd.Process.Pid)
		if len(kids) == 1 {
			pid = kids[0]
		}
		return pid != 0
	})
	return cmd, base, pid, exited
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestServeEndToEnd runs the real binary: /readyz follows the required
// plugin, the admin API lists it, and after SIGTERM — or kill -9 of the
// gateway — no plugin process is left.
func TestServeEndToEnd(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			crash := filepath.Join(t.TempDir(), "crash")
			cmd, base, plugin, exited := berthServe(t, crash)
			if code, body := get(t, base+"/readyz", ""); code != 200 {
				t.Fatalf("/readyz with the plugin running: %d %s", code, body)
			}

			if sig == syscall.SIGTERM {
				// The plugin goes down and cannot come back: not ready.
				if err := os.WriteFile(crash, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Kill(plugin, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "/readyz to report the plugin", func() bool {
					code, body := get(t, base+"/readyz", "")
					return code == 503 && strings.Contains(body, "plugin:tp")
				})
				_ = os.Remove(crash)
				waitFor(t, "ready again", func() bool {
					code, _ := get(t, base+"/readyz", "")
					return code == 200
				})
				var kids []int
				waitFor(t, "the new plugin process", func() bool {
					kids = children(cmd.Process.Pid)
					return len(kids) == 1
				})
				plugin = kids[0]

				resp, err := http.Post(base+"/api/v1/auth/login", "application/json",
					bytes.NewReader([]byte(`{"username":"admin","password":"plugin-test-password"}`)))
				if err != nil {
					t.Fatal(err)
				}
				var tok struct {
					AccessToken string `json:"access_token"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&tok)
				resp.Body.Close()
				code, body := get(t, base+"/api/v1/plugins", tok.AccessToken)
				// The crash, and each start that failed while the crash
				// file was there, count as restarts.
				var list struct {
					Items []Status `json:"items"`
				}
				_ = json.Unmarshal([]byte(body), &list)
				if code != 200 || len(list.Items) != 1 || list.Items[0].Name != "tp" || list.Items[0].Restarts < 1 || list.Items[0].LastError != "" {
					t.Errorf("GET /api/v1/plugins: %d %s", code, body)
				}
				if code, _ := get(t, base+"/api/v1/plugins", ""); code != 401 {
					t.Errorf("GET /api/v1/plugins without a token: %d", code)
				}
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := <-exited
			if sig == syscall.SIGTERM && err != nil {
				t.Errorf("berth serve after SIGTERM: %v", err)
			}
			waitFor(t, "no plugin process left", func() bool { return !alive(plugin) })
		})
	}
}
