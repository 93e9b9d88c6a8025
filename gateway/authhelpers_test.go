package gateway

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

// The clocks are apitest's: stopped, or running with real time for tests
// where the gateway's timers must fire at the times its clock names.
type fakeClock = apitest.Clock

var stoppedClock, runningClock = apitest.StoppedClock, apitest.RunningClock

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
func startAuth(t testing.TB, env map[string]string) *authGW {
	t.Helper()
	return startAuthOn(t, env, stoppedClock())
}

// startAuthOn is startAuth on clock; edits change the configuration
// where an environment variable cannot (an empty value reads as unset).
func startAuthOn(t testing.TB, env map[string]string, clock *fakeClock, edits ...func(*config.Config)) *authGW {
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
func startWithClock(t testing.TB, cfg *config.Config, clock func() time.Time) *testGateway {
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
func (ag *authGW) checkNoSecrets(t testing.TB) {
	if ag.cancel == nil {
		return // stopped early by the test; it checked itself
	}
	ag.mu.Lock()
	defer ag.mu.Unlock()
	apitest.CheckNoSecrets(t, ag.db, ag.audit, ag.logs.String(), ag.secrets)
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
type raw = []byte

// call sends a request. body is nil, raw, url.Values (form-encoded) or any
// value to encode as JSON (apitest.NewRequest).
func (ag *authGW) call(t testing.TB, method, path string, body any, opts ...opt) (int, []byte, http.Header) {
	t.Helper()
	req := apitest.NewRequest(t, method, ag.http+path, body)
	for _, o := range opts {
		o(req)
	}
	resp, data := ag.do(t, req)
	return resp.StatusCode, data, resp.Header
}

// must is call that fails the test unless the status is want.
func (ag *authGW) must(t testing.TB, want int, method, path string, body any, opts ...opt) []byte {
	t.Helper()
	status, data, _ := ag.call(t, method, path, body, opts...)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, data)
	}
	return data
}

func decode[T any](t testing.TB, data []byte) T {
	t.Helper()
	return apitest.Decode[T](t, data)
}

// The API's answers, as apitest decodes them.
type (
	tokenPair = apitest.TokenPair
	apiKeyOut = apitest.APIKey
	meOut     = apitest.Me
	userOut   = apitest.UserOut
)

func (ag *authGW) login(t testing.TB, username, password string) tokenPair {
	t.Helper()
	tp := apitest.DecodeLogin(t, ag.must(t, 200, "POST", "/api/v1/auth/login", map[string]any{"username": username, "password": password}))
	ag.secret(tp.AccessToken, tp.RefreshToken)
	return tp
}

// createUser makes a user through the API with the admin token.
func (ag *authGW) createUser(t testing.TB, admin, username, password string, roles ...string) userOut {
	t.Helper()
	ag.secret(password)
	body := map[string]any{"username": username, "password": password}
	if len(roles) > 0 {
		body["roles"] = roles
	}
	return decode[userOut](t, ag.must(t, 201, "POST", "/api/v1/users", body, bearer(admin)))
}

// state is every identity record in the store, for "changed nothing"
// checks (apitest.IdentityState).
func (ag *authGW) state(t *testing.T) string {
	t.Helper()
	return apitest.IdentityState(t, ag.db)
}

// auditEvents returns the audit events matching q (newest first).
func (ag *authGW) auditEvents(t *testing.T, q audit.Query) []audit.Event {
	t.Helper()
	return apitest.FindEvents(t, ag.audit, q)
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
