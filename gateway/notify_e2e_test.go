package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// Notifications end to end: the real plugins/notify process, found in
// plugins.dir without any plugin configuration, delivering a webhook to a
// real HTTP receiver on loopback (allowed by
// BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS for that address only).

var notifyBin struct {
	once sync.Once
	dir  string
	err  error
}

// buildNotify builds plugins/notify once per test binary into a directory
// of its own, as berth-plugin-notify.
func buildNotify(t testing.TB) string {
	t.Helper()
	notifyBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-notify-")
		if err != nil {
			notifyBin.err = err
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "berth-plugin-notify"), ".")
		cmd.Dir = "../plugins/notify"
		if out, err := cmd.CombinedOutput(); err != nil {
			notifyBin.err = fmt.Errorf("build plugins/notify: %v\n%s", err, out)
			return
		}
		notifyBin.dir = dir
	})
	if notifyBin.err != nil {
		t.Fatal(notifyBin.err)
	}
	return notifyBin.dir
}

// receiver is a webhook endpoint that keeps what it is sent.
type receiver struct {
	mu   sync.Mutex
	reqs []received
	srv  *httptest.Server
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, received{req.Header.Clone(), body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func TestNotificationsThroughTheRealPlugin(t *testing.T) {
	dir := buildNotify(t)
	ag := startAuthOn(t, map[string]string{
		"BERTH_PLUGINS_DIR":                         dir,
		"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS": "127.0.0.1/32",
	}, runningClock())
	admin := ag.login(t, "admin", adminPassword).AccessToken
	rcv := newReceiver(t)
	const secret = "whsec-e2e-0123456789abcdef"
	const headerValue = "team-ops-header-value"
	ag.secret(secret, headerValue)

	// The SSRF guard refuses every private form the allow-list does not
	// name (it names 127.0.0.1 only), and nothing is stored.
	for _, url := range []string{
		"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://[::1]:9/hook",
		"http://127.0.0.2/hook", "file:///etc/passwd", "gopher://127.0.0.1:70/", "http://user:pw@127.0.0.1/",
		"http://[::ffff:169.254.169.254]/", "http://100.64.0.1/",
	} {
		status, body, _ := ag.call(t, "POST", "/api/v1/notifications/channels", map[string]any{"name": "bad", "type": "webhook", "url": url}, bearer(admin))
		if status != http.StatusBadRequest {
			t.Errorf("channel to %s: %d %s, want 400", url, status, body)
		}
	}
	status, body, _ := ag.call(t, "POST", "/api/v1/notifications/channels",
		map[string]any{"name": "ops", "type": "webhook", "url": rcv.srv.URL + "/hook", "secret": secret, "headers": map[string]string{"X-Team": headerValue}}, bearer(admin))
	if status != http.StatusCreated {
		t.Fatalf("create channel: %d %s", status, body)
	}
	if s := string(body); strings.Contains(s, secret) || strings.Contains(s, headerValue) || !strings.Contains(s, `"secret_configured":true`) {
		t.Errorf("the channel as created shows %s", s)
	}
	list := decode[struct{ Items []map[string]any }](t, ag.must(t, 200, "GET", "/api/v1/notifications/channels", nil, bearer(admin)))
	if len(list.Items) != 1 {
		t.Errorf("channels stored: %v, want only ops", list.Items)
	}
	ag.must(t, 201, "POST", "/api/v1/notifications/routes", map[string]any{"name": "people", "events": []string{"user.*"}, "channel": "ops"}, bearer(admin))

	// A change that emits: the event reaches the receiver, signed.
	u := ag.createUser(t, admin, "carol", "carol-password-123")
	var hit received
	waitFor(t, time.Minute, "the webhook to arrive", func() error {
		for _, r := range rcv.got() {
			if strings.Contains(string(r.body), u.ID) {
				hit = r
				return nil
			}
		}
		return fmt.Errorf("%d requests, none for %s", len(rcv.got()), u.ID)
	})
	if hit.header.Get("X-Berth-Event") != "user.created" || hit.header.Get("X-Team") != headerValue || hit.header.Get("X-Berth-Delivery") == "" {
		t.Errorf("webhook headers: %v", hit.header)
	}
	var ev struct {
		ID, Type, Actor, Summary string
		Data                     map[string]string
	}
	if err := json.Unmarshal(hit.body, &ev); err != nil || ev.Type != "user.created" || ev.ID == "" || ev.Data["username"] != "carol" {
		t.Errorf("webhook body %s: %v", hit.body, err)
	}
	verifySignature(t, secret, hit.header.Get("X-Berth-Signature"), hit.body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(hit.body)
	if got := hit.header.Get("X-Hub-Signature-256"); got != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("X-Hub-Signature-256 %q does not sign the body", got)
	}

	// The delivery history shows it delivered, with its idempotency key:
	// recorded once the plugin answers, which is after the receiver saw
	// the request, so wait for it.
	var ds struct{ Items []map[string]any }
	waitFor(t, time.Minute, "the delivery recorded as delivered", func() error {
		ds = decode[struct{ Items []map[string]any }](t, ag.must(t, 200, "GET", "/api/v1/notifications/deliveries?status=delivered&event_type=user.created", nil, bearer(admin)))
		if len(ds.Items) == 0 {
			return fmt.Errorf("no delivered delivery yet")
		}
		return nil
	})
	if ds.Items[0]["idempotency_key"] != hit.header.Get("X-Berth-Delivery") {
		t.Errorf("deliveries: %v", ds.Items)
	}

	// A test send through the saved channel reports the plugin's answer.
	res := decode[map[string]any](t, ag.must(t, 200, "POST", "/api/v1/notifications/test", map[string]any{"channel": "ops", "template": "cluster.unreachable"}, bearer(admin)))
	if res["delivered"] != true {
		t.Errorf("test send: %v", res)
	}
}

// verifySignature checks X-Berth-Signature as a receiver would:
// t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>, recent.
func verifySignature(t *testing.T, secret, header string, body []byte) {
	t.Helper()
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		t.Fatalf("X-Berth-Signature %q does not sign the body", header)
	}
	var unix int64
	fmt.Sscan(ts, &unix)
	if d := time.Since(time.Unix(unix, 0)); d < -time.Minute || d > 5*time.Minute {
		t.Errorf("signature time %s is %s away", ts, d)
	}
}

// BenchmarkWebhookDelivery is the outbox's throughput through the real
// plugin to a webhook receiver on loopback: b.N events emitted at once
// (one route, one channel, so delivered one after the other, in order),
// timed until the receiver has them all.
func BenchmarkWebhookDelivery(b *testing.B) {
	dir := buildNotify(b)
	ag := startAuthOn(b, map[string]string{
		"BERTH_PLUGINS_DIR": dir, "BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS": "127.0.0.1/32", "BERTH_LOG_LEVEL": "info",
	}, runningClock())
	admin := ag.login(b, "admin", adminPassword).AccessToken
	rcv := newReceiver(b)
	ag.must(b, 201, "POST", "/api/v1/notifications/channels", map[string]any{"name": "ops", "type": "webhook", "url": rcv.srv.URL + "/hook", "secret": "whsec-bench-0123456789"}, bearer(admin))
	ag.must(b, 201, "POST", "/api/v1/notifications/routes", map[string]any{"name": "clusters", "events": []string{"cluster.*"}, "channel": "ops"}, bearer(admin))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 500 {
		err := ag.db.Update(func(tx *store.Tx) error {
			for j := i; j < min(i+500, b.N); j++ {
				if err := events.Emit(tx, events.Event{Type: events.ClusterRegistered, Time: time.Now(), Cluster: fmt.Sprint("c", j), Summary: "registered"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for len(rcv.got()) < b.N {
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
