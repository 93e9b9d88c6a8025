// Package notify proves notification delivery survives crashes, with real
// parts: the `berth` binary and the `berth-plugin-notify` plugin it finds
// beside itself, a webhook receiver on loopback, and SIGKILL of the
// gateway or of the plugin while a delivery is in flight.
package notify

import (
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

	"github.com/berthgw/berth/deploy/e2e/berthproc"
	"github.com/berthgw/berth/internal/freeport"
)

var binDir string // berth and berth-plugin-notify, side by side

// TestMain builds both binaries once, into one directory, as `make build`
// installs them.
func TestMain(m *testing.M) {
	dir, err := berthproc.Build(
		berthproc.Binary{Dir: "../../..", Out: "berth", Package: "./cmd/berth"},
		berthproc.Binary{Dir: "../../../plugins/notify", Out: "berth-plugin-notify", Package: "."},
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
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

// newGateway prepares one `berth serve` on a data directory that
// outlives its process (Kill9, then Start again), with quick retries so
// the test does not wait on backoff.
func newGateway(t *testing.T) *berthproc.Gateway {
	return berthproc.New(t, filepath.Join(binDir, "berth"), "",
		"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=127.0.0.1/32",
		"BERTH_PLUGINS_NOTIFY_RETRY_MIN=100ms", "BERTH_PLUGINS_NOTIFY_RETRY_MAX=1s",
		"BERTH_PLUGINS_RESTART_BACKOFF_MIN=100ms")
}

// setup makes a webhook channel to rcv and a route of user events to it.
func setup(t *testing.T, g *berthproc.Gateway, token string, rcv *receiver) {
	if s := g.Call(t, token, "POST", "/api/v1/notifications/channels", map[string]any{"name": "hook", "type": "webhook", "url": rcv.srv.URL + "/hook", "secret": "whsec-e2e-crash-0001"}, nil); s != 201 {
		t.Fatalf("create channel: %d", s)
	}
	if s := g.Call(t, token, "POST", "/api/v1/notifications/routes", map[string]any{"name": "users", "events": []string{"user.created"}, "channel": "hook"}, nil); s != 201 {
		t.Fatalf("create route: %d", s)
	}
}

// createUsers makes n users; each emits one user.created event. It
// returns their ids in creation order.
func createUsers(t *testing.T, g *berthproc.Gateway, token, prefix string, n int) []string {
	var ids []string
	for i := range n {
		var u struct{ ID string }
		if s := g.Call(t, token, "POST", "/api/v1/users", map[string]any{"username": fmt.Sprintf("%s%d", prefix, i), "password": "a-long-password-123"}, &u); s != 201 {
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

// The gateway dies (SIGKILL) while a delivery is in flight: after a
// restart every event arrives, in order, none lost; a repeat carries the
// same delivery key.
func TestGatewayKilledMidDelivery(t *testing.T) {
	rcv := newReceiver(t)
	g := newGateway(t)
	g.Start(t)
	tok := g.Admin(t)
	setup(t, g, tok, rcv)
	rcv.hold()
	users := createUsers(t, g, tok, "before", 3)
	<-rcv.arrived // the first delivery is in flight
	g.Kill9()
	rcv.unhold()
	g.Start(t)
	tok = g.Admin(t)
	users = append(users, createUsers(t, g, tok, "after", 2)...)
	berthproc.Eventually(t, "every event delivered", func() bool { return len(rcv.hits()) >= len(users) })
	dups := checkDelivered(t, rcv, users)
	t.Logf("%d events, %d webhook requests received after the kill, %d repeats", len(users), len(rcv.hits()), dups)
}

// The plugin dies (SIGKILL) mid-send: the plugin host restarts it and the
// delivery is sent again, under the same key.
func TestPluginKilledMidSend(t *testing.T) {
	rcv := newReceiver(t)
	g := newGateway(t)
	g.Start(t)
	tok := g.Admin(t)
	setup(t, g, tok, rcv)
	rcv.hold()
	users := createUsers(t, g, tok, "u", 3)
	<-rcv.arrived
	pid := pluginPID(t, g.PID())
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rcv.unhold()
	berthproc.Eventually(t, "every event delivered after the plugin's restart", func() bool { return len(rcv.hits()) >= len(users) })
	checkDelivered(t, rcv, users)
	if p := pluginPID(t, g.PID()); p == pid {
		t.Errorf("the plugin was not restarted (pid %d)", p)
	}
}

// pluginPID finds berth-plugin-notify among berth's children.
func pluginPID(t *testing.T, parent int) int {
	t.Helper()
	var found int
	berthproc.Eventually(t, "the plugin process", func() bool {
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
	berthproc.Eventually(t, "mailpit answers", func() bool {
		resp, err := http.Get(api + "/api/v1/messages")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	g := newGateway(t)
	g.Start(t)
	tok := g.Admin(t)
	// Plain SMTP on loopback (no credentials, so the plugin allows it).
	if s := g.Call(t, tok, "POST", "/api/v1/notifications/channels", map[string]any{"name": "mail", "type": "email",
		"host": "127.0.0.1", "port": strconv.Itoa(ports[0]), "tls": "none", "from": "Berth <berth@example.com>"}, nil); s != 201 {
		t.Fatalf("create email channel: %d", s)
	}
	if s := g.Call(t, tok, "POST", "/api/v1/notifications/routes", map[string]any{"name": "people", "events": []string{"user.created"}, "channel": "mail", "target": "ops@example.com"}, nil); s != 201 {
		t.Fatalf("create route: %d", s)
	}
	createUsers(t, g, tok, "zoe", 1)
	var list struct {
		Messages []struct {
			ID      string
			Subject string
			To      []struct{ Address string }
		}
	}
	berthproc.Eventually(t, "the mail arrives", func() bool {
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
