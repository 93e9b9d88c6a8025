package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/store"
)

// fakeClock drives identity, rate limits and audit in tests; nothing here
// sleeps. It starts at the real time so Badger's own TTLs agree with it.
// A stopped clock moves only by Advance; a running one (runningClock) also
// moves with real time, for tests where the gateway's timers must fire at
// the times its clock names.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
	// started is when a running clock read t; zero for a stopped clock.
	started time.Time
}

func stoppedClock() *fakeClock { return &fakeClock{t: time.Now().UTC()} }

func runningClock() *fakeClock { return &fakeClock{t: time.Now().UTC(), started: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.IsZero() {
		return c.t
	}
	return c.t.Add(time.Since(c.started))
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const adminPassword = "admin-Password-0001"

// authGW is a running gateway for identity tests. Every secret a test
// handles is registered with secret(); when the test ends the logs, the
// audit log and a full dump of the store are searched for each of them.
type authGW struct {
	*testGateway
	clock *fakeClock

	mu      sync.Mutex
	secrets []string
}

// startAuth starts a gateway with generous rate limits and no lockout (the
// tests of those turn them back on through env) and a fake clock.
func startAuth(t *testing.T, env map[string]string) *authGW {
	t.Helper()
	return startAuthOn(t, env, stoppedClock())
}

// startAuthOn is startAuth on clock; edits change the configuration
// where an environment variable cannot (an empty value reads as unset).
func startAuthOn(t *testing.T, env map[string]string, clock *fakeClock, edits ...func(*config.Config)) *authGW {
	t.Helper()
	vars := map[string]string{
		"BERTH_DATA_DIR":                  t.TempDir(),
		"BERTH_HTTP_ADDR":                 "127.0.0.1:0",
		"BERTH_HTTPS_ADDR":                "127.0.0.1:0",
		"BERTH_LOG_LEVEL":                 "debug",
		"BERTH_ADMIN_PASSWORD":            adminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS": "0",
		"BERTH_RATE_LIMITS_API_REQUESTS":  "0",
		"BERTH_AUTH_LOCKOUT_MAX_FAILURES": "0",
	}
	// The per-user limits are off too, like the per-key ones above.
	vars["BERTH_RATE_LIMITS_API_USER_REQUESTS"], vars["BERTH_RATE_LIMITS_PROXY_USER_REQUESTS"] = "0", "0"
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.SyncWrites = false
	for _, edit := range edits {
		edit(cfg)
	}
	ag := &authGW{testGateway: startWithClock(t, cfg, clock.Now), clock: clock}
	ag.secret(adminPassword)
	// Registered after start's cleanup, so it runs first, while the store
	// is open.
	t.Cleanup(func() { ag.checkNoSecrets(t) })
	return ag
}

// startWithClock is start (gateway_test.go) with an injected clock.
func startWithClock(t *testing.T, cfg *config.Config, clock func() time.Time) *testGateway {
	t.Helper()
	return startWith(t, cfg, clock, nil)
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
	if ag.cancel == nil {
		return // stopped early by the test; it checked itself
	}
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

func cookie(name, v string) opt {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: v}) }
}

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
	resp, data := ag.do(t, req)
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

type apiKeyOut struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	Key        string     `json:"key"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

type meOut struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	AuthMethod  string   `json:"auth_method"`
	SessionID   string   `json:"session_id"`
	Scopes      []string `json:"scopes"`
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
// checks. Audit and login history are left out: refusals are meant to be
// recorded there.
func (ag *authGW) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	// identity keeps its tables to itself; they are read here by their
	// stored names, as raw records.
	err := ag.db.View(func(tx *store.Tx) error {
		for _, name := range []string{"users", "roles", "sessions", "refresh_tokens", "api_keys", "access_keys"} {
			if err := dumpTable(tx, store.NewTable[json.RawMessage](name), &b); err != nil {
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

func dumpTable[T any](tx *store.Tx, tbl *store.Table[T], b *strings.Builder) error {
	return tbl.Scan(tx, store.ScanOptions{}, func(id string, v *T) (bool, error) {
		data, _ := json.Marshal(v)
		b.WriteString(tbl.Name() + "/" + id + " " + string(data) + "\n")
		return true, nil
	})
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
