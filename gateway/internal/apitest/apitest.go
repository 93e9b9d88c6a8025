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
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
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

	logs    syncBuffer
	client  *http.Client
	mu      sync.Mutex
	secrets []string
}

// New makes an Env whose store closes when the test ends, after the scan
// for registered secrets (Secret).
func New(t testing.TB) *Env {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{DB: db, Box: box, Now: time.Now}
	e.Log = slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.Audit = audit.New(db, audit.Options{Logger: e.Log})
	e.IDs, err = identity.NewService(identity.Options{
		DB: db, Box: box, Audit: e.Audit, Logger: e.Log,
		Settings: identity.Settings{
			Issuer: "berth", Audience: "berth",
			AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour,
			MinPasswordLength: 12,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// No limits: the tests of limits are the gateway's.
	unlimited := ratelimit.Limit{}
	limiter := ratelimit.New(ratelimit.Options{Scopes: map[string]ratelimit.Limit{
		ratelimit.ScopeAuth: unlimited, ratelimit.ScopeJoin: unlimited, ratelimit.ScopeAPI: unlimited,
		ratelimit.ScopeProxy: unlimited, ratelimit.ScopeAPIUser: unlimited, ratelimit.ScopeProxyUser: unlimited,
	}})
	e.Authn, err = authn.New(authn.Options{Service: e.IDs, Limiter: limiter, Logger: e.Log})
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
// handler through httpapi.Serve) and serves them until the test ends.
func (e *Env) Serve(t testing.TB, routes []authn.Route) {
	t.Helper()
	r := router.New()
	if err := e.Authn.Mount(r, routes); err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: r.Handler}
	go srv.Serve(ln) //nolint:errcheck // ends when the listener closes
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		// Idle keep-alive connections first, or Shutdown waits for them.
		tr.CloseIdleConnections()
		_ = srv.Shutdown()
	})
}

// Do sends one request with token as its bearer credential (none when
// ""). A []byte body is sent as it is, labelled JSON; url.Values as a
// form; any other body is encoded as JSON. edits change the request
// before it is sent. It returns the status,
// the body and the headers.
func (e *Env) Do(t testing.TB, method, path, token string, body any, edits ...func(*http.Request)) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequest(method, "http://berth.test"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, edit := range edits {
		edit(req)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// Must is Do that fails the test unless the status is want.
func (e *Env) Must(t testing.TB, want int, method, path, token string, body any) []byte {
	t.Helper()
	status, out, _ := e.Do(t, method, path, token, body)
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
	var dump bytes.Buffer
	if err := e.DB.Backup(&dump); err != nil {
		t.Errorf("backup for the secret scan: %v", err)
	}
	events, _, err := e.Audit.Find(audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Errorf("read audit: %v", err)
	}
	auditJSON, _ := json.Marshal(events)
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.secrets {
		for where, text := range map[string]string{"logs": logs, "audit": string(auditJSON), "store": dump.String()} {
			if strings.Contains(text, s) {
				t.Errorf("secret %.12q… found in %s", s, where)
			}
		}
	}
}

// HasEvent reports whether the audit log holds an event of action with
// result.
func (e *Env) HasEvent(t testing.TB, action, result string) bool {
	t.Helper()
	events, _, err := e.Audit.Find(audit.Query{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Action == action && ev.Result == result {
			return true
		}
	}
	return false
}

// syncBuffer is a log sink safe for the server's goroutines.
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
