package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/syncbuf"
)

type testGateway struct {
	*Gateway
	logs   *syncbuf.Buffer
	stdout *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error
	http   string // base URL
	https  string
	client *http.Client
}

func testConfig(t *testing.T, dataDir string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", func(k string) (string, bool) {
		v, ok := map[string]string{
			"BERTH_DATA_DIR":   dataDir,
			"BERTH_HTTP_ADDR":  "127.0.0.1:0",
			"BERTH_HTTPS_ADDR": "127.0.0.1:0",
			"BERTH_LOG_LEVEL":  "debug",
		}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.SyncWrites = false // speed; durability has its own test
	return cfg
}

// start builds a gateway, lets setup add test routes, and serves it.
func start(t testing.TB, cfg *config.Config, setup func(*Gateway)) *testGateway {
	t.Helper()
	return startWith(t, cfg, nil, setup)
}

// startWith is start with an injected clock (nil: time.Now).
func startWith(t testing.TB, cfg *config.Config, clock func() time.Time, setup func(*Gateway)) *testGateway {
	t.Helper()
	tg := &testGateway{logs: &syncbuf.Buffer{}, stdout: &syncbuf.Buffer{}, done: make(chan error, 1)}
	// As berth serve: access lines encoded straight onto the JSON log.
	g, err := New(Options{Config: cfg, Clock: clock, Stdout: tg.stdout, AccessLog: tg.logs,
		Logger: slog.New(slog.NewJSONHandler(tg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(g)
	}
	if err := g.Listen(); err != nil {
		g.Close()
		t.Fatal(err)
	}
	tg.Gateway = g
	ctx, cancel := context.WithCancel(context.Background())
	tg.cancel = cancel
	go func() { tg.done <- g.Serve(ctx) }()
	tg.http = "http://" + g.HTTPAddr()
	tg.https = "https://" + g.HTTPSAddr()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(g.CertificatePEM())
	tg.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	t.Cleanup(func() { tg.stop(t) })
	return tg
}

func (tg *testGateway) stop(t testing.TB) {
	if tg.cancel == nil {
		return
	}
	tg.cancel()
	tg.cancel = nil
	if err := <-tg.done; err != nil {
		t.Errorf("serve returned %v", err)
	}
}

// do sends req and reads the answer; both are checked against the API
// document (apitest.CheckExchange).
func (tg *testGateway) do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	sent := apitest.RequestBody(t, req)
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	apitest.CheckExchange(t, req, sent, resp.StatusCode, resp.Header, body)
	return resp, body
}

func (tg *testGateway) get(t testing.TB, url string) (*http.Response, []byte) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return tg.do(t, req)
}

var decodeError = apitest.DecodeError

func TestHealthzOnBothListeners(t *testing.T) {
	tg := start(t, testConfig(t, t.TempDir()), nil)
	for _, base := range []string{tg.http, tg.https} {
		resp, body := tg.get(t, base+"/healthz")
		var h struct {
			Status  string `json:"status"`
			Version string `json:"version"`
			Uptime  *int64 `json:"uptime_seconds"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &h) != nil || h.Status != "ok" || h.Version != Version || h.Uptime == nil {
			t.Fatalf("%s/healthz: %d %s", base, resp.StatusCode, body)
		}
		for k, v := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "strict-origin-when-cross-origin",
			"X-Frame-Options":        "DENY",
		} {
			if resp.Header.Get(k) != v {
				t.Errorf("%s: header %s = %q", base, k, resp.Header.Get(k))
			}
		}
		hsts := resp.Header.Get("Strict-Transport-Security")
		if (base == tg.https) != (hsts != "") {
			t.Errorf("%s: HSTS %q (only on TLS)", base, hsts)
		}
		if resp.Header.Get("Server") != "" {
			t.Errorf("server header leaks %q", resp.Header.Get("Server"))
		}
	}
	// The certificate verified against itself for 127.0.0.1; localhost too.
	cert, err := x509.ParseCertificate(mustPEM(t, tg.CertificatePEM()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("certificate key is %v, want ECDSA", cert.PublicKeyAlgorithm)
	}
}

func mustPEM(t *testing.T, p []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}

func TestErrorShapes(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.MaxBodyBytes = 4096
	cfg.Limits.MaxHeaderBytes = 4096
	tg := start(t, cfg, func(g *Gateway) {
		g.router.POST("/echo", func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.PostBody()) })
	})

	resp, body := tg.get(t, tg.http+"/no/such/thing")
	if e := decodeError(t, body); resp.StatusCode != 404 || e.Code != 404 || e.Error != "not_found" || e.RequestID != resp.Header.Get("X-Request-Id") {
		t.Errorf("404: %d %+v", resp.StatusCode, e)
	}
	req, _ := http.NewRequest(http.MethodDelete, tg.http+"/healthz", nil)
	resp, body = tg.do(t, req)
	if e := decodeError(t, body); resp.StatusCode != 405 || e.Error != "method_not_allowed" || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Errorf("405: %d %+v allow=%q", resp.StatusCode, e, resp.Header.Get("Allow"))
	}
	req, _ = http.NewRequest(http.MethodPost, tg.http+"/echo", bytes.NewReader(make([]byte, 5000)))
	resp, body = tg.do(t, req)
	if e := decodeError(t, body); resp.StatusCode != 413 || e.Error != "payload_too_large" {
		t.Errorf("413: %d %s", resp.StatusCode, body)
	}
	req, _ = http.NewRequest(http.MethodGet, tg.http+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 8000))
	resp, body = tg.do(t, req)
	if e := decodeError(t, body); resp.StatusCode != 431 || e.Error != "header_too_large" {
		t.Errorf("431: %d %s", resp.StatusCode, body)
	}
	// A request that is not HTTP at all.
	conn, err := net.Dial("tcp", tg.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "BLAH\x00\x01 nonsense\r\n\r\n")
	raw, _ := io.ReadAll(bufio.NewReader(conn))
	conn.Close()
	if !bytes.Contains(raw, []byte(" 400 ")) || !bytes.Contains(raw, []byte(`"error":"invalid_request"`)) {
		t.Errorf("garbage request: %q", raw)
	}
	// The server still serves after all that.
	if resp, _ := tg.get(t, tg.http+"/healthz"); resp.StatusCode != 200 {
		t.Error("server unhealthy after bad requests")
	}
}

// Berth's request id is always its own, whatever the client sent
// (requestid_http_test.go follows the client's id into logs and audit).
func TestRequestID(t *testing.T) {
	tg := start(t, testConfig(t, t.TempDir()), nil)
	seen := map[string]bool{}
	for _, sent := range []string{"abc-123_x.y:z", "has space", strings.Repeat("a", 129), "<script>", ""} {
		req, _ := http.NewRequest(http.MethodGet, tg.http+"/healthz", nil)
		if sent != "" {
			req.Header.Set("X-Request-Id", sent)
		}
		resp, _ := tg.do(t, req)
		got := resp.Header.Get("X-Request-Id")
		if got == sent || len(got) != 24 || seen[got] {
			t.Errorf("sent %q got %q: want a fresh id of Berth's own", sent, got)
		}
		seen[got] = true
	}
}

func TestPanicRecovery(t *testing.T) {
	tg := start(t, testConfig(t, t.TempDir()), func(g *Gateway) {
		g.router.GET("/boom", func(*fasthttp.RequestCtx) { panic("kaboom at /internal/path") })
	})
	resp, body := tg.get(t, tg.http+"/boom")
	e := decodeError(t, body)
	if resp.StatusCode != 500 || e.Error != "internal_error" {
		t.Fatalf("panic: %d %s", resp.StatusCode, body)
	}
	if bytes.Contains(body, []byte("kaboom")) || bytes.Contains(body, []byte("goroutine")) || bytes.Contains(body, []byte(".go:")) {
		t.Errorf("panic detail leaked to client: %s", body)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Error("security headers missing on 500")
	}
	logs := tg.logs.String()
	if !strings.Contains(logs, "kaboom") || !strings.Contains(logs, e.RequestID) {
		t.Error("panic not logged with its request id")
	}
	if resp, _ := tg.get(t, tg.http+"/healthz"); resp.StatusCode != 200 {
		t.Error("server down after panic")
	}
}

func TestReadyz(t *testing.T) {
	var pluginDown = true
	var mu sync.Mutex
	tg := start(t, testConfig(t, t.TempDir()), func(g *Gateway) {
		g.ready.Add("plugin:test", func() error {
			mu.Lock()
			defer mu.Unlock()
			if pluginDown {
				return errors.New("down")
			}
			return nil
		})
	})
	resp, body := tg.get(t, tg.http+"/readyz")
	if resp.StatusCode != 503 || !strings.Contains(string(body), "plugin:test") {
		t.Errorf("readyz with a failing check: %d %s", resp.StatusCode, body)
	}
	mu.Lock()
	pluginDown = false
	mu.Unlock()
	if resp, body := tg.get(t, tg.http+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz when ready: %d %s", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AdminPassword = adminPassword
	tg := start(t, cfg, nil)
	tg.get(t, tg.http+"/healthz")
	tg.get(t, tg.http+"/nope/1")
	tg.get(t, tg.http+"/nope/2")
	_, body := tg.scrape(t, tg.loginToken(t, "admin", adminPassword))
	for _, want := range []string{
		`berth_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`berth_http_requests_total{code="404",method="GET",route="unmatched"} 2`,
		`berth_http_request_duration_seconds_bucket{method="GET",route="/healthz"`,
		`berth_http_requests_in_flight 1`,
		`berth_store_size_bytes{part="lsm"}`,
		`berth_store_size_bytes{part="vlog"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), "/nope/1") {
		t.Error("raw paths in metric labels")
	}
}

// A request in flight when shutdown begins completes; new connections are
// refused; Serve returns nil and the store is closed.
func TestSlowRequestCompletesDuringShutdown(t *testing.T) {
	entered := make(chan struct{})
	tg := start(t, testConfig(t, t.TempDir()), func(g *Gateway) {
		g.router.GET("/slow", func(ctx *fasthttp.RequestCtx) {
			close(entered)
			time.Sleep(time.Second)
			ctx.SetBodyString("finished")
		})
	})
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := tg.client.Get(tg.http + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	tg.cancel()
	tg.cancel = nil
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-tg.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", tg.HTTPAddr(), time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
	if err := tg.db.Ready(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("store not closed after shutdown: %v", err)
	}
}

// No secret from the request (query, headers, cookies) or the generated
// admin password appears in the logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	tg := start(t, testConfig(t, t.TempDir()), nil)
	secrets := []string{"S3cretTok", "AKIDSECRET", "SKSECRET", "pw-Secret-1", "BearerSecret", "CookieSecret", "CliSecret"}
	req, _ := http.NewRequest(http.MethodGet, tg.http+"/healthz?token=S3cretTok&accessKey=AKIDSECRET&secretKey=SKSECRET&password=pw-Secret-1&client_secret=CliSecret&page=2", nil)
	req.Header.Set("Authorization", "Bearer BearerSecret")
	req.Header.Set("Cookie", "__Host-berth_session=CookieSecret")
	tg.do(t, req)
	tg.stop(t)

	out := tg.stdout.String()
	pw := strings.TrimSpace(strings.Split(strings.SplitN(out, "password ", 2)[1], "\n")[0])
	if len(pw) < 20 {
		t.Fatalf("generated password not printed to stdout: %q", out)
	}
	logs := tg.logs.String()
	for _, s := range append(secrets, pw) {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q", s)
		}
	}
	if !strings.Contains(logs, `page=2`) || !strings.Contains(logs, `token=REDACTED`) {
		t.Errorf("query not logged in redacted form: %s", logs)
	}
}

// Restarting keeps the admin user (even with a new BERTH_ADMIN_PASSWORD),
// its password, and the self-signed certificate.
func TestRestartKeepsState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(t, dir)
	cfg.AdminPassword = "first-password-123"
	tg := start(t, cfg, nil)
	cert1 := string(tg.CertificatePEM())
	if strings.Contains(tg.stdout.String(), "password") {
		t.Error("configured password must not be printed")
	}
	tg.stop(t)

	cfg2 := testConfig(t, dir)
	cfg2.AdminPassword = "second-password-456"
	tg2 := start(t, cfg2, nil)
	if string(tg2.CertificatePEM()) != cert1 {
		t.Error("self-signed certificate changed across restart")
	}
	u, err := tg2.identity.UserByName("admin")
	if err != nil {
		t.Fatal(err)
	}
	if identity.VerifyPassword(u.PasswordHash, "first-password-123") != nil {
		t.Error("admin password changed across restart")
	}
	if strings.Contains(u.PasswordHash, "first-password") {
		t.Error("password stored in plain text")
	}
	// A new configured name makes a new certificate that covers it.
	tg2.stop(t)
	cfg3 := testConfig(t, dir)
	cfg3.TLS.Names = []string{"edge.example.test"}
	tg3 := start(t, cfg3, nil)
	cert, _ := x509.ParseCertificate(mustPEM(t, tg3.CertificatePEM()))
	if cert == nil || cert.VerifyHostname("edge.example.test") != nil || cert.VerifyHostname("127.0.0.1") != nil {
		t.Error("certificate does not cover the configured name and the defaults")
	}
	for _, f := range []string{"", "secret.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]os.FileMode{true: 0o700, false: 0o600}[f == ""]; st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", filepath.Join(dir, f), st.Mode().Perm(), want)
		}
	}
}

// Behind a trusted proxy the access log names the client the proxy
// forwarded for, and the proxy as the peer.
func TestAccessLogResolvesClientThroughTrustedProxy(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	tg := start(t, cfg, nil)
	req, _ := http.NewRequest(http.MethodGet, tg.http+"/healthz", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	tg.do(t, req)
	tg.stop(t)
	if logs := tg.logs.String(); !strings.Contains(logs, `"client":"203.0.113.9","peer":"127.0.0.1"`) {
		t.Errorf("access log does not show the resolved client: %s", logs)
	}
}
