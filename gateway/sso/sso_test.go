package sso

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/sso/dextest"
	"github.com/berthgw/berth/gateway/store"
)

// The tests sign in through a real OpenID provider, Dex (dextest), run on
// a loopback port with static users, and Berth's SSO endpoints served
// in-process (apitest) at http://berth.test. The "browser" is an
// http.Client with a cookie jar that does not follow redirects, so each
// step is seen; its requests to berth.test reach the in-process server,
// the rest go to Dex over TCP.

const (
	berthHost    = "berth.test"
	clientSecret = "berth-client-secret-0001"
	alicePass    = "alice-password-0001"
)

func callback(name string) string {
	return "http://" + berthHost + "/api/v1/auth/sso/" + name + "/callback"
}

var (
	alice = dextest.User{Email: "alice@example.com", Password: alicePass, Username: "alice", PreferredUsername: "alice",
		UserID: "0b1d5f0a-alice", Groups: []string{"devs", "ops", "system:masters"}}
	unverified = dextest.User{Email: "eve@example.com", Password: "eve-password-0001", Username: "eve", PreferredUsername: "eve",
		UserID: "0b1d5f0a-eve", EmailUnverified: true}
)

// startDex runs a Dex that knows Berth's client for the named providers'
// callbacks, plus "other", a client Berth is not.
func startDex(t *testing.T, ttl time.Duration, users ...dextest.User) *dextest.Dex {
	t.Helper()
	if len(users) == 0 {
		users = []dextest.User{alice, unverified}
	}
	return dextest.Start(t, dextest.Options{IDTokenTTL: ttl, Users: users, Clients: []dextest.Client{
		{ID: "berth", Secret: clientSecret, RedirectURIs: []string{callback("dex"), callback("dex2"), callback("strict")}},
		{ID: "other", Secret: "other-client-secret-01", RedirectURIs: []string{"http://127.0.0.1:9/cb"}},
	}})
}

func dexProvider(name, issuer string) Provider {
	return Provider{Name: name, DisplayName: "Dex " + name, Issuer: issuer, ClientID: "berth", ClientSecret: clientSecret,
		Scopes: []string{"email", "profile", "groups"}, RedirectURL: callback(name),
		UsernameClaim: "preferred_username", EmailClaim: "email", GroupsClaim: "groups",
		Policy: identity.ExternalPolicy{CreateUsers: true, DefaultRole: identity.RoleUser}}
}

type env struct {
	*apitest.Env
	clock *apitest.Clock
	svc   *Service
}

// serve runs Berth's SSO routes (and /api/v1/auth/me) for providers.
func serve(t *testing.T, limits ratelimit.Options, providers ...Provider) *env {
	t.Helper()
	return serveWith(t, limits, nil, providers...)
}

// serveWith is serve with the service's options edited first.
func serveWith(t *testing.T, limits ratelimit.Options, edit func(*Options), providers ...Provider) *env {
	t.Helper()
	clock := apitest.RunningClock()
	e := &env{Env: apitest.NewWith(t, apitest.Options{Now: clock.Now, Limits: limits}), clock: clock}
	opts := Options{Providers: providers, Identity: e.IDs, DB: e.DB, Box: e.Box, Audit: e.Audit, Now: clock.Now, Logger: e.Log}
	if edit != nil {
		edit(&opts)
	}
	e.svc = New(opts)
	ids := identity.NewHandlers(e.IDs, e.Authn, e.Audit)
	routes := append(Routes(NewHandlers(e.svc, e.Authn)),
		authn.Route{Method: "GET", Path: "/api/v1/auth/me", Permission: authn.SignedIn, Handler: ids.Me})
	e.Serve(t, routes)
	e.Secret(clientSecret, alicePass)
	return e
}

// routed sends requests for berth.test to the in-process server and the
// rest over the network.
type routed struct{ berth http.RoundTripper }

func (r routed) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == berthHost {
		if req.URL.Scheme == "https" {
			// The browser (its cookie jar) sees https; the in-process
			// server speaks plain HTTP.
			req = req.Clone(req.Context())
			req.URL.Scheme = "http"
		}
		return r.berth.RoundTrip(req)
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (e *env) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: routed{e.Transport()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, edits ...func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ed := range edits {
		ed(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	resp.Body.Close()
	return resp
}

// begin asks Berth to start a sign-in and returns its redirect to Dex.
func (e *env) begin(t *testing.T, b *http.Client, path string) *url.URL {
	t.Helper()
	resp := get(t, b, "http://"+berthHost+path)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d, want 302", path, resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func cookieFrom(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (e *env) lastSSOFailure(t *testing.T) string {
	t.Helper()
	for _, ev := range e.Events(t, audit.Query{ResourceType: "sso", Action: "login"}) {
		if ev.Result == audit.ResultFailure {
			return ev.Reason
		}
	}
	return ""
}

// sessions counts the stored sessions, revoked or not.
func (e *env) sessions(t *testing.T) int {
	t.Helper()
	return strings.Count("\n"+e.State(t), "\nsessions/")
}

// flows counts the stored sign-in flows.
func (e *env) flows(t *testing.T) int {
	t.Helper()
	n := 0
	err := e.DB.View(func(tx *store.Tx) error {
		return flowsTable.Scan(tx, store.ScanOptions{}, func(string, *flow) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBrowserSignIn(t *testing.T) {
	dex := startDex(t, 0)
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dex.Issuer))
	var list struct {
		Items []Listed `json:"items"`
	}
	json.Unmarshal(e.Must(t, 200, "GET", "/api/v1/auth/providers", "", nil), &list)
	if len(list.Items) != 1 || list.Items[0] != (Listed{Name: "dex", DisplayName: "Dex dex", LoginURL: "/api/v1/auth/sso/dex/login"}) {
		t.Fatalf("providers: %+v", list)
	}

	b := e.browser(t)
	resp := get(t, b, "http://"+berthHost+"/api/v1/auth/sso/dex/login?next=/clusters%3Fpage=2")
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	q := authURL.Query()
	if resp.StatusCode != 302 || !strings.HasPrefix(authURL.String(), dex.Issuer+"/auth?") || q.Get("code_challenge_method") != "S256" ||
		len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || len(q.Get("state")) != 43 || q.Get("client_id") != "berth" ||
		q.Get("redirect_uri") != callback("dex") || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("login: %d to %s", resp.StatusCode, authURL)
	}
	// The binding cookie: HttpOnly, Lax, only the SSO paths, not Secure
	// on this http callback.
	var flowCookie *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, cookiePrefix) {
			flowCookie = c
		}
	}
	if flowCookie == nil || !flowCookie.HttpOnly || flowCookie.SameSite != http.SameSiteLaxMode || flowCookie.Path != CookiePath ||
		flowCookie.Secure || flowCookie.MaxAge != int(FlowTTL/time.Second) {
		t.Fatalf("binding cookie: %+v", flowCookie)
	}
	e.Secret(flowCookie.Value)
	back := dex.SignIn(t, b, authURL.String(), alice.Email, alice.Password)
	e.Secret(back.Query().Get("code"))

	resp = get(t, b, back.String())
	session := cookieFrom(resp, e.Authn.CookieName())
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/clusters?page=2" || session == nil || !session.HttpOnly || !session.Secure ||
		session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
		t.Fatalf("callback: %d to %q, session cookie %+v", resp.StatusCode, resp.Header.Get("Location"), session)
	}
	e.Secret(session.Value)
	if c := cookieFrom(resp, flowCookie.Name); c == nil || c.MaxAge >= 0 {
		t.Errorf("the binding cookie is not cleared: %+v", c)
	}
	var me struct {
		Username   string   `json:"username"`
		Email      string   `json:"email"`
		Groups     []string `json:"groups"`
		Roles      []string `json:"roles"`
		AuthMethod string   `json:"auth_method"`
	}
	json.Unmarshal(e.Must(t, 200, "GET", "/api/v1/auth/me", "", nil, func(r *http.Request) { r.AddCookie(session) }), &me)
	if me.Username != "alice" || me.Email != alice.Email || strings.Join(me.Groups, ",") != "devs,ops" ||
		strings.Join(me.Roles, ",") != "user" || me.AuthMethod != identity.MethodSession {
		t.Fatalf("signed in as %+v", me)
	}
	if !e.HasEventOn(t, "sso", "login", audit.ResultSuccess) || !e.HasEventOn(t, "user", "create", audit.ResultSuccess) {
		t.Error("the SSO sign-in or the user's creation is not audited")
	}
	for _, ev := range e.Events(t, audit.Query{ResourceType: "user", Action: "create"}) {
		if ev.Details["source"] != "sso" || ev.Details["provider"] != "dex" {
			t.Errorf("user creation audited as %+v", ev)
		}
	}

	// The callback again, cookie and all: the state is used up.
	before := e.State(t)
	resp = get(t, b, back.String(), func(r *http.Request) { r.AddCookie(flowCookie) })
	if resp.StatusCode != 400 || cookieFrom(resp, e.Authn.CookieName()) != nil {
		t.Fatalf("replayed callback: %d", resp.StatusCode)
	}
	if e.lastSSOFailure(t) != "unknown_state" {
		t.Errorf("replay audited as %q", e.lastSSOFailure(t))
	}
	if e.State(t) != before {
		t.Error("the replay changed identity records")
	}
}

// The CLI's loopback sign-in, played as `berth login` will: a listener on
// 127.0.0.1, the browser sent through Berth and Dex to it, and the code
// exchanged with the verifier.
func TestCLILoopbackSignIn(t *testing.T) {
	dex := startDex(t, 0)
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dex.Issuer))

	verifier := strings.Repeat("v", 20) + "-cli-verifier-0123456789abc"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	e.Secret(verifier)
	got := make(chan url.Values, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			got <- r.URL.Query()
		}
		w.Write([]byte("signed in; you may close this window"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	redirect := "http://" + ln.Addr().String() + "/callback"

	b := e.browser(t)
	q := url.Values{"cli_redirect_uri": {redirect}, "cli_state": {"cli-state-42"}, "cli_code_challenge": {challenge}}
	authURL := e.begin(t, b, "/api/v1/auth/sso/dex/login?"+q.Encode())
	back := dex.SignIn(t, b, authURL.String(), alice.Email, alice.Password)
	resp := get(t, b, back.String())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || loc == nil || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("callback: %d to %v", resp.StatusCode, loc)
	}
	if cookieFrom(resp, e.Authn.CookieName()) != nil {
		t.Error("the CLI's sign-in set a browser session")
	}
	// The browser follows to the CLI's listener.
	if r := get(t, b, loc.String()); r.StatusCode != 200 {
		t.Fatalf("loopback listener: %d", r.StatusCode)
	}
	params := <-got
	code := params.Get("code")
	e.Secret(code)
	if params.Get("state") != "cli-state-42" || len(code) < 32 {
		t.Fatalf("the CLI got %v", params)
	}

	// Wrong verifier, missing verifier: 400; the wrong one uses the code up.
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code})
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": verifier + "x"})
	if e.lastSSOFailure(t) != "verifier_mismatch" {
		t.Errorf("wrong verifier audited as %q", e.lastSSOFailure(t))
	}
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": verifier})

	// A malformed verifier (too short to be one) spends the code too: the
	// first attempt, whatever it holds, is the only one.
	code = e.cliCode(t, dex, redirect, challenge, got)
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": "short"})
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": verifier})
	if e.lastSSOFailure(t) != "unknown_code" {
		t.Errorf("a code tried with a malformed verifier, then the right one: audited as %q", e.lastSSOFailure(t))
	}

	// A fresh sign-in; the right verifier gets the tokens /auth/login gives.
	code = e.cliCode(t, dex, redirect, challenge, got)
	var tok identity.TokenResponse
	json.Unmarshal(e.Must(t, 200, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": verifier}), &tok)
	e.Secret(tok.AccessToken, tok.RefreshToken)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("tokens: %+v", tok)
	}
	var me struct {
		Username   string `json:"username"`
		AuthMethod string `json:"auth_method"`
	}
	json.Unmarshal(e.Must(t, 200, "GET", "/api/v1/auth/me", tok.AccessToken, nil), &me)
	if me.Username != "alice" || me.AuthMethod != identity.MethodSSO {
		t.Fatalf("the CLI's token is %+v", me)
	}
	// Replayed code.
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": verifier})
	if e.lastSSOFailure(t) != "unknown_code" {
		t.Errorf("replayed code audited as %q", e.lastSSOFailure(t))
	}
	// Expired: past CodeTTL on Berth's clock.
	code = e.cliCode(t, dex, redirect, challenge, got)
	e.clock.Advance(CodeTTL + time.Second)
	e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", map[string]string{"code": code, "code_verifier": verifier})
	if e.lastSSOFailure(t) != "code_expired" {
		t.Errorf("expired code audited as %q", e.lastSSOFailure(t))
	}
}

// cliCode runs the loopback sign-in once more and returns the code the
// listener received.
func (e *env) cliCode(t *testing.T, dex *dextest.Dex, redirect, challenge string, got chan url.Values) string {
	t.Helper()
	b := e.browser(t)
	q := url.Values{"cli_redirect_uri": {redirect}, "cli_state": {"s"}, "cli_code_challenge": {challenge}}
	authURL := e.begin(t, b, "/api/v1/auth/sso/dex/login?"+q.Encode())
	back := dex.SignIn(t, b, authURL.String(), alice.Email, alice.Password)
	loc := get(t, b, back.String()).Header.Get("Location")
	get(t, b, loc)
	code := (<-got).Get("code")
	e.Secret(code)
	return code
}

func TestLoginRefusesBadParameters(t *testing.T) {
	dex := startDex(t, 0)
	secure := dexProvider("tls", dex.Issuer)
	secure.RedirectURL = "https://" + berthHost + "/api/v1/auth/sso/tls/callback"
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dex.Issuer), secure)
	// Behind an https callback the binding cookie is Secure.
	resp := get(t, e.browser(t), "http://"+berthHost+"/api/v1/auth/sso/tls/login")
	if c := resp.Cookies(); resp.StatusCode != 302 || len(c) != 1 || !c[0].Secure || !c[0].HttpOnly {
		t.Errorf("https callback: %d, cookies %+v", resp.StatusCode, c)
	}
	e.DB.Update(func(tx *store.Tx) error { // the flow above is not under test
		return flowsTable.Scan(tx, store.ScanOptions{}, func(id string, _ *flow) (bool, error) { return true, flowsTable.Delete(tx, id) })
	})
	ch := strings.Repeat("A", 43)
	for _, path := range []string{
		"/api/v1/auth/sso/nope/login",
		"/api/v1/auth/sso/dex/login?next=//evil.example/x",
		"/api/v1/auth/sso/dex/login?next=/%5Cevil.example",
		"/api/v1/auth/sso/dex/login?next=https://evil.example/",
		"/api/v1/auth/sso/dex/login?next=%09/evil.example",
		"/api/v1/auth/sso/dex/login?next=/%2F%2Fevil.example",
		"/api/v1/auth/sso/dex/login?cli_redirect_uri=https://evil.example/cb&cli_state=s&cli_code_challenge=" + ch,
		"/api/v1/auth/sso/dex/login?cli_redirect_uri=http://127.0.0.1:8000/cb&cli_state=s",
		"/api/v1/auth/sso/dex/login?cli_redirect_uri=http://127.0.0.1:8000/cb&cli_state=s&cli_code_challenge=" + ch + "&cli_code_challenge_method=plain",
		"/api/v1/auth/sso/dex/login?cli_redirect_uri=http://127.0.0.1:8000/cb&cli_state=s&cli_code_challenge=short",
	} {
		status, body, h := e.Do(t, "GET", path, "", nil)
		if status != 400 && !(status == 404 && strings.Contains(path, "/nope/")) {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
		if h.Get("Location") != "" || strings.Contains(h.Get("Set-Cookie"), cookiePrefix) {
			t.Errorf("GET %s redirected or started a flow", path)
		}
	}
	if n := e.flows(t); n != 0 {
		t.Errorf("%d flows stored", n)
	}
}

func TestSafeNextAndLoopback(t *testing.T) {
	for next, ok := range map[string]bool{
		"": true, "/": true, "/clusters/prod?tab=nodes#x": true, "/a//b": true,
		"//evil.example": false, "/\\evil.example": false, "https://evil.example": false, "evil.example": false,
		"/%2f%2fevil.example": false, "/%5Cevil": false, "/\t/evil": false, "/\n": false, "javascript:alert(1)": false,
		"/" + strings.Repeat("a", 1024): false,
		// The tricks a red-team pass tried.
		"//evil.com": false, "/\\evil.com": false, "/%2F%2Fevil.com": false, "/%5C%5Cevil.com": false,
		"javascript:alert(1)//": false, "JavaScript:x": false, "\\/evil.com": false, "/\r\nSet-Cookie: x=1": false,
		"/%0d%0aSet-Cookie:x": true, // stays encoded: one path, no header
		"/\x00":               false, "/\x7f": false, " /x": false, "/x\x0b": false,
	} {
		if got, err := SafeNext(next); (err == nil) != ok || (ok && got == "") {
			t.Errorf("SafeNext(%q) = %q, %v; want ok=%v", next, got, err, ok)
		}
	}
	for uri, ok := range map[string]bool{
		"http://127.0.0.1:8000/callback": true, "http://[::1]:8000/callback": true, "http://localhost:18000": true,
		"http://127.0.0.1:8000":     true,
		"http://127.0.0.1/callback": false, "http://127.0.0.1:0/cb": false, "http://127.0.0.1:65536/cb": false,
		"https://127.0.0.1:8000/cb": false, "http://127.0.0.2:8000/cb": false, "http://localhost.evil.example:8000/": false,
		"http://evil.example:8000/cb": false, "http://user@127.0.0.1:8000/cb": false, "http://127.0.0.1:8000/cb?x=1": false,
		"http://127.0.0.1:8000/cb#f": false, "http://127.0.0.1:08000/cb": false, "http://0x7f.1:8000/": false,
		"http://[::ffff:127.0.0.1]:8000/": false, "http://127.0.0.1:8000\\@evil.example/": false, "//127.0.0.1:8000/": false,
		// The tricks a red-team pass tried.
		"http://127.0.0.1.evil.com:8000/cb": false, "http://127.0.0.1@evil.com:8000/cb": false, "http://127.0.0.1:8000@evil.com/cb": false,
		"http://[::1]:80@x/cb": false, "http://:pw@127.0.0.1:8000/cb": false, "http://127.0.0.1:8000/cb#": false, "http://127.0.0.1:8000/cb?": false,
		"http://localhost.:8000/cb": false, "http://LOCALHOST:8000/cb": false, "HTTP://127.0.0.1:8000/cb": true, /* written http:// */
		"http://[::1%25lo]:8000/cb": false, "http://[fe80::1%25eth0]:8000/cb": false, "http://127.0.0.1:0": false,
		"http://127.1:8000/cb": false, "http://2130706433:8000/cb": false, "http://0.0.0.0:8000/cb": false,
		"http://127.0.0.1:8000/cb%23x": true, "http://127.0.0.1:8000/%2e%2e/cb": true, // the same listener, whatever the path
		"http://127.0.0.1:+8000/cb": false, "http://127.0.0.1:8000 /cb": false, "http://127.0.0.1:8000/c\tb": false,
		"javascript://127.0.0.1:8000/%0aalert(1)": false, "http:/127.0.0.1:8000/cb": false, "http:127.0.0.1:8000": false,
	} {
		if _, err := loopbackURI(uri); (err == nil) != ok {
			t.Errorf("loopbackURI(%q): %v; want ok=%v", uri, err, ok)
		}
	}
}

// Each way a callback can be forged or misused is refused, audited with
// its reason, and signs no one in.
func TestCallbackRefusals(t *testing.T) {
	dex := startDex(t, 2*time.Minute)
	strict := dexProvider("strict", dex.Issuer)
	strict.AllowedDomains = []string{"example.com"}
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dex.Issuer), dexProvider("dex2", dex.Issuer), strict)

	refused := func(t *testing.T, b *http.Client, callbackURL string, status int, reason string) {
		t.Helper()
		before := e.sessions(t)
		resp := get(t, b, callbackURL)
		if resp.StatusCode != status || cookieFrom(resp, e.Authn.CookieName()) != nil || resp.Header.Get("Location") != "" {
			t.Fatalf("got %d (Location %q), want %d and no session", resp.StatusCode, resp.Header.Get("Location"), status)
		}
		if got := e.lastSSOFailure(t); got != reason {
			t.Fatalf("audited as %q, want %q", got, reason)
		}
		if e.sessions(t) != before {
			t.Fatal("a session was started")
		}
	}
	// tamper changes the authorization request the browser takes to Dex,
	// as an attacker who hands a victim a crafted link would.
	run := func(t *testing.T, provider string, tamper func(url.Values), user dextest.User) (*http.Client, *url.URL) {
		b := e.browser(t)
		authURL := e.begin(t, b, "/api/v1/auth/sso/"+provider+"/login")
		q := authURL.Query()
		if tamper != nil {
			tamper(q)
		}
		authURL.RawQuery = q.Encode()
		back := dex.SignIn(t, b, authURL.String(), user.Email, user.Password)
		e.Secret(back.Query().Get("code"))
		return b, back
	}

	t.Run("bad nonce", func(t *testing.T) {
		b, back := run(t, "dex", func(q url.Values) { q.Set("nonce", "attacker-chosen-nonce") }, alice)
		refused(t, b, back.String(), 401, "nonce_mismatch")
	})
	t.Run("missing PKCE", func(t *testing.T) {
		// The code is issued without a challenge; Berth still sends its
		// verifier, and the provider refuses the exchange.
		b, back := run(t, "dex", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, alice)
		refused(t, b, back.String(), 401, "exchange_failed")
	})
	t.Run("another challenge", func(t *testing.T) {
		b, back := run(t, "dex", func(q url.Values) { q.Set("code_challenge", strings.Repeat("B", 43)) }, alice)
		refused(t, b, back.String(), 401, "exchange_failed")
	})
	t.Run("another browser", func(t *testing.T) {
		// Login CSRF: the attacker's own callback URL, opened in the
		// victim's browser, which lacks the attacker's binding cookie.
		attacker, back := run(t, "dex", nil, alice)
		victim := e.browser(t)
		refused(t, victim, back.String(), 400, "browser_mismatch")
		// The stranger did not spoil the sign-in for its own browser.
		if resp := get(t, attacker, back.String()); resp.StatusCode != 302 || cookieFrom(resp, e.Authn.CookieName()) == nil {
			t.Fatalf("the rightful browser: %d", resp.StatusCode)
		}
	})
	t.Run("another provider's callback", func(t *testing.T) {
		b, back := run(t, "dex", nil, alice)
		mixed := strings.Replace(back.String(), "/sso/dex/callback", "/sso/dex2/callback", 1)
		refused(t, b, mixed, 400, "provider_mismatch")
	})
	t.Run("unknown state", func(t *testing.T) {
		b := e.browser(t)
		refused(t, b, callback("dex")+"?code=x&state=made-up-state", 400, "unknown_state")
	})
	t.Run("provider error", func(t *testing.T) {
		b := e.browser(t)
		authURL := e.begin(t, b, "/api/v1/auth/sso/dex/login")
		state := authURL.Query().Get("state")
		refused(t, b, callback("dex")+"?error=access_denied&state="+url.QueryEscape(state), 401, "idp_error")
	})
	t.Run("unverified email with allowed_domains", func(t *testing.T) {
		b, back := run(t, "strict", nil, unverified)
		refused(t, b, back.String(), 403, "domain_not_allowed")
	})
	t.Run("expired ID token", func(t *testing.T) {
		b, back := run(t, "dex", nil, alice)
		// Dex signs ID tokens good for 2 minutes; Berth's clock is 3
		// minutes ahead by the time the browser comes back (the flow,
		// 10 minutes, still stands). Last: the clock stays ahead.
		e.clock.Advance(3 * time.Minute)
		refused(t, b, back.String(), 401, "id_token_expired")
	})
}

// A configured issuer that is not the one the provider's discovery
// document states is refused before any browser is sent there.
func TestWrongIssuerRefused(t *testing.T) {
	dex := startDex(t, 0)
	// The same server reached by another name: its documents say
	// 127.0.0.1, so every token would carry an issuer Berth does not
	// expect.
	wrong := strings.Replace(dex.Issuer, "127.0.0.1", "localhost", 1)
	e := serve(t, ratelimit.Options{}, dexProvider("dex", wrong))
	status, body, h := e.Do(t, "GET", "/api/v1/auth/sso/dex/login", "", nil)
	if status != 503 || h.Get("Location") != "" || h.Get("Retry-After") == "" {
		t.Fatalf("login: %d %s", status, body)
	}
	if got := e.lastSSOFailure(t); got != "issuer_mismatch" {
		t.Fatalf("audited as %q", got)
	}
}

// An ID token Dex signed for another client — a real token, by the right
// issuer — is refused for its audience, as are tokens altered after
// signing or checked against another issuer.
func TestIDTokenChecks(t *testing.T) {
	dex := startDex(t, 0)
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dex.Issuer))
	ctx := context.Background()
	other := &oauth2.Config{ClientID: "other", ClientSecret: "other-client-secret-01", RedirectURL: "http://127.0.0.1:9/cb",
		Scopes: []string{"openid", "email", "profile"}}
	op, err := oidc.NewProvider(ctx, dex.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	other.Endpoint = op.Endpoint()
	verifier := oauth2.GenerateVerifier()
	b := e.browser(t)
	back := dex.SignIn(t, b, other.AuthCodeURL("st", oidc.Nonce("n-1"), oauth2.S256ChallengeOption(verifier)), alice.Email, alice.Password)
	tok, err := other.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw := tok.Extra("id_token").(string)
	e.Secret(raw)

	p, _ := e.svc.provider("dex")
	berthOP, _, err := e.svc.discover(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, reason := e.svc.verifyIDToken(ctx, p, berthOP, raw, "n-1"); reason != "wrong_audience" {
		t.Errorf("another client's token: reason %q", reason)
	}
	// The same token as if Berth were that client: it passes, which shows
	// the refusal above is the audience's.
	as := &provider{Provider: p.Provider}
	as.ClientID = "other"
	if _, reason := e.svc.verifyIDToken(ctx, as, berthOP, raw, "n-1"); reason != "" {
		t.Fatalf("the token for its own client: reason %q", reason)
	}
	if _, reason := e.svc.verifyIDToken(ctx, as, berthOP, raw, "n-2"); reason != "nonce_mismatch" {
		t.Errorf("another nonce: reason %q", reason)
	}
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"alice"`, `"admin"`, 1))) + "." + parts[2]
	if _, reason := e.svc.verifyIDToken(ctx, as, berthOP, forged, "n-1"); reason == "" {
		t.Error("a token altered after signing passed")
	}
	// A provider configured as another issuer that shares Dex's keys: the
	// signature holds, the issuer does not.
	elsewhere := &provider{Provider: as.Provider}
	elsewhere.Issuer = "https://elsewhere.example"
	elsewhereOP := (&oidc.ProviderConfig{IssuerURL: elsewhere.Issuer, JWKSURL: dex.Issuer + "/keys",
		AuthURL: dex.Issuer + "/auth", TokenURL: dex.Issuer + "/token", Algorithms: []string{"RS256"}}).NewProvider(ctx)
	if _, reason := e.svc.verifyIDToken(ctx, elsewhere, elsewhereOP, raw, "n-1"); reason != "wrong_issuer" {
		t.Errorf("a token from another issuer: reason %q", reason)
	}
}

// A second provider asserting the username of a user another provider
// signed in is refused, even with link_existing and create_users.
func TestSecondProviderCannotTakeOver(t *testing.T) {
	dexA := startDex(t, 0)
	mallory := dextest.User{Email: "mallory@evil.example", Password: "mallory-password-1", Username: "alice",
		PreferredUsername: "alice", UserID: "mallory-id", Groups: []string{"admins"}}
	dexB := startDex(t, 0, mallory)
	b2 := dexProvider("dex2", dexB.Issuer)
	b2.Policy.LinkExisting = true
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dexA.Issuer), b2)
	e.Secret(mallory.Password)

	b := e.browser(t)
	back := dexA.SignIn(t, b, e.begin(t, b, "/api/v1/auth/sso/dex/login").String(), alice.Email, alice.Password)
	if resp := get(t, b, back.String()); resp.StatusCode != 302 {
		t.Fatalf("alice: %d", resp.StatusCode)
	}
	m := e.browser(t)
	back = dexB.SignIn(t, m, e.begin(t, m, "/api/v1/auth/sso/dex2/login").String(), mallory.Email, mallory.Password)
	resp := get(t, m, back.String())
	if resp.StatusCode != 403 || cookieFrom(resp, e.Authn.CookieName()) != nil {
		t.Fatalf("mallory as alice: %d", resp.StatusCode)
	}
	if got := e.lastSSOFailure(t); got != "username_taken" {
		t.Errorf("audited as %q", got)
	}
	u, err := e.IDs.UserByName("alice")
	if err != nil || strings.Join(u.Groups, ",") != "devs,ops" {
		t.Errorf("alice after the attempt: %+v, %v", u, err)
	}
}

// The code exchange is limited per client address like password sign-ins.
func TestTokenEndpointRateLimited(t *testing.T) {
	unlimited := ratelimit.Limit{}
	e := serve(t, ratelimit.Options{Scopes: map[string]ratelimit.Limit{
		ratelimit.ScopeAuth: ratelimit.PerPeriod(3, time.Hour, 3), ratelimit.ScopeJoin: unlimited, ratelimit.ScopeAPI: unlimited,
		ratelimit.ScopeProxy: unlimited, ratelimit.ScopeAPIUser: unlimited, ratelimit.ScopeProxyUser: unlimited,
	}})
	body := map[string]string{"code": "guess", "code_verifier": strings.Repeat("v", 43)}
	for i := 0; i < 3; i++ {
		e.Must(t, 400, "POST", "/api/v1/auth/sso/token", "", body)
	}
	status, _, h := e.Do(t, "POST", "/api/v1/auth/sso/token", "", body)
	if status != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("fourth guess: %d", status)
	}
}

// Unauthenticated sign-in starts are what a crowd of addresses, each
// within its own rate limit, could use to fill the store with flows: the
// flows started within FlowTTL are bounded as a whole, and past the bound
// a start is 503 with Retry-After, stores nothing and sets no cookie.
func TestLoginStartsBounded(t *testing.T) {
	dex := startDex(t, time.Hour) // its ID tokens outlive the clock's jump below
	e := serveWith(t, ratelimit.Options{}, func(o *Options) { o.MaxFlows = 3 }, dexProvider("dex", dex.Issuer))
	for i := 0; i < 3; i++ {
		e.begin(t, e.browser(t), "/api/v1/auth/sso/dex/login")
	}
	status, body, h := e.Do(t, "GET", "/api/v1/auth/sso/dex/login", "", nil)
	if status != 503 || h.Get("Retry-After") == "" || h.Get("Location") != "" || strings.Contains(h.Get("Set-Cookie"), cookiePrefix) {
		t.Fatalf("a start past the bound: %d %s (Location %q, Set-Cookie %q)", status, body, h.Get("Location"), h.Get("Set-Cookie"))
	}
	if n := e.flows(t); n != 3 {
		t.Fatalf("%d flows stored, want 3", n)
	}
	// Once the flows started then have expired, sign-ins start again.
	e.clock.Advance(FlowTTL)
	b := e.browser(t)
	back := dex.SignIn(t, b, e.begin(t, b, "/api/v1/auth/sso/dex/login").String(), alice.Email, alice.Password)
	if resp := get(t, b, back.String()); resp.StatusCode != 302 || cookieFrom(resp, e.Authn.CookieName()) == nil {
		t.Fatalf("a sign-in after the window: %d", resp.StatusCode)
	}
}

// Each started sign-in leaves a binding cookie for FlowTTL. A page that
// sends a victim's browser through …/login again and again must not pile
// them up until the browser's requests to the SSO paths are too large to
// serve (or its cookie jar evicts the session): a browser holds at most
// maxBrowserFlows, and the newest sign-in still completes.
func TestBindingCookiesPerBrowserBounded(t *testing.T) {
	dex := startDex(t, 0)
	e := serve(t, ratelimit.Options{}, dexProvider("dex", dex.Issuer))
	b := e.browser(t)
	var last *url.URL
	for i := 0; i < 3*maxBrowserFlows; i++ {
		last = e.begin(t, b, "/api/v1/auth/sso/dex/login")
		held := 0
		for _, c := range b.Jar.Cookies(&url.URL{Scheme: "http", Host: berthHost, Path: CookiePath}) {
			if strings.HasPrefix(c.Name, cookiePrefix) {
				held++
			}
		}
		if held > maxBrowserFlows {
			t.Fatalf("after %d starts the browser holds %d binding cookies", i+1, held)
		}
	}
	back := dex.SignIn(t, b, last.String(), alice.Email, alice.Password)
	if resp := get(t, b, back.String()); resp.StatusCode != 302 || cookieFrom(resp, e.Authn.CookieName()) == nil {
		t.Fatalf("the newest sign-in: %d", resp.StatusCode)
	}
}

// With the email as the username claim, an address the provider has not
// verified must not name anyone: anybody could call themselves
// bob@example.com and be created as, or linked to, Berth's user of that
// name. A verified address still signs in.
func TestUnverifiedEmailIsNoUsername(t *testing.T) {
	dex := startDex(t, 0)
	byEmail := dexProvider("dex", dex.Issuer)
	byEmail.UsernameClaim = "email"
	byEmail.Policy.LinkExisting = true
	e := serve(t, ratelimit.Options{}, byEmail)
	e.Secret(unverified.Password)
	if _, err := e.IDs.CreateUser(context.Background(), &identity.Principal{UserID: "system", Username: "system", Permissions: []string{identity.PermAll}},
		identity.NewUser{Username: unverified.Email, Password: "eve-owner-password-1"}, identity.Meta{}); err != nil {
		t.Fatal(err)
	}
	e.Secret("eve-owner-password-1")

	b := e.browser(t)
	back := dex.SignIn(t, b, e.begin(t, b, "/api/v1/auth/sso/dex/login").String(), unverified.Email, unverified.Password)
	resp := get(t, b, back.String())
	if resp.StatusCode != 403 || cookieFrom(resp, e.Authn.CookieName()) != nil {
		t.Fatalf("an unverified email as the username: %d", resp.StatusCode)
	}
	if got := e.lastSSOFailure(t); got != "unverified_username" {
		t.Errorf("audited as %q", got)
	}
	b = e.browser(t)
	back = dex.SignIn(t, b, e.begin(t, b, "/api/v1/auth/sso/dex/login").String(), alice.Email, alice.Password)
	if resp := get(t, b, back.String()); resp.StatusCode != 302 || cookieFrom(resp, e.Authn.CookieName()) == nil {
		t.Fatalf("a verified email as the username: %d", resp.StatusCode)
	}
	if _, err := e.IDs.UserByName(alice.Email); err != nil {
		t.Errorf("alice by her email: %v", err)
	}
}

// Cookie tossing: a host that shares Berth's parent domain (or anyone on
// the network, over plain http) can plant a cookie in a victim's browser
// for Berth's host. With the attacker's own state, code and binding cookie
// planted so, the victim's browser would finish the attacker's sign-in —
// login CSRF. Behind an https callback the binding cookie is a __Host-
// cookie, which browsers accept only from Berth's own host over https, so
// a planted cookie under the plain name binds nothing.
func TestTossedBindingCookieBindsNothing(t *testing.T) {
	const tlsCallback = "https://" + berthHost + "/api/v1/auth/sso/tls/callback"
	dex := dextest.Start(t, dextest.Options{Users: []dextest.User{alice}, Clients: []dextest.Client{
		{ID: "berth", Secret: clientSecret, RedirectURIs: []string{tlsCallback}}}})
	secure := dexProvider("tls", dex.Issuer)
	secure.RedirectURL = tlsCallback
	e := serve(t, ratelimit.Options{}, secure)

	attacker := e.browser(t)
	resp := get(t, attacker, "https://"+berthHost+"/api/v1/auth/sso/tls/login")
	var bind *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.Contains(c.Name, cookiePrefix) {
			bind = c
		}
	}
	if resp.StatusCode != 302 || bind == nil {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if !strings.HasPrefix(bind.Name, "__Host-") || !bind.Secure || bind.Path != "/" || bind.Domain != "" || !bind.HttpOnly {
		t.Errorf("the binding cookie behind https: %+v; want __Host-, Secure, Path=/, no Domain", bind)
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	back := dex.SignIn(t, attacker, authURL.String(), alice.Email, alice.Password)
	e.Secret(back.Query().Get("code"), bind.Value)

	// The victim's browser carries what a sibling host could plant: the
	// cookie's value under its name without the prefix browsers guard.
	tossed := strings.TrimPrefix(bind.Name, "__Host-")
	victim := e.browser(t)
	resp = get(t, victim, back.String(), func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tossed, Value: bind.Value}) })
	if resp.StatusCode != 400 || cookieFrom(resp, e.Authn.CookieName()) != nil {
		t.Fatalf("the victim with a tossed cookie: %d", resp.StatusCode)
	}
	if got := e.lastSSOFailure(t); got != "browser_mismatch" {
		t.Errorf("audited as %q", got)
	}
	// The attacker's own browser, holding the real cookie, still can.
	if resp := get(t, attacker, back.String()); resp.StatusCode != 302 || cookieFrom(resp, e.Authn.CookieName()) == nil {
		t.Fatalf("the rightful browser: %d", resp.StatusCode)
	}
}
