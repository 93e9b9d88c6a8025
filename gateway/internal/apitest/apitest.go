// Package apitest serves Berth API routes in-process for handler tests: an
// identity service and an audit log on an in-memory store, the real
// authenticator and route guard, and fasthttp over an in-memory listener
// (fasthttputil). A feature package tests its handlers as the gateway
// mounts them, without starting a gateway or opening a socket.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/syncbuf"
)

// Env is what handlers under test stand on. Its fields are for building
// the services under test on the same store, clock and log.
type Env struct {
	DB    *store.DB
	Box   *secretbox.Box
	Audit *audit.Log
	IDs   *identity.Service
	Authn *authn.Authenticator
	Log   *slog.Logger
	// Now is the clock of every service here: the real one.
	Now func() time.Time

	logs    syncbuf.Buffer
	client  *http.Client
	mu      sync.Mutex
	secrets []string
}

// Options change what NewWith builds; each zero field keeps New's choice.
type Options struct {
	// Now is the clock of every service; the real one when nil.
	Now func() time.Time
	// Settings are identity's; New's short TTLs when zero.
	Settings identity.Settings
	// Audit configures the audit log; its Now and Logger are filled in.
	Audit audit.Options
	// Limits configures the rate limiter; every scope is unlimited when
	// Limits.Scopes is nil. Its Now is filled in.
	Limits ratelimit.Options
	// Authn configures the authenticator; its Service, Limiter and Logger
	// are filled in.
	Authn authn.Options
	// AdminPassword, when set, creates the admin as the gateway's first
	// start does (identity.EnsureAdmin) and registers it as a secret.
	AdminPassword string
}

// New makes an Env whose store closes when the test ends, after the scan
// for registered secrets (Secret).
func New(t testing.TB) *Env {
	t.Helper()
	return NewWith(t, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, o Options) *Env {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{DB: db, Box: box, Now: o.Now}
	if e.Now == nil {
		e.Now = time.Now
	}
	e.Log = slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Audit.Now, o.Audit.Logger = o.Now, e.Log
	e.Audit = audit.New(db, o.Audit)
	if o.AdminPassword != "" {
		if _, err := identity.EnsureAdmin(db, o.AdminPassword, io.Discard); err != nil {
			t.Fatal(err)
		}
		e.Secret(o.AdminPassword)
	}
	if o.Settings.Issuer == "" {
		o.Settings = identity.Settings{
			Issuer: "berth", Audience: "berth",
			AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour,
			MinPasswordLength: 12,
		}
	}
	e.IDs, err = identity.NewService(identity.Options{DB: db, Box: box, Audit: e.Audit, Now: o.Now, Logger: e.Log, Settings: o.Settings})
	if err != nil {
		t.Fatal(err)
	}
	if o.Limits.Scopes == nil {
		// No limits unless asked for.
		unlimited := ratelimit.Limit{}
		o.Limits.Scopes = map[string]ratelimit.Limit{
			ratelimit.ScopeAuth: unlimited, ratelimit.ScopeJoin: unlimited, ratelimit.ScopeAPI: unlimited,
			ratelimit.ScopeProxy: unlimited, ratelimit.ScopeAPIUser: unlimited, ratelimit.ScopeProxyUser: unlimited,
		}
	}
	o.Limits.Now = o.Now
	o.Authn.Service, o.Authn.Limiter, o.Authn.Logger = e.IDs, ratelimit.New(o.Limits), e.Log
	e.Authn, err = authn.New(o.Authn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.checkNoSecrets(t)
		db.Close()
	})
	return e
}

// system creates users on the test's behalf.
var system = &identity.Principal{UserID: "system", Username: "system", Permissions: []string{identity.PermAll}}

// User creates a user with roles (RoleUser when none) and returns it with
// an access token from a password sign-in.
func (e *Env) User(t testing.TB, username string, roles ...string) (*identity.User, string) {
	t.Helper()
	ctx := context.Background()
	u, err := e.IDs.CreateUser(ctx, system, identity.NewUser{Username: username, Password: username + "-password-123", Roles: roles}, identity.Meta{})
	if err != nil {
		t.Fatalf("create user %s: %v", username, err)
	}
	tok, err := e.IDs.IssueTokens(ctx, u, identity.MethodPassword, "", identity.Meta{})
	if err != nil {
		t.Fatalf("sign in %s: %v", username, err)
	}
	return u, tok.AccessToken
}

// Serve mounts routes as the gateway does (authn.Mount: guard, then the
// handler through httpapi.Serve; the request id and the access log around
// them, so the secret scan covers the access log) and serves them until
// the test ends. Requests come from 127.0.0.1.
func (e *Env) Serve(t testing.TB, routes []authn.Route) {
	t.Helper()
	r := router.New()
	if err := e.Authn.Mount(r, routes); err != nil {
		t.Fatal(err)
	}
	handler := middleware.Chain(r.Handler, middleware.RequestID(),
		middleware.AccessLog(e.Log, func(ctx *fasthttp.RequestCtx) string { return e.Authn.ClientIP(ctx).String() }))
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: handler, ConnState: e.Authn.ConnState}
	go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.DialWithLocalAddr(peer) }}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		// Idle keep-alive connections first, or Shutdown waits for them.
		tr.CloseIdleConnections()
		_ = srv.Shutdown()
	})
}

// Transport reaches the routes Serve serves, whatever the request's host:
// for tests whose client also talks to real servers (an OpenID provider),
// which route only Berth's requests here.
func (e *Env) Transport() http.RoundTripper { return e.client.Transport }

// Do sends one request with token as its bearer credential (none when
// ""), its body as NewRequest encodes it. edits change the request before
// it is sent. It returns the status, the body and the headers. The
// request and its answer are checked against the API document
// (CheckExchange).
func (e *Env) Do(t testing.TB, method, path, token string, body any, edits ...func(*http.Request)) (int, []byte, http.Header) {
	t.Helper()
	req := NewRequest(t, method, "http://berth.test"+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, edit := range edits {
		edit(req)
	}
	sent := RequestBody(t, req)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	CheckExchange(t, req, sent, resp.StatusCode, resp.Header, out)
	return resp.StatusCode, out, resp.Header
}

// RequestBody reads req's body for CheckExchange and puts it back.
func RequestBody(t testing.TB, req *http.Request) []byte {
	t.Helper()
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	data, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(data))
	return data
}

// NewRequest makes a request to url. A []byte body is sent as it is,
// labelled JSON; url.Values as a form; any other non-nil body is encoded
// as JSON.
func NewRequest(t testing.TB, method, url string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	case neturl.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return req
}

// Must is Do that fails the test unless the status is want.
func (e *Env) Must(t testing.TB, want int, method, path, token string, body any, edits ...func(*http.Request)) []byte {
	t.Helper()
	status, out, _ := e.Do(t, method, path, token, body, edits...)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, out, want)
	}
	return out
}

// Secret registers values that must appear in no log line, audit event or
// stored record by the end of the test.
func (e *Env) Secret(s ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s...)
}

func (e *Env) checkNoSecrets(t testing.TB) {
	e.mu.Lock()
	defer e.mu.Unlock()
	CheckNoSecrets(t, e.DB, e.Audit, e.logs.String(), e.secrets)
}

// CheckNoSecrets fails the test if any of secrets is in logs, in an event
// of the audit log or anywhere in a full backup of the store.
func CheckNoSecrets(t testing.TB, db *store.DB, log *audit.Log, logs string, secrets []string) {
	t.Helper()
	var dump bytes.Buffer
	if err := db.Backup(&dump); err != nil {
		t.Errorf("backup for the secret scan: %v", err)
	}
	events, _, err := log.Find(audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Errorf("read audit: %v", err)
	}
	auditJSON, _ := json.Marshal(events)
	for _, s := range secrets {
		for where, text := range map[string]string{"logs": logs, "audit": string(auditJSON), "store": dump.String()} {
			if strings.Contains(text, s) {
				t.Errorf("secret %.12q… found in %s", s, where)
			}
		}
	}
}

// Logs is everything the services have logged so far.
func (e *Env) Logs() string { return e.logs.String() }

// Events returns the audit events matching q (newest first; every one
// when q.Limit is 0).
func (e *Env) Events(t testing.TB, q audit.Query) []audit.Event {
	t.Helper()
	return FindEvents(t, e.Audit, q)
}

// FindEvents returns the events of log matching q (newest first; every
// one when q.Limit is 0).
func FindEvents(t testing.TB, log *audit.Log, q audit.Query) []audit.Event {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = audit.MaxLimit
	}
	events, _, err := log.Find(q)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// IdentityState is every identity record in db, for "changed nothing"
// checks. Audit and login history are left out: refusals are meant to be
// recorded there. identity keeps its tables to itself; they are read here
// by their stored names, as raw records.
func IdentityState(t testing.TB, db *store.DB) string {
	t.Helper()
	var b strings.Builder
	err := db.View(func(tx *store.Tx) error {
		for _, name := range []string{"users", "roles", "sessions", "refresh_tokens", "api_keys", "access_keys", "external_links"} {
			err := store.NewTable[json.RawMessage](name).Scan(tx, store.ScanOptions{}, func(id string, v *json.RawMessage) (bool, error) {
				b.WriteString(name + "/" + id + " " + string(*v) + "\n")
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

// HasEvent reports whether the audit log holds an event of action with
// result.
func (e *Env) HasEvent(t testing.TB, action, result string) bool {
	t.Helper()
	return e.HasEventOn(t, "", action, result)
}

// HasEventOn reports whether the audit log holds an event of action with
// result on a resource of resourceType (any type when "").
func (e *Env) HasEventOn(t testing.TB, resourceType, action, result string) bool {
	t.Helper()
	for _, ev := range e.Events(t, audit.Query{ResourceType: resourceType, Action: action}) {
		if ev.Result == result {
			return true
		}
	}
	return false
}

// State is every identity record in the store (IdentityState).
func (e *Env) State(t testing.TB) string {
	t.Helper()
	return IdentityState(t, e.DB)
}

// Login signs in through the API with a password and registers the tokens
// as secrets.
func (e *Env) Login(t testing.TB, username, password string) TokenPair {
	t.Helper()
	tp := DecodeLogin(t, e.Must(t, 200, "POST", "/api/v1/auth/login", "", map[string]any{"username": username, "password": password}))
	e.Secret(tp.AccessToken, tp.RefreshToken)
	return tp
}

// CreateUser makes a user through the API with the admin's token and
// registers the password as a secret.
func (e *Env) CreateUser(t testing.TB, admin, username, password string, roles ...string) UserOut {
	t.Helper()
	e.Secret(password)
	body := map[string]any{"username": username, "password": password}
	if len(roles) > 0 {
		body["roles"] = roles
	}
	return Decode[UserOut](t, e.Must(t, 201, "POST", "/api/v1/users", admin, body))
}
