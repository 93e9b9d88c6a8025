package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func TestSecurityDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth
	if a.AccessTokenTTL.D() != 15*time.Minute || a.AccessKeyTokenTTL.D() != time.Hour || a.MaxAccessKeys != 5 ||
		a.Session.CookieName != "__Host-berth_session" || a.Lockout.MaxFailures != 5 || len(a.OAuth.Clients) != 0 {
		t.Errorf("auth defaults: %+v", a)
	}
	r := c.RateLimits
	if r.MaxKeys != 10000 || r.Auth.Requests != 5 || r.Auth.Per.D() != 30*time.Second || r.Join.Per.D() != 3*time.Second {
		t.Errorf("rate limit defaults: %+v", r)
	}
	if c.Audit.RetentionDays != 90 || c.Audit.Retention() != 90*24*time.Hour {
		t.Errorf("audit defaults: %+v", c.Audit)
	}
	if len(c.Auth.OAuth.ResolvedClients()) != 0 {
		t.Error("an OAuth client ships by default")
	}
}

func TestOAuthClients(t *testing.T) {
	sum := sha256.Sum256([]byte("a-secret-of-some-length"))
	c, err := Load("", envMap(map[string]string{
		"BERTH_AUTH_OAUTH_CLIENTS": "kubesphere:env:KS_SECRET, console:sha256:" + hex.EncodeToString(sum[:]),
		"KS_SECRET":                "another-long-secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Auth.OAuth.ResolvedClients()
	if len(got) != 2 || got[0].ID != "kubesphere" || got[0].SecretSHA256 != sha256.Sum256([]byte("another-long-secret")) ||
		got[1].ID != "console" || got[1].SecretSHA256 != sum {
		t.Errorf("resolved: %+v", got)
	}
	empty := sha256.Sum256(nil)
	tests := []struct {
		name, clients string
		env           map[string]string
		want          string
	}{
		{"empty env secret", "ks:env:KS", map[string]string{"KS": ""}, "unset or empty"},
		{"unset env secret", "ks:env:KS", nil, "unset or empty"},
		{"short env secret", "ks:env:KS", map[string]string{"KS": "short"}, "shorter than"},
		{"plain secret", "ks:kubesphere", nil, "plain secrets"},
		{"plain secret kind", "ks:plain:kubesphere", nil, "plain secrets"},
		{"no secret", "ks", nil, "want"},
		{"bad hex", "ks:sha256:xyz", nil, "64 hex"},
		{"hash of empty", "ks:sha256:" + hex.EncodeToString(empty[:]), nil, "empty"},
		{"bad id", "k s:sha256:" + hex.EncodeToString(sum[:]), nil, "client id"},
		{"bad env name", "ks:env:1X", nil, "not an environment variable"},
		{"duplicate", "ks:env:A,ks:env:B", map[string]string{"A": "aaaaaaaaaaaaaaaaaa", "B": "bbbbbbbbbbbbbbbbbbbb"}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"BERTH_AUTH_OAUTH_CLIENTS": tt.clients}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := Load("", envMap(env))
			ce, ok := err.(*Error)
			if !ok || !strings.HasPrefix(ce.Key, "auth.oauth.clients") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an auth.oauth.clients error about %q", err, tt.want)
			}
		})
	}
}

func TestSecurityErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		file, key string
	}{
		{"trusted_proxies: [10.0.0.0/33]\n", "trusted_proxies[0]"},
		{"trusted_proxies: [proxy.example]\n", "trusted_proxies[0]"},
		{"auth:\n  access_token_ttl: 10s\n", "auth.access_token_ttl"},
		{"auth:\n  access_token_ttl: 48h\n", "auth.access_token_ttl"},
		{"auth:\n  refresh_token_ttl: 5m\n", "auth.refresh_token_ttl"},
		{"auth:\n  issuer: \"\"\n", "auth.issuer"},
		{"auth:\n  max_access_keys: 0\n", "auth.max_access_keys"},
		{"auth:\n  min_password_length: 4\n", "auth.min_password_length"},
		{"auth:\n  leeway: 1h\n", "auth.leeway"},
		{"auth:\n  signing_key_rotation: 10m\n", "auth.signing_key_rotation"},
		{"auth:\n  signing_key_rotation: -1h\n", "auth.signing_key_rotation"},
		{"auth:\n  signing_key_rotation: 9000h\n", "auth.signing_key_rotation"},
		{"auth:\n  session:\n    cookie_name: \"a b\"\n", "auth.session.cookie_name"},
		{"auth:\n  lockout:\n    max_failures: -1\n", "auth.lockout.max_failures"},
		{"auth:\n  lockout:\n    duration: 10m\n    max_duration: 1m\n", "auth.lockout.max_duration"},
		{"auth:\n  cors:\n    allowed_origins: [\"https://a.example/path\"]\n", "auth.cors.allowed_origins[0]"},
		{"auth:\n  cors:\n    allowed_origins: [\"null\"]\n", "auth.cors.allowed_origins[0]"},
		{"auth:\n  oauth:\n    clients: [\"ks:secret\"]\n", "auth.oauth.clients[0]"},
		{"rate_limits:\n  max_keys: 5\n", "rate_limits.max_keys"},
		{"rate_limits:\n  auth:\n    requests: -1\n", "rate_limits.auth"},
		{"rate_limits:\n  api:\n    requests: 5\n    per: 0s\n", "rate_limits.api"},
		{"rate_limits:\n  overrides: [\"api:usr_1=ten/1s\"]\n", "rate_limits.overrides[0]"},
		{"rate_limits:\n  overrides: [\"nope:usr_1=10/1s\"]\n", "rate_limits.overrides[0]"},
		{"rate_limits:\n  overrides: [\"api:usr 1=10/1s\"]\n", "rate_limits.overrides[0]"},
		{"auth:\n  max_api_keys: 0\n", "auth.max_api_keys"},
		{"rate_limits:\n  api_user:\n    requests: -1\n", "rate_limits.api_user"},
		{"rate_limits:\n  proxy_user:\n    requests: 5\n    per: 0s\n", "rate_limits.proxy_user"},
		{"rate_limits:\n  overrides: [\"api_users:usr_1=10/1s\"]\n", "rate_limits.overrides[0]"},
		{"audit:\n  retention_days: -1\n", "audit.retention_days"},
		{"audit:\n  purge_interval: 1s\n", "audit.purge_interval"},
		{"audit:\n  max_events: -1\n", "audit.max_events"},
	}
	for _, tt := range tests {
		_, err := Load(writeFile(t, tt.file), nil)
		ce, ok := err.(*Error)
		if !ok || ce.Key != tt.key {
			t.Errorf("%q: got %v, want key %s", tt.file, err, tt.key)
		}
	}
}

func TestRateOverrides(t *testing.T) {
	c, err := Load("", envMap(map[string]string{"BERTH_RATE_LIMITS_OVERRIDES": "api:key_01abc=100/1s/200,proxy:usr_9=5/1m"}))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.RateLimits.ParseOverrides()
	if err != nil || len(o) != 2 {
		t.Fatalf("%+v %v", o, err)
	}
	if o[0].Scope != "api" || o[0].Key != "key_01abc" || o[0].Limit.Requests != 100 || o[0].Limit.Per.D() != time.Second || o[0].Limit.Burst != 200 {
		t.Errorf("first: %+v", o[0])
	}
	if o[1].Scope != "proxy" || o[1].Limit.Per.D() != time.Minute || o[1].Limit.Burst != 0 {
		t.Errorf("second: %+v", o[1])
	}
}
