package client

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBerth speaks the part of Berth's API these tests need, with Berth's
// rules for refresh tokens: each is spent by its use, and a spent one used
// again ends the session (docs/security.md). It also implements the
// single sign-on contract of the CLI: providers, the login redirect with
// cli_state and cli_code_challenge, and the code-for-tokens exchange with
// the PKCE verifier.
type fakeBerth struct {
	t   *testing.T
	srv *httptest.Server
	ttl time.Duration

	mu        sync.Mutex
	seq       int
	refresh   map[string]bool // refresh token → spent
	access    map[string]bool // valid access tokens
	revoked   bool            // the one session's
	refreshes int             // successful refreshes
	requests  int
	failWith  int // answer every refresh with this status, when not 0
	providers []string
	codes     map[string]string // code → challenge
}

func newFakeBerth(t *testing.T) *fakeBerth {
	f := &fakeBerth{t: t, ttl: 15 * time.Minute, refresh: map[string]bool{}, access: map[string]bool{}, codes: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBerth) tokens() map[string]any {
	f.seq++
	at, rt := fmt.Sprintf("at-%d", f.seq), fmt.Sprintf("brt_%d", f.seq)
	f.access[at], f.refresh[rt] = true, false
	return map[string]any{"access_token": at, "refresh_token": rt, "token_type": "Bearer", "expires_in": int(f.ttl / time.Second)}
}

func refuse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": status, "error": code, "message": msg, "request_id": "req-1"})
}

func (f *fakeBerth) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	var in map[string]string
	if r.Method == http.MethodPost {
		json.NewDecoder(r.Body).Decode(&in)
	}
	answer := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/api/v1/auth/login":
		if in["username"] != "alice" || in["password"] != "alice-password" {
			refuse(w, 401, "unauthenticated", "invalid username or password")
			return
		}
		f.revoked = false
		answer(f.tokens())
	case r.URL.Path == "/api/v1/auth/refresh":
		if f.failWith != 0 {
			refuse(w, f.failWith, "unavailable", "try later")
			return
		}
		spent, known := f.refresh[in["refresh_token"]]
		switch {
		case !known || f.revoked:
			refuse(w, 401, "unauthenticated", "invalid, expired or already used refresh token")
		case spent:
			f.revoked = true
			refuse(w, 401, "unauthenticated", "invalid, expired or already used refresh token")
		default:
			f.refresh[in["refresh_token"]] = true
			f.refreshes++
			answer(f.tokens())
		}
	case r.URL.Path == "/api/v1/auth/providers":
		items := []map[string]string{}
		for _, p := range f.providers {
			items = append(items, map[string]string{"name": p, "display_name": strings.ToUpper(p), "login_url": "/api/v1/auth/sso/" + p + "/login"})
		}
		answer(map[string]any{"items": items})
	case strings.HasPrefix(r.URL.Path, "/api/v1/auth/sso/") && strings.HasSuffix(r.URL.Path, "/login"):
		// The provider's part is skipped: Berth sends the browser straight
		// back to the CLI's loopback with a code bound to the challenge.
		q := r.URL.Query()
		redirect, err := url.Parse(q.Get("cli_redirect_uri"))
		if err != nil || redirect.Scheme != "http" || redirect.Hostname() != "127.0.0.1" || q.Get("cli_state") == "" || len(q.Get("cli_code_challenge")) != 43 {
			refuse(w, 400, "invalid", "bad CLI sign-in parameters")
			return
		}
		f.seq++
		code := fmt.Sprintf("code-%d", f.seq)
		f.codes[code] = q.Get("cli_code_challenge")
		redirect.RawQuery = url.Values{"code": {code}, "state": {q.Get("cli_state")}}.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	case r.URL.Path == "/api/v1/auth/sso/token":
		challenge, ok := f.codes[in["code"]]
		delete(f.codes, in["code"])
		sum := sha256.Sum256([]byte(in["code_verifier"]))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			refuse(w, 401, "unauthenticated", "invalid code")
			return
		}
		f.revoked = false
		answer(f.tokens())
	case r.URL.Path == "/api/v1/auth/logout":
		if !f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] || f.revoked {
			refuse(w, 401, "unauthenticated", "invalid credentials")
			return
		}
		f.revoked = true
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/api/v1/auth/me":
		if !f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] || f.revoked {
			refuse(w, 401, "unauthenticated", "invalid credentials")
			return
		}
		answer(map[string]any{"id": "usr_1", "username": "alice", "roles": []string{"user"}})
	default:
		refuse(w, 404, "not_found", "no such route")
	}
}

// counts returns the successful refreshes and the requests so far.
func (f *fakeBerth) counts() (refreshes, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes, f.requests
}

// clock is a test clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
