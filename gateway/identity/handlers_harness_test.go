package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// The handler tests run identity's endpoints in process: an in-memory
// store, the identity service and its handlers behind the real
// authn guard, served by fasthttp on an in-memory listener. The settings
// come from the configuration's defaults, as the gateway reads them; the
// routes are identity's lines of the gateway's route table
// (gateway/routes.go), whose own tests check the table itself.

// fakeClock drives identity, rate limits and audit; nothing here sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const adminPassword = "admin-Password-0001"

// authGW is identity's endpoints, running. Every secret a test handles is
// registered with secret(); when the test ends the logs, the audit log and
// a full dump of the store are searched for each of them.
type authGW struct {
	clock  *fakeClock
	db     *store.DB
	audit  *audit.Log
	logs   *syncBuffer
	client *http.Client
	http   string // base URL

	mu      sync.Mutex
	secrets []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAuth serves identity's endpoints with the configuration's defaults
// and env's BERTH_* settings on top, with the rate limits and the lockout
// off unless env turns them on.
func startAuth(t *testing.T, env map[string]string) *authGW {
	t.Helper()
	vars := map[string]string{
		"BERTH_ADMIN_PASSWORD":                  adminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS":       "0",
		"BERTH_RATE_LIMITS_API_REQUESTS":        "0",
		"BERTH_RATE_LIMITS_API_USER_REQUESTS":   "0",
		"BERTH_RATE_LIMITS_PROXY_USER_REQUESTS": "0",
		"BERTH_AUTH_LOCKOUT_MAX_FAILURES":       "0",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now().UTC()}
	ag := &authGW{clock: clock, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(ag.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ag.db, err = store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	ag.audit = audit.New(ag.db, audit.Options{Retention: cfg.Audit.Retention(), MaxEvents: cfg.Audit.MaxEvents, Now: clock.Now, Logger: log})
	if _, err := identity.EnsureAdmin(ag.db, cfg.AdminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	var clients []identity.OAuthClient
	for _, c := range cfg.Auth.OAuth.ResolvedClients() {
		clients = append(clients, identity.OAuthClient{ID: c.ID, SecretSHA256: c.SecretSHA256})
	}
	svc, err := identity.NewService(identity.Options{
		DB: ag.db, Box: box, Audit: ag.audit, Now: clock.Now, Logger: log,
		Settings: identity.Settings{
			Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience,
			AccessTokenTTL: cfg.Auth.AccessTokenTTL.D(), RefreshTokenTTL: cfg.Auth.RefreshTokenTTL.D(),
			SessionTTL: cfg.Auth.Session.TTL.D(), AccessKeyTokenTTL: cfg.Auth.AccessKeyTokenTTL.D(),
			Leeway: cfg.Auth.Leeway.D(), MaxAccessKeys: cfg.Auth.MaxAccessKeys, MaxAPIKeys: cfg.Auth.MaxAPIKeys,
			MinPasswordLength: cfg.Auth.MinPasswordLength,
			Lockout: ratelimit.BackoffOptions{
				Threshold: cfg.Auth.Lockout.MaxFailures, Base: cfg.Auth.Lockout.Duration.D(),
				Max: cfg.Auth.Lockout.MaxDuration.D(), MaxKeys: cfg.RateLimits.MaxKeys,
			},
			LoginHistoryRetention: cfg.Audit.Retention(),
			OAuthClients:          clients,
			SigningKeyRotation:    cfg.Auth.SigningKeyRotation.D(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	limit := func(l config.RateLimit) ratelimit.Limit { return ratelimit.PerPeriod(l.Requests, l.Per.D(), l.Burst) }
	limiter := ratelimit.New(ratelimit.Options{MaxKeys: cfg.RateLimits.MaxKeys, Now: clock.Now, Scopes: map[string]ratelimit.Limit{
		ratelimit.ScopeAuth: limit(cfg.RateLimits.Auth), ratelimit.ScopeAPI: limit(cfg.RateLimits.API),
		ratelimit.ScopeAPIUser: limit(cfg.RateLimits.APIUser),
	}})
	auth, err := authn.New(authn.Options{Service: svc, Limiter: limiter, Trusted: &ratelimit.Trusted{},
		CookieName: cfg.Auth.Session.CookieName, AllowedOrigins: cfg.Auth.CORS.AllowedOrigins, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New()
	if err := auth.Mount(r, routes(identity.NewHandlers(svc, auth, ag.audit))); err != nil {
		t.Fatal(err)
	}

	// The request id and the access log, as the gateway adds them: the
	// secret scan covers the access log too.
	handler := middleware.Chain(r.Handler, middleware.RequestID(),
		middleware.AccessLog(log, func(ctx *fasthttp.RequestCtx) string { return auth.ClientIP(ctx).String() }))
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: handler}
	go srv.Serve(ln)
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	ag.client = &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.DialWithLocalAddr(peer) },
	}}
	ag.http = "http://berth.test"
	ag.secret(adminPassword)
	t.Cleanup(func() {
		ag.checkNoSecrets(t)
		srv.Shutdown()
		ag.db.Close()
	})
	return ag
}

// routes are identity's lines of the gateway's route table.
func routes(h *identity.Handlers) []authn.Route {
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		public, signedIn    = authn.Public, authn.SignedIn
		auth                = ratelimit.ScopeAuth
		users, settings     = identity.PermUsersAdmin, identity.PermSettingsAdmin
	)
	return []authn.Route{
		{Method: post, Path: "/api/v1/auth/login", Permission: public, AddrScope: auth, Handler: h.Login},
		{Method: post, Path: "/api/v1/auth/refresh", Permission: public, AddrScope: auth, Handler: h.Refresh},
		{Method: post, Path: "/api/v1/auth/token", Permission: public, AddrScope: auth, Handler: h.Token},
		{Method: get, Path: "/api/v1/cube/key/token", Permission: public, AddrScope: auth, Handler: h.CubeToken},
		{Method: post, Path: "/oauth/token", Permission: public, AddrScope: auth, Handler: h.OAuthToken},
		{Method: post, Path: "/api/v1/auth/logout", Permission: signedIn, Handler: h.Logout},
		{Method: get, Path: "/api/v1/auth/me", Permission: signedIn, Handler: h.Me},
		{Method: put, Path: "/api/v1/auth/me/password", Permission: signedIn, AddrScope: auth, Handler: h.ChangePassword},
		{Method: get, Path: "/api/v1/auth/me/login-history", Permission: signedIn, Handler: h.MyLoginHistory},
		{Method: get, Path: "/api/v1/auth/sessions", Permission: signedIn, Handler: h.ListSessions},
		{Method: del, Path: "/api/v1/auth/sessions/{id}", Permission: signedIn, Handler: h.RevokeSession},
		{Method: post, Path: "/api/v1/auth/api-keys", Permission: signedIn, Handler: h.CreateAPIKey},
		{Method: get, Path: "/api/v1/auth/api-keys", Permission: signedIn, Handler: h.ListAPIKeys},
		{Method: del, Path: "/api/v1/auth/api-keys/{id}", Permission: signedIn, Handler: h.RevokeAPIKey},
		{Method: post, Path: "/api/v1/auth/access-keys", Permission: signedIn, Handler: h.CreateAccessKey},
		{Method: get, Path: "/api/v1/auth/access-keys", Permission: signedIn, Handler: h.ListAccessKeys},
		{Method: del, Path: "/api/v1/auth/access-keys/{id}", Permission: signedIn, Handler: h.DeleteAccessKey},
		{Method: get, Path: "/api/v1/activities", Permission: signedIn, Handler: h.Activities},
		{Method: get, Path: "/api/v1/users", Permission: users, Handler: h.ListUsers},
		{Method: post, Path: "/api/v1/users", Permission: users, Handler: h.CreateUser},
		{Method: get, Path: "/api/v1/users/{id}", Permission: users, Handler: h.GetUser},
		{Method: put, Path: "/api/v1/users/{id}", Permission: users, Handler: h.UpdateUser},
		{Method: del, Path: "/api/v1/users/{id}", Permission: users, Handler: h.DeleteUser},
		{Method: post, Path: "/api/v1/users/{id}/password", Permission: users, Handler: h.ResetPassword},
		{Method: get, Path: "/api/v1/users/{id}/login-history", Permission: users, Handler: h.UserLoginHistory},
		{Method: get, Path: "/api/v1/roles", Permission: users, Handler: h.ListRoles},
		{Method: post, Path: "/api/v1/roles", Permission: users, Handler: h.CreateRole},
		{Method: get, Path: "/api/v1/roles/{name}", Permission: users, Handler: h.GetRole},
		{Method: put, Path: "/api/v1/roles/{name}", Permission: users, Handler: h.UpdateRole},
		{Method: del, Path: "/api/v1/roles/{name}", Permission: users, Handler: h.DeleteRole},
		{Method: get, Path: "/api/v1/permissions", Permission: users, Handler: h.ListPermissions},
		{Method: get, Path: "/api/v1/audit", Permission: identity.PermAuditRead, Handler: h.Audit},
		{Method: get, Path: "/api/v1/signing-keys", Permission: settings, Handler: h.ListSigningKeys},
		{Method: post, Path: "/api/v1/signing-keys/rotate", Permission: settings, Handler: h.RotateSigningKey},
		{Method: get, Path: "/.well-known/jwks.json", Permission: public, Handler: h.JWKS},
	}
}

func (ag *authGW) secret(s ...string) {
	ag.mu.Lock()
	defer ag.mu.Unlock()
	for _, v := range s {
		if len(v) >= 8 {
			ag.secrets = append(ag.secrets, v)
		}
	}
}

// checkNoSecrets searches logs, audit events, login history and a full
// backup of the store for every registered secret.
func (ag *authGW) checkNoSecrets(t *testing.T) {
	var dump bytes.Buffer
	if err := ag.db.Backup(&dump); err != nil {
		t.Errorf("backup for the secret scan: %v", err)
	}
	events, _, err := ag.audit.Find(audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Errorf("read audit: %v", err)
	}
	auditJSON, _ := json.Marshal(events)
	logs := ag.logs.String()
	ag.mu.Lock()
	defer ag.mu.Unlock()
	for _, s := range ag.secrets {
		for where, text := range map[string]string{"logs": logs, "audit": string(auditJSON), "store": dump.String()} {
			if strings.Contains(text, s) {
				t.Errorf("secret %.12q… found in %s", s, where)
			}
		}
	}
}

// opt changes a request before it is sent.
type opt func(*http.Request)

func bearer(tok string) opt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func header(k, v string) opt { return func(r *http.Request) { r.Header.Set(k, v) } }

// raw is a request body sent as is with a JSON content type (override it
// with header).
type raw string

// call sends a request. body is nil, raw, url.Values (form-encoded) or any
// value to encode as JSON.
func (ag *authGW) call(t *testing.T, method, path string, body any, opts ...opt) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case raw:
		rd, ct = strings.NewReader(string(b)), "application/json"
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequest(method, ag.http+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := ag.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

// must is call that fails the test unless the status is want.
func (ag *authGW) must(t *testing.T, want int, method, path string, body any, opts ...opt) []byte {
	t.Helper()
	status, data, _ := ag.call(t, method, path, body, opts...)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, data)
	}
	return data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, data, err)
	}
	return v
}

type apiError struct {
	Code      int    `json:"code"`
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func decodeError(t *testing.T, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	return e
}

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func (ag *authGW) login(t *testing.T, username, password string) tokenPair {
	t.Helper()
	tp := decode[tokenPair](t, ag.must(t, 200, "POST", "/api/v1/auth/login", map[string]any{"username": username, "password": password}))
	if tp.AccessToken == "" || tp.RefreshToken == "" || tp.TokenType != "Bearer" {
		t.Fatalf("login answer: %+v", tp)
	}
	ag.secret(tp.AccessToken, tp.RefreshToken)
	return tp
}

type userOut struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
	Status   string   `json:"status"`
}

// createUser makes a user through the API with the admin token.
func (ag *authGW) createUser(t *testing.T, admin, username, password string, roles ...string) userOut {
	t.Helper()
	ag.secret(password)
	body := map[string]any{"username": username, "password": password}
	if len(roles) > 0 {
		body["roles"] = roles
	}
	return decode[userOut](t, ag.must(t, 201, "POST", "/api/v1/users", body, bearer(admin)))
}

// state is every identity record in the store, for "changed nothing"
// checks, read by the tables' stored names. Audit and login history are
// left out: refusals are meant to be recorded there.
func (ag *authGW) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := ag.db.View(func(tx *store.Tx) error {
		for _, name := range []string{"users", "roles", "sessions", "refresh_tokens", "api_keys", "access_keys"} {
			tbl := store.NewTable[json.RawMessage](name)
			err := tbl.Scan(tx, store.ScanOptions{}, func(id string, v *json.RawMessage) (bool, error) {
				data, _ := json.Marshal(v)
				b.WriteString(name + "/" + id + " " + string(data) + "\n")
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// auditEvents returns the audit events matching q (newest first).
func (ag *authGW) auditEvents(t *testing.T, q audit.Query) []audit.Event {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = audit.MaxLimit
	}
	evs, _, err := ag.audit.Find(q)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// hasEvent reports whether an event with this resource type, action and
// result exists.
func (ag *authGW) hasEvent(t *testing.T, resourceType, action, result string) bool {
	t.Helper()
	for _, e := range ag.auditEvents(t, audit.Query{ResourceType: resourceType, Action: action}) {
		if e.Result == result {
			return true
		}
	}
	return false
}
