package identity_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

type apiKeyOut = apitest.APIKey

func TestAPIKeys(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	frank := ag.CreateUser(t, admin, "frank", "frank-password-1")
	ft := ag.Login(t, "frank", "frank-password-1").AccessToken

	k := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "laptop"}, bearer(ft)))
	ag.secret(k.Key)
	if !strings.HasPrefix(k.Key, "brt_") || len(k.Key) != 47 || !strings.HasPrefix(k.Key, k.Prefix) || len(k.Prefix) != 12 {
		t.Fatalf("key %q prefix %q", k.Key, k.Prefix)
	}
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(k.Key)))
	if me.Username != "frank" || me.AuthMethod != "api_key" {
		t.Fatalf("me via key: %+v", me)
	}
	// Lists show metadata and last use, never the key or its digest.
	list := ag.must(t, 200, "GET", "/api/v1/auth/api-keys", nil, bearer(ft))
	if strings.Contains(string(list), k.Key[12:]) || strings.Contains(string(list), "digest") || !strings.Contains(string(list), k.Prefix) {
		t.Errorf("list leaks or lacks: %s", list)
	}
	keys := decode[struct {
		Items []apiKeyOut `json:"items"`
		Total int         `json:"total"`
	}](t, list)
	if keys.Total != 1 || keys.Items[0].LastUsedAt == nil || keys.Items[0].Key != "" {
		t.Errorf("list: %+v", keys)
	}
	if !ag.HasEventOn(t, "api_key", "use", audit.ResultSuccess) || !ag.HasEventOn(t, "api_key", "create", audit.ResultSuccess) {
		t.Error("api key create/use not audited")
	}

	// Another user can neither see nor revoke it.
	ag.CreateUser(t, admin, "gina", "gina-password-1")
	gt := ag.Login(t, "gina", "gina-password-1").AccessToken
	ag.must(t, 404, "GET", "/api/v1/auth/api-keys?user_id="+frank.ID, nil, bearer(gt))
	ag.must(t, 404, "DELETE", "/api/v1/auth/api-keys/"+k.ID, nil, bearer(gt))
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(k.Key))
	// The admin can.
	adminView := ag.must(t, 200, "GET", "/api/v1/auth/api-keys?user_id="+frank.ID, nil, bearer(admin))
	if !strings.Contains(string(adminView), k.ID) {
		t.Error("admin cannot list frank's keys")
	}

	// Bad creation requests change nothing.
	before := ag.State(t)
	for name, body := range map[string]any{
		"no name":         map[string]any{},
		"long name":       map[string]any{"name": strings.Repeat("n", 65)},
		"past expiry":     map[string]any{"name": "x", "expires_at": time.Now().Add(-time.Hour)},
		"unknown scope":   map[string]any{"name": "x", "scopes": []string{"clusters:destroy"}},
		"scope not held":  map[string]any{"name": "x", "scopes": []string{"users:admin"}},
		"bad cluster":     map[string]any{"name": "x", "scopes": []string{"cluster:Bad_Name"}},
		"too many scopes": map[string]any{"name": "x", "scopes": strings.Split(strings.Repeat("cluster:a,", 33), ",")[:33]},
		"garbled":         raw(`{"name":`),
		"unknown field":   raw(`{"name":"x","admin":true}`),
		"expiry not time": raw(`{"name":"x","expires_at":"tomorrow"}`),
		"someone else's":  map[string]any{"name": "x", "user_id": "usr_admin"},
	} {
		status, body, _ := ag.call(t, "POST", "/api/v1/auth/api-keys", body, bearer(ft))
		if status != 400 && !(name == "someone else's" && status == 404) {
			t.Errorf("%s: status %d: %s", name, status, body)
		}
	}
	if ag.State(t) != before {
		t.Fatal("refused key creations changed state")
	}

	// A key scoped to one cluster and clusters:read cannot reach admin
	// routes even for an admin, and cannot mint credentials.
	sk := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys",
		map[string]any{"name": "kubeconfig", "scopes": []string{"cluster:prod", "clusters:read"}}, bearer(admin)))
	ag.secret(sk.Key)
	ag.must(t, 403, "GET", "/api/v1/users", nil, bearer(sk.Key))
	ag.must(t, 403, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "escape"}, bearer(sk.Key))
	ag.must(t, 403, "POST", "/api/v1/auth/access-keys", nil, bearer(sk.Key))
	sme := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(sk.Key)))
	if strings.Join(sme.Scopes, ",") != "cluster:prod,clusters:read" {
		t.Errorf("scopes: %v", sme.Scopes)
	}

	// Revoked: refused at once, and the refusal changes nothing.
	ag.must(t, 204, "DELETE", "/api/v1/auth/api-keys/"+k.ID, nil, bearer(ft))
	before = ag.State(t)
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(k.Key))
	ag.must(t, 404, "DELETE", "/api/v1/auth/api-keys/"+k.ID, nil, bearer(ft))
	if ag.State(t) != before {
		t.Error("using a revoked key changed state")
	}
	if !ag.HasEventOn(t, "api_key", "revoke", audit.ResultSuccess) {
		t.Error("revoke not audited")
	}

	// Expiry.
	ek := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys",
		map[string]any{"name": "short", "expires_at": ag.clock.Now().Add(time.Hour)}, bearer(ft)))
	ag.secret(ek.Key)
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(ek.Key))
	ag.clock.Advance(2 * time.Hour)
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(ek.Key))
}

type accessKeyOut struct {
	ID        string `json:"id"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

func TestAccessKeysAndExchange(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	var keys []accessKeyOut
	for i := 0; i < 5; i++ {
		k := decode[accessKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/access-keys", nil, bearer(admin)))
		ag.secret(k.SecretKey)
		if len(k.AccessKey) != 32 || len(k.SecretKey) != 32 {
			t.Fatalf("key pair %+v", k)
		}
		keys = append(keys, k)
	}
	before := ag.State(t)
	ag.must(t, 409, "POST", "/api/v1/auth/access-keys", nil, bearer(admin))
	if ag.State(t) != before {
		t.Fatal("the refused sixth key changed state")
	}
	list := ag.must(t, 200, "GET", "/api/v1/auth/access-keys", nil, bearer(admin))
	if strings.Contains(string(list), keys[0].SecretKey) || strings.Contains(string(list), "secret") {
		t.Errorf("list shows secrets: %s", list)
	}

	// POST /api/v1/auth/token
	out := decode[struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}](t, ag.must(t, 200, "POST", "/api/v1/auth/token", map[string]any{"access_key": keys[0].AccessKey, "secret_key": keys[0].SecretKey}))
	ag.secret(out.Token)
	if out.ExpiresIn != 3600 {
		t.Errorf("expires_in %d, want 3600", out.ExpiresIn)
	}
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(out.Token)))
	if me.AuthMethod != "access_key" {
		t.Errorf("method %q", me.AuthMethod)
	}

	// KubeCube's GET form answers {"token": …}, and its query is never logged.
	cube := ag.must(t, 200, "GET", "/api/v1/cube/key/token?accessKey="+keys[1].AccessKey+"&secretKey="+keys[1].SecretKey, nil)
	ct := decode[map[string]string](t, cube)
	if ct["token"] == "" || len(ct) != 1 {
		t.Fatalf("cube answer %s", cube)
	}
	ag.secret(ct["token"])
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(ct["token"]))
	if !strings.Contains(ag.Logs(), "secretKey=REDACTED") || strings.Contains(ag.Logs(), keys[1].AccessKey) {
		t.Error("cube token query not redacted in the access log")
	}

	// Wrong secrets, unknown keys, garbage: 401 / 400, nothing changed.
	before = ag.State(t)
	for name, body := range map[string]any{
		"wrong secret": map[string]any{"access_key": keys[0].AccessKey, "secret_key": keys[1].SecretKey},
		"unknown key":  map[string]any{"access_key": strings.Repeat("a", 32), "secret_key": keys[0].SecretKey},
		"short secret": map[string]any{"access_key": keys[0].AccessKey, "secret_key": "x"},
		"not hex":      map[string]any{"access_key": strings.Repeat("z", 32), "secret_key": keys[0].SecretKey},
	} {
		if status, b, _ := ag.call(t, "POST", "/api/v1/auth/token", body); status != 401 {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
	for name, body := range map[string]any{
		"missing secret": map[string]any{"access_key": keys[0].AccessKey},
		"oversize":       map[string]any{"access_key": keys[0].AccessKey, "secret_key": strings.Repeat("s", 100)},
		"garbled":        raw(`{"access_key":`),
	} {
		if status, b, _ := ag.call(t, "POST", "/api/v1/auth/token", body); status != 400 {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
	ag.must(t, 400, "GET", "/api/v1/cube/key/token?accessKey="+keys[0].AccessKey, nil)
	ag.must(t, 401, "GET", "/api/v1/cube/key/token?accessKey="+keys[0].AccessKey+"&secretKey="+strings.Repeat("0", 32), nil)
	if ag.State(t) != before {
		t.Error("failed exchanges changed state")
	}
	if !ag.HasEventOn(t, "access_key", "use", audit.ResultFailure) || !ag.HasEventOn(t, "access_key", "use", audit.ResultSuccess) {
		t.Error("exchanges not audited")
	}

	// Deleting the key ends the tokens it issued.
	ag.must(t, 204, "DELETE", "/api/v1/auth/access-keys/"+keys[0].ID, nil, bearer(admin))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(out.Token))
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(ct["token"]))
	ag.must(t, 401, "POST", "/api/v1/auth/token", map[string]any{"access_key": keys[0].AccessKey, "secret_key": keys[0].SecretKey})
	// A free slot again.
	k6 := decode[accessKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/access-keys", nil, bearer(admin)))
	ag.secret(k6.SecretKey)
	// Token expiry follows auth.access_key_token_ttl.
	ag.clock.Advance(61 * time.Minute)
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(ct["token"]))
}

const oauthSecret = "kubesphere-client-secret-0001"

func TestOAuthTokenEndpoint(t *testing.T) {
	sum := sha256.Sum256([]byte("console-client-secret-001"))
	ag := startAuth(t, map[string]string{
		"BERTH_AUTH_OAUTH_CLIENTS": "kubesphere:env:KS_SECRET,console:sha256:" + hex.EncodeToString(sum[:]),
		"KS_SECRET":                oauthSecret,
	})
	ag.secret(oauthSecret, "console-client-secret-001")
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	status, body, hdr := ag.call(t, "POST", "/oauth/token", form("grant_type", "password", "username", "admin", "password", adminPassword,
		"client_id", "kubesphere", "client_secret", oauthSecret))
	if status != 200 || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("password grant: %d %s", status, body)
	}
	tp := decode[tokenPair](t, body)
	ag.secret(tp.AccessToken, tp.RefreshToken)
	if tp.TokenType != "Bearer" || tp.ExpiresIn != 900 {
		t.Errorf("token answer %+v", tp)
	}
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(tp.AccessToken)))
	if me.AuthMethod != "oauth" {
		t.Errorf("method %q", me.AuthMethod)
	}
	// Client credentials in HTTP Basic work too; refresh_token grant.
	basic := func(id, secret string) opt {
		return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
	}
	tp2 := decode[tokenPair](t, ag.must(t, 200, "POST", "/oauth/token", form("grant_type", "refresh_token", "refresh_token", tp.RefreshToken), basic("kubesphere", oauthSecret)))
	ag.secret(tp2.AccessToken, tp2.RefreshToken)
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(tp2.AccessToken))

	before := ag.State(t)
	tests := []struct {
		name   string
		body   any
		opts   []opt
		status int
		code   string
	}{
		{"no body", nil, []opt{header("Content-Type", "application/x-www-form-urlencoded")}, 400, "invalid_request"},
		{"JSON body", raw(`{"grant_type":"password"}`), nil, 400, "invalid_request"},
		{"garbled form", raw("grant_type=%zz"), []opt{header("Content-Type", "application/x-www-form-urlencoded")}, 400, "invalid_request"},
		{"unknown grant", form("grant_type", "client_credentials", "client_id", "kubesphere", "client_secret", oauthSecret), nil, 400, "unsupported_grant_type"},
		{"implicit grant", form("grant_type", "implicit"), nil, 400, "unsupported_grant_type"},
		{"no grant", form("username", "admin"), nil, 400, "invalid_request"},
		{"repeated parameter", form("grant_type", "password", "grant_type", "refresh_token"), nil, 400, "invalid_request"},
		{"oversize parameter", form("grant_type", "password", "username", strings.Repeat("u", 2000)), nil, 400, "invalid_request"},
		{"unknown client", form("grant_type", "password", "username", "admin", "password", adminPassword, "client_id", "nope", "client_secret", oauthSecret), nil, 401, "invalid_client"},
		{"wrong client secret", form("grant_type", "password", "username", "admin", "password", adminPassword, "client_id", "kubesphere", "client_secret", "kubesphere"), nil, 401, "invalid_client"},
		{"no client", form("grant_type", "password", "username", "admin", "password", adminPassword), nil, 401, "invalid_client"},
		{"client twice", form("grant_type", "password", "client_id", "kubesphere"), []opt{basic("kubesphere", oauthSecret)}, 400, "invalid_request"},
		{"wrong password", form("grant_type", "password", "username", "admin", "password", "not-the-password", "client_id", "kubesphere", "client_secret", oauthSecret), nil, 400, "invalid_grant"},
		{"no password", form("grant_type", "password", "username", "admin", "client_id", "kubesphere", "client_secret", oauthSecret), nil, 400, "invalid_request"},
		{"used refresh token", form("grant_type", "refresh_token", "refresh_token", "brr_"+strings.Repeat("A", 43), "client_id", "kubesphere", "client_secret", oauthSecret), nil, 400, "invalid_grant"},
		{"another client's refresh token", form("grant_type", "refresh_token", "refresh_token", tp2.RefreshToken, "client_id", "console", "client_secret", "console-client-secret-001"), nil, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if _, isRaw := tt.body.(raw); isRaw && len(opts) == 0 {
				opts = nil // JSON content type from call
			}
			status, body, _ := ag.call(t, "POST", "/oauth/token", tt.body, opts...)
			e := decode[map[string]string](t, body)
			if status != tt.status || e["error"] != tt.code || e["error_description"] == "" {
				t.Errorf("got %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	if ag.State(t) != before {
		t.Error("refused OAuth requests changed state")
	}
	// The family survives another client's attempt; refreshing with the
	// right client still works.
	tp3 := decode[tokenPair](t, ag.must(t, 200, "POST", "/oauth/token", form("grant_type", "refresh_token", "refresh_token", tp2.RefreshToken, "client_id", "kubesphere", "client_secret", oauthSecret)))
	ag.secret(tp3.AccessToken, tp3.RefreshToken)
	// The native refresh endpoint does not accept an OAuth client's token.
	ag.must(t, 401, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tp3.RefreshToken})
	// Reuse through OAuth revokes the family too.
	ag.must(t, 400, "POST", "/oauth/token", form("grant_type", "refresh_token", "refresh_token", tp2.RefreshToken, "client_id", "kubesphere", "client_secret", oauthSecret))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tp3.AccessToken))
	ag.secret("not-the-password")
}

// With no client configured, the endpoint exists but trusts no one — no
// well-known default secret ships.
func TestOAuthWithoutClients(t *testing.T) {
	ag := startAuth(t, nil)
	for _, secret := range []string{"kubesphere", ""} {
		v := url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {adminPassword}, "client_id": {"kubesphere"}, "client_secret": {secret}}
		status, body, _ := ag.call(t, "POST", "/oauth/token", v)
		if status != 401 || !strings.Contains(string(body), "invalid_client") {
			t.Errorf("secret %q: %d %s", secret, status, body)
		}
	}
}

func TestAccessKeysPerUserAreSeparate(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUTH_MAX_ACCESS_KEYS": "1", "BERTH_AUTH_ACCESS_KEY_TOKEN_TTL": "10m"})
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	ag.CreateUser(t, admin, "hank", "hank-password-1")
	ht := ag.Login(t, "hank", "hank-password-1").AccessToken
	a := decode[accessKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/access-keys", nil, bearer(admin)))
	h := decode[accessKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/access-keys", nil, bearer(ht)))
	ag.secret(a.SecretKey, h.SecretKey)
	ag.must(t, 409, "POST", "/api/v1/auth/access-keys", nil, bearer(ht))
	ag.must(t, 404, "DELETE", "/api/v1/auth/access-keys/"+a.ID, nil, bearer(ht))
	out := decode[map[string]any](t, ag.must(t, 200, "POST", "/api/v1/auth/token", map[string]any{"access_key": h.AccessKey, "secret_key": h.SecretKey}))
	if fmt.Sprint(out["expires_in"]) != "600" {
		t.Errorf("configured ttl not applied: %v", out["expires_in"])
	}
	ag.secret(out["token"].(string))
}
