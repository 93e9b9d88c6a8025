package identity_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway"
	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// The handler tests run identity's endpoints on apitest's harness: an
// in-memory store, the identity service and its handlers behind the real
// authn guard, served by fasthttp on an in-memory listener. The settings
// come from the configuration's defaults, as the gateway reads them; the
// routes are identity's block of the gateway's route table
// (gateway.IdentityRoutes), whose own tests check the table itself.

const adminPassword = "admin-Password-0001"

// authGW is identity's endpoints, running. Every secret a test handles is
// registered with secret(); when the test ends the logs, the audit log and
// a full dump of the store are searched for each of them (apitest).
type authGW struct {
	*apitest.Env
	clock *apitest.Clock
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
	clock := apitest.StoppedClock()
	var clients []identity.OAuthClient
	for _, c := range cfg.Auth.OAuth.ResolvedClients() {
		clients = append(clients, identity.OAuthClient{ID: c.ID, SecretSHA256: c.SecretSHA256})
	}
	limit := func(l config.RateLimit) ratelimit.Limit { return ratelimit.PerPeriod(l.Requests, l.Per.D(), l.Burst) }
	e := apitest.NewWith(t, apitest.Options{
		Now:           clock.Now,
		AdminPassword: cfg.AdminPassword,
		Audit:         audit.Options{Retention: cfg.Audit.Retention(), MaxEvents: cfg.Audit.MaxEvents},
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
		Limits: ratelimit.Options{MaxKeys: cfg.RateLimits.MaxKeys, Scopes: map[string]ratelimit.Limit{
			ratelimit.ScopeAuth: limit(cfg.RateLimits.Auth), ratelimit.ScopeAPI: limit(cfg.RateLimits.API),
			ratelimit.ScopeAPIUser: limit(cfg.RateLimits.APIUser),
		}},
		Authn: authn.Options{Trusted: &ratelimit.Trusted{}, CookieName: cfg.Auth.Session.CookieName, AllowedOrigins: cfg.Auth.CORS.AllowedOrigins},
	})
	e.Serve(t, routes(identity.NewHandlers(e.IDs, e.Authn, e.Audit)))
	return &authGW{Env: e, clock: clock}
}

// routes are identity's block of the gateway's route table
// (gateway.IdentityRoutes), and the JWKS document, which the gateway
// mounts outside the table because it needs no guard.
func routes(h *identity.Handlers) []authn.Route {
	return append(gateway.IdentityRoutes(h),
		authn.Route{Method: fasthttp.MethodGet, Path: "/.well-known/jwks.json", Permission: authn.Public, Handler: h.JWKS})
}

// secret registers secrets for the scan; values shorter than 8 bytes are
// too likely to occur by chance.
func (ag *authGW) secret(s ...string) {
	for _, v := range s {
		if len(v) >= 8 {
			ag.Secret(v)
		}
	}
}

// opt changes a request before it is sent.
type opt = func(*http.Request)

func bearer(tok string) opt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func header(k, v string) opt { return func(r *http.Request) { r.Header.Set(k, v) } }

// raw is a request body sent as is with a JSON content type (override it
// with header).
type raw = []byte

// call sends a request. body is nil, raw, url.Values (form-encoded) or any
// value to encode as JSON.
func (ag *authGW) call(t *testing.T, method, path string, body any, opts ...opt) (int, []byte, http.Header) {
	t.Helper()
	return ag.Do(t, method, path, "", body, opts...)
}

// must is call that fails the test unless the status is want.
func (ag *authGW) must(t *testing.T, want int, method, path string, body any, opts ...opt) []byte {
	t.Helper()
	return ag.Must(t, want, method, path, "", body, opts...)
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	return apitest.Decode[T](t, data)
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

type (
	tokenPair = apitest.TokenPair
	userOut   = apitest.UserOut
)

func (ag *authGW) login(t *testing.T, username, password string) tokenPair {
	t.Helper()
	tp := apitest.DecodeLogin(t, ag.must(t, 200, "POST", "/api/v1/auth/login", map[string]any{"username": username, "password": password}))
	ag.secret(tp.AccessToken, tp.RefreshToken)
	return tp
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
// checks.
func (ag *authGW) state(t *testing.T) string {
	t.Helper()
	return apitest.IdentityState(t, ag.DB)
}

// auditEvents returns the audit events matching q (newest first).
func (ag *authGW) auditEvents(t *testing.T, q audit.Query) []audit.Event {
	t.Helper()
	return ag.Events(t, q)
}

// hasEvent reports whether an event with this resource type, action and
// result exists.
func (ag *authGW) hasEvent(t *testing.T, resourceType, action, result string) bool {
	t.Helper()
	for _, e := range ag.Events(t, audit.Query{ResourceType: resourceType, Action: action}) {
		if e.Result == result {
			return true
		}
	}
	return false
}
