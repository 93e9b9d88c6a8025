package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/sso/dextest"
	"github.com/berthgw/berth/internal/freeport"
)

// `berth login --sso` end to end: the berth command (this test binary)
// waits on its loopback listener, a browser (an HTTP client with a cookie
// jar) goes from the URL it prints through Berth and a real OpenID
// provider (Dex) and back to the listener, and the command then holds a
// session: `berth whoami` shows the user Dex asserted, groups included.
func TestLoginWithSSO(t *testing.T) {
	const secret = "cli-sso-client-secret-7"
	ports, err := freeport.Pick(2)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://127.0.0.1:" + strconv.Itoa(ports[1])
	dex := dextest.Start(t, dextest.Options{
		Clients: []dextest.Client{{ID: "berth", Secret: secret, RedirectURIs: []string{base + "/api/v1/auth/sso/corp/callback"}}},
		Users: []dextest.User{{Email: "alice@example.com", Password: "alice-password-0001", Username: "alice",
			PreferredUsername: "alice", UserID: "alice-1", Groups: []string{"devs"}}},
	})
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "corp.secret")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	cfgFile := filepath.Join(dir, "berth.yaml")
	os.WriteFile(cfgFile, []byte(`public_url: `+base+`
auth:
  sso:
    providers:
    - name: corp
      issuer: `+dex.Issuer+`
      client_id: berth
      client_secret_file: `+secretFile+`
      scopes: [email, profile, groups]
      groups_claim: groups
      create_users: true
`), 0o600)
	vars := map[string]string{
		"BERTH_DATA_DIR": t.TempDir(), "BERTH_HTTP_ADDR": "127.0.0.1:" + strconv.Itoa(ports[0]), "BERTH_HTTPS_ADDR": "127.0.0.1:" + strconv.Itoa(ports[1]),
		"BERTH_ADMIN_PASSWORD": cliAdminPassword, "BERTH_RATE_LIMITS_AUTH_REQUESTS": "0",
	}
	cfg, err := config.Load(cfgFile, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.SyncWrites = false
	var logs bytes.Buffer
	g, err := gateway.New(gateway.Options{Config: cfg, Stdout: io.Discard,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{b: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		g.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("Berth's log:\n%s", logs.String())
		}
	})
	ca := filepath.Join(dir, "berth-ca.crt")
	os.WriteFile(ca, g.CertificatePEM(), 0o600)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	clockFile := filepath.Join(dir, "clock")
	os.WriteFile(clockFile, []byte("0"), 0o600)
	home := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		envAsCLI + "=1", envClockFile + "=" + clockFile}

	login := exec.Command(self, "login", base, "--sso", "--certificate-authority", ca, "--sso-timeout", "2m")
	login.Env = env
	stderr, _ := login.StderrPipe()
	var out bytes.Buffer
	login.Stdout = &out
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { login.Process.Kill() })
	printed := make(chan string, 1)
	var shown bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			shown.WriteString(sc.Text() + "\n")
			if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, base+"/") {
				printed <- line
			}
		}
	}()
	var signIn string
	select {
	case signIn = <-printed:
	case <-time.After(time.Minute):
		t.Fatalf("berth login --sso printed no URL:\n%s", shown.String())
	}
	if !strings.Contains(signIn, "/api/v1/auth/sso/corp/login?") || !strings.Contains(signIn, "cli_code_challenge=") {
		t.Fatalf("the sign-in URL: %s", signIn)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(g.CertificatePEM())
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	step := func(u string) *url.URL {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		return loc
	}
	toDex := step(signIn)
	back := dex.SignIn(t, browser, toDex.String(), "alice@example.com", "alice-password-0001")
	loopback := step(back.String())
	if loopback.Hostname() != "127.0.0.1" || loopback.Query().Get("code") == "" {
		t.Fatalf("Berth sent the browser to %s", loopback.Redacted())
	}
	resp, err := browser.Get(loopback.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(page)), "close") {
		t.Errorf("the loopback page: %d %s", resp.StatusCode, page)
	}
	if err := login.Wait(); err != nil {
		t.Fatalf("berth login --sso: %v\nstdout: %s\nstderr: %s", err, out.String(), shown.String())
	}

	whoami := exec.Command(self, "whoami", "--server", base, "-o", "json")
	whoami.Env = env
	got, err := whoami.CombinedOutput()
	if err != nil || !strings.Contains(string(got), `"alice"`) || !strings.Contains(string(got), `"devs"`) {
		t.Errorf("berth whoami after --sso: %v\n%s", err, got)
	}
	// berth printed neither the code nor a token (an access token is a
	// JWT, "eyJ…"; a refresh token starts brr_): only `berth credential`
	// hands tokens out.
	for what, printed := range map[string]string{"login's stdout": out.String(), "login's stderr": shown.String(), "whoami": string(got)} {
		if code := loopback.Query().Get("code"); strings.Contains(printed, code) || strings.Contains(printed, "eyJ") || strings.Contains(printed, "brr_") {
			t.Errorf("%s shows a code or token:\n%s", what, printed)
		}
	}
	// The code Berth gave the loopback is spent: played again, it signs
	// no one in.
	if st := postJSON(t, base+"/api/v1/auth/sso/token", pool, `{"code":"`+loopback.Query().Get("code")+`","code_verifier":"`+strings.Repeat("x", 43)+`"}`); st != 400 {
		t.Errorf("the spent code again: %d, want 400", st)
	}
}

func postJSON(t *testing.T, u string, pool *x509.CertPool, body string) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
