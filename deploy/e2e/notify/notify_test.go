// Package notify proves notification delivery survives crashes, with real
// parts: the `berth` binary and the `berth-plugin-notify` plugin it finds
// beside itself, a webhook receiver on loopback, and SIGKILL of the
// gateway or of the plugin while a delivery is in flight.
package notify

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/internal/freeport"
)

const adminPassword = "admin-Password-0001"

var binDir string // berth and berth-plugin-notify, side by side

// TestMain builds both binaries once, into one directory, as `make build`
// installs them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-notify-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, b := range []struct{ dir, out, pkg string }{
		{"../../..", "berth", "./cmd/berth"},
		{"../../../plugins/notify", "berth-plugin-notify", "."},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.out, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// receiver is a webhook endpoint. While held, it keeps requests waiting
// (a delivery in flight) until released.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []hit
	held    bool
	release chan struct{}
	arrived chan struct{} // a request arrived while held
}

type hit struct {
	delivery, eventID, eventType string
	body                         []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{release: make(chan struct{}), arrived: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		held, release := r.held, r.release
		r.mu.Unlock()
		if held {
			r.arrived <- struct{}{}
			<-release
			// The sender is gone (killed): this answer reaches nobody and
			// the delivery must not count as received.
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, hit{req.Header.Get("X-Berth-Delivery"), req.Header.Get("X-Berth-Event-Id"), req.Header.Get("X-Berth-Event"), body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { r.unhold(); r.srv.Close() })
	return r
}

func (r *receiver) hold() {
	r.mu.Lock()
	r.held, r.release = true, make(chan struct{})
	r.mu.Unlock()
}

func (r *receiver) unhold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held {
		r.held = false
		close(r.release)
	}
}

func (r *receiver) hits() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.got...)
}

// gateway is one `berth serve` process on a data directory that outlives
// it.
type gateway struct {
	env  []string
	base string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

func newGateway(t *testing.T) *gateway {
	ports, err := freeport.Pick(2)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{base: "http://127.0.0.1:" + strconv.Itoa(ports[0])}
	g.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_DATA_DIR=" + t.TempDir(),
		"BERTH_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(ports[0]),
		"BERTH_HTTPS_ADDR=127.0.0.1:" + strconv.Itoa(ports[1]),
		"BERTH_ADMIN_PASSWORD=" + adminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS=0", "BERTH_RATE_LIMITS_API_REQUESTS=0",
		"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=127.0.0.1/32",
		// Retries come quickly, so the test does not wait on backoff.
		"BERTH_PLUGINS_NOTIFY_RETRY_MIN=100ms", "BERTH_PLUGINS_NOTIFY_RETRY_MAX=1s",
		"BERTH_PLUGINS_RESTART_BACKOFF_MIN=100ms",
	}
	return g
}

func (g *gateway) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "berth"), "serve")
	cmd.Env = g.env
	logs := &bytes.Buffer{}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
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
			g.mu.Lock()
			lines := strings.Split(logs.String(), "\n")
			g.mu.Unlock()
			t.Logf("berth's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	until(t, "berth ready", func() bool {
		resp, err := http.Get(g.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func (g *gateway) kill9() {
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
}

// call sends a JSON request and decodes a JSON answer into out.
func (g *gateway) call(t *testing.T, token, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, g.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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

func (g *gateway) admin(t *testing.T) string {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if s := g.call(t, "", "POST", "/api/v1/auth/login", map[string]string{"username": "admin", "password": adminPassword}, &tok); s != 200 {
		t.Fatalf("login: %d", s)
	}
	return tok.AccessToken
}

// setup makes a webhook channel to rcv and a route of user events to it.
func (g *gateway) setup(t *testing.T, token string, rcv *receiver) {
	if s := g.call(t, token, "POST", "/api/v1/notifications/channels", map[string]any{"name": "hook", "type": "webhook", "url": rcv.srv.URL + "/hook", "secret": "whsec-e2e-crash-0001"}, nil); s != 201 {
		t.Fatalf("create channel: %d", s)
	}
	if s := g.call(t, token, "POST", "/api/v1/notifications/routes", map[string]any{"name": "users", "events": []string{"user.created"}, "channel": "hook"}, nil); s != 201 {
		t.Fatalf("create route: %d", s)
	}
}

// createUsers makes n users; each emits one user.created event. It
// returns their ids in creation order.
func (g *gateway) createUsers(t *testing.T, token, prefix string, n int) []string {
	var ids []string
	for i := range n {
		var u struct{ ID string }
		if s := g.call(t, token, "POST", "/api/v1/users", map[string]any{"username": fmt.Sprintf("%s%d", prefix, i), "password": "a-long-password-123"}, &u); s != 201 {
			t.Fatalf("create user: %d", s)
		}
		ids = append(ids, u.ID)
	}
	return ids
}

// checkDelivered asserts every user's event arrived, in order of creation,
// each once (a redelivery carries the same X-Berth-Delivery and is
// dropped as a receiver would), and returns the number of duplicates.
func checkDelivered(t *testing.T, rcv *receiver, users []string) int {
	t.Helper()
	var firsts []string
	seen := map[string]string{} // delivery key → event id
	dups := 0
	for _, h := range rcv.hits() {
		if h.eventType != "user.created" {
			continue
		}
		if ev, ok := seen[h.delivery]; ok {
			if ev != h.eventID {
				t.Errorf("delivery key %s was used for events %s and %s", h.delivery, ev, h.eventID)
			}
			dups++
			continue
		}
		seen[h.delivery] = h.eventID
		var body struct{ Data map[string]string }
		json.Unmarshal(h.body, &body)
		firsts = append(firsts, body.Data["user"])
	}
	if strings.Join(firsts, ",") != strings.Join(users, ",") {
		t.Errorf("received users %v, want each of %v once, in order", firsts, users)
	}
	return dups
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 600 {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

// The gateway dies (SIGKILL) while a delivery is in flight: after a
// restart every event arrives, in order, none lost; a repeat carries the
// same delivery key.
func TestGatewayKilledMidDelivery(t *testing.T) {
	rcv := newReceiver(t)
	g := newGateway(t)
	g.start(t)
	tok := g.admin(t)
	g.setup(t, tok, rcv)
	rcv.hold()
	users := g.createUsers(t, tok, "before", 3)
	<-rcv.arrived // the first delivery is in flight
	g.kill9()
	rcv.unhold()
	g.start(t)
	tok = g.admin(t)
	users = append(users, g.createUsers(t, tok, "after", 2)...)
	until(t, "every event delivered", func() bool { return len(rcv.hits()) >= len(users) })
	dups := checkDelivered(t, rcv, users)
	t.Logf("%d events, %d webhook requests received after the kill, %d repeats", len(users), len(rcv.hits()), dups)
}

// The plugin dies (SIGKILL) mid-send: the plugin host restarts it and the
// delivery is sent again, under the same key.
func TestPluginKilledMidSend(t *testing.T) {
	rcv := newReceiver(t)
	g := newGateway(t)
	g.start(t)
	tok := g.admin(t)
	g.setup(t, tok, rcv)
	rcv.hold()
	users := g.createUsers(t, tok, "u", 3)
	<-rcv.arrived
	pid := pluginPID(t, g.cmd.Process.Pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rcv.unhold()
	until(t, "every event delivered after the plugin's restart", func() bool { return len(rcv.hits()) >= len(users) })
	checkDelivered(t, rcv, users)
	if p := pluginPID(t, g.cmd.Process.Pid); p == pid {
		t.Errorf("the plugin was not restarted (pid %d)", p)
	}
}

// pluginPID finds berth-plugin-notify among berth's children.
func pluginPID(t *testing.T, parent int) int {
	t.Helper()
	var found int
	until(t, "the plugin process", func() bool {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid …
			rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
			fields := strings.Fields(rest)
			if len(fields) > 1 && fields[1] == strconv.Itoa(parent) && strings.Contains(string(stat), "(berth-plugin-no") {
				found = pid
				return true
			}
		}
		return false
	})
	return found
}

// mailpitVersion is the version plugins/notify's tests pin
// (plugins/notify/internal/mailpittest/testdata/mailpit/go.mod).
const mailpitVersion = "v1.33.1"

// buildMailpit builds the pinned mailpit from the plugin's tools module.
func buildMailpit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/axllent/mailpit")
	cmd.Dir = "../../../plugins/notify/internal/mailpittest/testdata/mailpit"
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build mailpit %s: %v\n%s", mailpitVersion, err, out)
	}
	return bin
}

// An email channel through the gateway, the real plugin and a real mail
// server (mailpit): a route sends user.created to an operator's address,
// and the message is read back through mailpit's API.
func TestEmailThroughTheGateway(t *testing.T) {
	mp := buildMailpit(t)
	ports, err := freeport.Pick(2)
	if err != nil {
		t.Fatal(err)
	}
	api := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cmd := exec.Command(mp, "--smtp", "127.0.0.1:"+strconv.Itoa(ports[0]), "--listen", "127.0.0.1:"+strconv.Itoa(ports[1]),
		"--database", filepath.Join(t.TempDir(), "mailpit.db"), "--smtp-disable-rdns", "--disable-version-check")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mailpit:\n%s", out.String())
		}
	})
	until(t, "mailpit answers", func() bool {
		resp, err := http.Get(api + "/api/v1/messages")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	g := newGateway(t)
	g.start(t)
	tok := g.admin(t)
	// Plain SMTP on loopback (no credentials, so the plugin allows it).
	if s := g.call(t, tok, "POST", "/api/v1/notifications/channels", map[string]any{"name": "mail", "type": "email",
		"host": "127.0.0.1", "port": strconv.Itoa(ports[0]), "tls": "none", "from": "Berth <berth@example.com>"}, nil); s != 201 {
		t.Fatalf("create email channel: %d", s)
	}
	if s := g.call(t, tok, "POST", "/api/v1/notifications/routes", map[string]any{"name": "people", "events": []string{"user.created"}, "channel": "mail", "target": "ops@example.com"}, nil); s != 201 {
		t.Fatalf("create route: %d", s)
	}
	g.createUsers(t, tok, "zoe", 1)
	var list struct {
		Messages []struct {
			ID      string
			Subject string
			To      []struct{ Address string }
		}
	}
	until(t, "the mail arrives", func() bool {
		resp, err := http.Get(api + "/api/v1/messages")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&list) == nil && len(list.Messages) > 0
	})
	m := list.Messages[0]
	if !strings.Contains(m.Subject, "zoe0") || len(m.To) != 1 || m.To[0].Address != "ops@example.com" {
		t.Errorf("mail %+v", m)
	}
	resp, err := http.Get(api + "/api/v1/message/" + m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var full struct{ Text, HTML string }
	json.NewDecoder(resp.Body).Decode(&full)
	if !strings.Contains(full.Text, "user.created") || !strings.Contains(full.HTML, "<table>") {
		t.Errorf("mail parts: text %q, html %q", full.Text, full.HTML)
	}
}
