package apitest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// Clock is a test clock: nothing sleeps. It starts at the real time so
// Badger's own TTLs agree with it. A stopped clock moves only by Advance;
// a running one also moves with real time, for tests where timers must
// fire at the times the clock names.
type Clock struct {
	mu sync.Mutex
	t  time.Time
	// started is when a running clock read t; zero for a stopped clock.
	started time.Time
}

// StoppedClock is a Clock that moves only by Advance.
func StoppedClock() *Clock { return &Clock{t: time.Now().UTC()} }

// RunningClock is a Clock that moves with real time and by Advance.
func RunningClock() *Clock { return &Clock{t: time.Now().UTC(), started: time.Now()} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.IsZero() {
		return c.t
	}
	return c.t.Add(time.Since(c.started))
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Decode decodes a JSON answer, failing the test if it is not a T.
func Decode[T any](t testing.TB, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, data, err)
	}
	return v
}

// TokenPair is the answer of a sign-in or a refresh.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// DecodeLogin decodes a password sign-in's answer, failing the test
// unless it holds a bearer token pair.
func DecodeLogin(t testing.TB, data []byte) TokenPair {
	t.Helper()
	tp := Decode[TokenPair](t, data)
	if tp.AccessToken == "" || tp.RefreshToken == "" || tp.TokenType != "Bearer" {
		t.Fatalf("login answer: %+v", tp)
	}
	return tp
}

// APIKey is an API key as the API shows it (Key only when created).
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	Key        string     `json:"key"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Me is the answer of GET /api/v1/auth/me.
type Me struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	AuthMethod  string   `json:"auth_method"`
	SessionID   string   `json:"session_id"`
	Scopes      []string `json:"scopes"`
}

// UserOut is a user as the API shows it.
type UserOut struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
	Status   string   `json:"status"`
}

// APIError is the body of every error answer of the API.
type APIError struct {
	Code      int    `json:"code"`
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// DecodeError decodes an error answer, failing the test if it is not
// JSON.
func DecodeError(t testing.TB, body []byte) APIError {
	t.Helper()
	var e APIError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	return e
}
