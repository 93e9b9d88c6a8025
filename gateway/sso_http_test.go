package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/sso/dextest"
)

// Single sign-on as an operator configures it: a provider in the
// configuration file with its secret in a file and the callback derived
// from public_url, a real OpenID provider (Dex), and the groups it asserts
// granting a cluster through a group membership. The CLI's part is played
// over HTTP as `berth login` plays it.
func TestSSOFromConfigGrantsClusterByGroup(t *testing.T) {
	const secret = "corp-client-secret-42"
	dex := dextest.Start(t, dextest.Options{
		Clients: []dextest.Client{{ID: "berth", Secret: secret, RedirectURIs: []string{"http://berth.test/api/v1/auth/sso/corp/callback"}}},
		Users: []dextest.User{{Email: "alice@example.com", Password: "alice-password-0001", Username: "alice",
			PreferredUsername: "alice", UserID: "alice-1", Groups: []string{"devs"}}},
	})
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "corp.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "berth.yaml")
	if err := os.WriteFile(cfgFile, []byte(`public_url: http://berth.test
auth:
  sso:
    providers:
    - name: corp
      display_name: Corp
      issuer: `+dex.Issuer+`
      client_id: berth
      client_secret_file: `+secretFile+`
      scopes: [email, profile, groups]
      groups_claim: groups
      create_users: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"BERTH_DATA_DIR": t.TempDir(), "BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_HTTPS_ADDR": "127.0.0.1:0",
		"BERTH_LOG_LEVEL": "debug", "BERTH_ADMIN_PASSWORD": adminPassword,
		// The sign-in steps share the auth limit; this test is not about it.
		"BERTH_RATE_LIMITS_AUTH_REQUESTS": "0",
	}
	cfg, err := config.Load(cfgFile, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.SyncWrites = false
	clock := runningClock()
	ag := &authGW{testGateway: startWithClock(t, cfg, clock.Now), clock: clock}
	ag.secret(adminPassword, secret, "alice-password-0001")
	t.Cleanup(func() { ag.checkNoSecrets(t) })

	if body := strings.TrimSpace(string(ag.must(t, 200, "GET", "/api/v1/auth/providers", nil))); body != `{"items":[{"name":"corp","display_name":"Corp","login_url":"/api/v1/auth/sso/corp/login"}]}` {
		t.Errorf("providers: %s", body)
	}
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "prod", "server": "https://127.0.0.1:2", "token": "t-prod-sso", "certificate_authority_data": caB64(ag)}, bearer(admin))
	ag.secret("t-prod-sso")
	ag.must(t, 201, "POST", "/api/v1/clusters/prod/members", map[string]any{"group": "devs", "role": "view"}, bearer(admin))

	// The CLI: a loopback listener, a verifier, and the browser sent
	// through Berth and Dex to the listener.
	got := make(chan url.Values, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.URL.Query() })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	verifier := "cli-verifier-" + strings.Repeat("0123456789", 4)
	sum := sha256.Sum256([]byte(verifier))
	ag.secret(verifier)

	jar, _ := cookiejar.New(nil)
	gw := ag.HTTPAddr()
	dial := &net.Dialer{}
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == "berth.test:80" {
				addr = gw
			}
			return dial.DialContext(ctx, network, addr)
		}}}
	step := func(u string) *url.URL {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
		return loc
	}
	q := url.Values{"cli_redirect_uri": {"http://" + ln.Addr().String() + "/callback"}, "cli_state": {"st-1"},
		"cli_code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}}
	authURL := step("http://berth.test/api/v1/auth/sso/corp/login?" + q.Encode())
	back := dex.SignIn(t, browser, authURL.String(), "alice@example.com", "alice-password-0001")
	ag.secret(back.Query().Get("code"))
	loopback := step(back.String())
	if _, err := browser.Get(loopback.String()); err != nil {
		t.Fatal(err)
	}
	params := <-got
	ag.secret(params.Get("code"))
	if params.Get("state") != "st-1" {
		t.Fatalf("the CLI got %v", params)
	}
	tok := decode[identity.TokenResponse](t, ag.must(t, 200, "POST", "/api/v1/auth/sso/token",
		map[string]string{"code": params.Get("code"), "code_verifier": verifier}))
	ag.secret(tok.AccessToken, tok.RefreshToken)

	// alice reaches prod through the devs group; a user without it does not.
	ag.must(t, 200, "GET", "/api/v1/clusters/prod", nil, bearer(tok.AccessToken))
	ag.createUser(t, admin, "noah", "noah-password-1")
	noah := ag.login(t, "noah", "noah-password-1").AccessToken
	ag.must(t, 404, "GET", "/api/v1/clusters/prod", nil, bearer(noah))
	// The refresh token works as a password sign-in's does.
	fresh := decode[identity.TokenResponse](t, ag.must(t, 200, "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": tok.RefreshToken}))
	ag.secret(fresh.AccessToken, fresh.RefreshToken)
	ag.must(t, 200, "GET", "/api/v1/clusters/prod", nil, bearer(fresh.AccessToken))
}
