package pluginhost

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/internal/syncbuf"
)

// docNotifier is the notifier docs/plugins.md builds, from the SDK's
// compiled example files the document's snippets are checked against.
const docNotifier = "github.com/berthgw/berth/sdk/examples/notifier-slack"

func e2e(t *testing.T) {
	t.Helper()
	if v := os.Getenv("BERTH_E2E"); v == "" || v == "0" {
		t.Skip("end-to-end: set BERTH_E2E=1")
	}
}

// slackHook stands in for Slack's incoming webhook: it records the
// idempotency key and body of each post.
type slackHook struct {
	*httptest.Server
	posts chan [2]string
}

func newSlackHook(t *testing.T) *slackHook {
	h := &slackHook{posts: make(chan [2]string, 16)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.posts <- [2]string{r.Header.Get("Idempotency-Key"), string(body)}
	}))
	t.Cleanup(h.Close)
	return h
}

// runBerth runs `berth serve` with config (YAML) and env added to a
// minimal environment, and returns the process, its base URL, its log and
// a channel that receives its exit.
func runBerth(t *testing.T, config string, env ...string) (*exec.Cmd, string, *syncbuf.Buffer, chan error) {
	t.Helper()
	berth := build(t, "../../cmd/berth")
	cfgPath := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berth, "serve", "--config", cfgPath)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "BERTH_ADMIN_PASSWORD=plugin-test-password", "BERTH_SECRET_KEY=" + strings.Repeat("ab", 32)}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
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
	select {
	case base := <-addr:
		return cmd, base, logs, exited
	case err := <-exited:
		t.Fatalf("berth serve exited: %v\n%s", err, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("berth serve did not start\n%s", logs.String())
	}
	return nil, "", nil, nil
}

// api calls the admin API as the bootstrap admin.
type api struct {
	t     *testing.T
	base  string
	token string
}

func login(t *testing.T, base string) *api {
	t.Helper()
	resp, err := http.Post(base+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"username":"admin","password":"plugin-test-password"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	return &api{t: t, base: base, token: tok.AccessToken}
}

func (a *api) do(method, path, body string) (int, string) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// plugin returns the plugin's status from GET /api/v1/plugins.
func (a *api) plugin(name string) Status {
	a.t.Helper()
	code, body := a.do("GET", "/api/v1/plugins", "")
	var list struct {
		Items []Status `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		a.t.Fatalf("GET /api/v1/plugins: %d %s", code, body)
	}
	for _, st := range list.Items {
		if st.Name == name {
			return st
		}
	}
	a.t.Fatalf("GET /api/v1/plugins has no %q: %s", name, body)
	return Status{}
}

// running waits until the plugin is running and returns its status. It
// polls gently: the API rate-limits a caller.
func (a *api) running(name string) Status {
	a.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := a.plugin(name)
		if st.State == StateRunning {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("plugin %q not running: %+v", name, st)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// sendThroughBerth saves a notification channel of the plugin's slack
// type and has berth send a test message through it; it returns the post
// the webhook received.
func sendThroughBerth(t *testing.T, a *api, hook *slackHook) [2]string {
	t.Helper()
	if code, body := a.do("POST", "/api/v1/notifications/channels", `{"name": "ops", "type": "slack", "plugin": "notifier-slack"}`); code != 201 && code != 200 {
		t.Fatalf("create channel: %d %s", code, body)
	}
	code, body := a.do("POST", "/api/v1/notifications/test", `{"channel": "ops", "target": "#ops"}`)
	if code != 200 || !strings.Contains(body, `"delivered":true`) || !strings.Contains(body, `"provider_message_id":"slack-`) {
		t.Fatalf("test send: %d %s", code, body)
	}
	select {
	case p := <-hook.posts:
		return p
	case <-time.After(time.Minute):
		t.Fatal("the webhook received nothing")
	}
	return [2]string{}
}

// TestDocNotifierUnderBerthServe: the notifier written by following
// docs/plugins.md (its snippets are the compiled example's, and it passes
// conformance in its own tests), declared as the document says, runs
// under the real berth serve with no change: listed running and healthy
// with its channel, and a message berth sends reaches the provider with
// its idempotency key.
func TestDocNotifierUnderBerthServe(t *testing.T) {
	e2e(t)
	bin := build(t, docNotifier)
	hook := newSlackHook(t)
	cmd, base, _, exited := runBerth(t, fmt.Sprintf(`data_dir: %q
http:
  addr: 127.0.0.1:0
https:
  addr: ""
plugins:
  discover: false
  instances:
    - name: notifier-slack
      path: %s
      sha256: %s
      capabilities: [notifier]
      config:
        webhook_url: %s
`, filepath.Join(t.TempDir(), "data"), bin, sha(t, bin), hook.URL))
	a := login(t, base)
	st := a.running("notifier-slack")
	if st.Health != "serving" || !slices.Equal(st.Channels, []string{"slack"}) || st.Version != "1.0.0" || st.LastError != "" {
		t.Errorf("status = %+v", st)
	}
	post := sendThroughBerth(t, a, hook)
	if post[0] == "" || !strings.Contains(post[1], `"channel":"#ops"`) {
		t.Errorf("webhook got key %q, body %s", post[0], post[1])
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("berth serve after SIGTERM: %v", err)
	}
}

// reattachLine is the line a plugin in debug mode prints for the gateway.
var reattachLine = regexp.MustCompile(`BERTH_PLUGIN_REATTACH='(.*)'`)

// TestDebugReattachUnderBerthServe: a plugin run by hand with -debug, and
// berth serve started with the BERTH_PLUGIN_REATTACH line it printed:
// berth attaches to that process instead of starting the executable (its
// declared checksum is deliberately wrong and berth has no child
// process), calls reach it, and it keeps running when berth stops.
func TestDebugReattachUnderBerthServe(t *testing.T) {
	e2e(t)
	bin := build(t, docNotifier)
	hook := newSlackHook(t)
	debug := exec.Command(bin, "-debug")
	debug.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := debug.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var debugErr bytes.Buffer
	debug.Stderr = &debugErr
	if err := debug.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = debug.Process.Kill()
		_ = debug.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := reattachLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var reattach string
	select {
	case reattach = <-found:
	case <-time.After(time.Minute):
		t.Fatalf("the plugin printed no reattach line; stderr: %s", debugErr.String())
	}

	cmd, base, logs, exited := runBerth(t, fmt.Sprintf(`data_dir: %q
http:
  addr: 127.0.0.1:0
https:
  addr: ""
plugins:
  discover: false
  instances:
    - name: notifier-slack
      path: %s
      sha256: %s
      capabilities: [notifier]
      config:
        webhook_url: %s
`, filepath.Join(t.TempDir(), "data"), bin, strings.Repeat("0", 64), hook.URL), "BERTH_PLUGIN_REATTACH="+reattach)
	a := login(t, base)
	a.running("notifier-slack")
	if kids := children(cmd.Process.Pid); len(kids) != 0 {
		t.Errorf("berth started processes %v instead of attaching", kids)
	}
	if !strings.Contains(logs.String(), "attaching to a plugin running in debug mode") {
		t.Error("berth did not log that it attached to a debug-mode plugin")
	}
	post := sendThroughBerth(t, a, hook)
	if post[0] == "" {
		t.Errorf("webhook got no idempotency key: %s", post[1])
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("berth serve after SIGTERM: %v", err)
	}
	if !alive(debug.Process.Pid) {
		t.Errorf("the debug-mode plugin stopped with berth; stderr: %s", debugErr.String())
	}
}
