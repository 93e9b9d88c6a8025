package identity_test

import (
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

var decodeError = apitest.DecodeError

// The API's answers, as apitest decodes them.
type (
	tokenPair = apitest.TokenPair
	userOut   = apitest.UserOut
)
