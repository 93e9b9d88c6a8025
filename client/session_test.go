package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// signedIn signs alice in to f with a store in a new directory.
func signedIn(t *testing.T, f *fakeBerth) (*Store, *clock, string) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	st := &Store{Dir: filepath.Join(t.TempDir(), "berth"), Now: clk.Now}
	server, err := ParseServer(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cl := &Client{Server: server, HTTP: f.srv.Client()}
	start := clk.Now()
	tok, err := cl.Login(context.Background(), "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveLogin(&Entry{Server: server, Username: "alice"}, tok, start); err != nil {
		t.Fatal(err)
	}
	return st, clk, server
}

func TestCredentialIsCachedUntilShortlyBeforeExpiry(t *testing.T) {
	f := newFakeBerth(t)
	st, clk, server := signedIn(t, f)
	ctx := context.Background()
	first, err := st.Credential(ctx, server, &Asker{PID: 1, Cluster: "a"}, false)
	if err != nil {
		t.Fatal(err)
	}
	margin := RefreshMargin(f.ttl)
	if want := clk.Now().Add(f.ttl - margin); !first.ExpiresAt.Equal(want) {
		t.Errorf("expiry %v, want %v (the token's less the margin %v)", first.ExpiresAt, want, margin)
	}
	_, before := f.counts()
	for pid := 2; pid < 12; pid++ {
		clk.Advance(time.Minute)
		c, err := st.Credential(ctx, server, &Asker{PID: pid, Cluster: "a"}, false)
		if err != nil || c.Token != first.Token {
			t.Fatalf("a fresh token was not served from the cache: %v", err)
		}
	}
	if r, n := f.counts(); r != 0 || n != before {
		t.Errorf("fresh cached token: %d refreshes, %d requests made; want none", r, n-before)
	}
	// Inside the margin: renewed, once.
	clk.Advance(f.ttl - 10*time.Minute - margin + time.Second)
	renewed, err := st.Credential(ctx, server, &Asker{PID: 50, Cluster: "a"}, false)
	if err != nil || renewed.Token == first.Token {
		t.Fatalf("inside the margin: %v, token renewed %v", err, renewed.Token != first.Token)
	}
	if r, _ := f.counts(); r != 1 {
		t.Errorf("%d refreshes, want 1", r)
	}
}

// Processes started at once after the token's expiry (kubectl runs the
// plugin for each invocation) must not spend the refresh token twice:
// Berth would end the session.
func TestConcurrentCredentialsRefreshOnce(t *testing.T) {
	f := newFakeBerth(t)
	st, clk, server := signedIn(t, f)
	clk.Advance(f.ttl + time.Minute)
	const n = 12
	var wg sync.WaitGroup
	tokens := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each its own Store, as separate processes would be: the lock
			// is on the file, not in memory.
			s := &Store{Dir: st.Dir, Now: clk.Now}
			c, err := s.Credential(context.Background(), server, &Asker{PID: 100 + i, Cluster: "a"}, false)
			tokens[i], errs[i] = c.Token, err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Errorf("caller %d got another token than caller 0", i)
		}
	}
	if r, _ := f.counts(); r != 1 {
		t.Errorf("%d refreshes for %d concurrent callers, want 1", r, n)
	}
	f.mu.Lock()
	revoked := f.revoked
	f.mu.Unlock()
	if revoked {
		t.Error("the session was revoked: a refresh token was used twice")
	}
}

// kubectl runs the plugin again within one process only when its token
// expired or was refused: the same asker asking again before the expiry
// gets a new token; another asker still gets the cached one.
func TestSameAskerAgainGetsANewToken(t *testing.T) {
	f := newFakeBerth(t)
	st, _, server := signedIn(t, f)
	ctx := context.Background()
	a := &Asker{PID: 7, Cluster: "a"}
	first, err := st.Credential(ctx, server, a, false)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Credential(ctx, server, &Asker{PID: 7, Cluster: "b"}, false); c.Token != first.Token {
		t.Error("the same process for another cluster (another authenticator) did not get the cached token")
	}
	second, err := st.Credential(ctx, server, a, false)
	if err != nil || second.Token == first.Token {
		t.Fatalf("the same asker again: %v, new token %v", err, second.Token != first.Token)
	}
	if c, _ := st.Credential(ctx, server, &Asker{PID: 8, Cluster: "a"}, false); c.Token != second.Token {
		t.Error("another asker did not get the renewed token")
	}
	if r, _ := f.counts(); r != 1 {
		t.Errorf("%d refreshes, want 1", r)
	}
}

func TestEndedSessionSaysSignInAgain(t *testing.T) {
	f := newFakeBerth(t)
	st, clk, server := signedIn(t, f)
	f.mu.Lock()
	f.revoked = true
	f.mu.Unlock()
	clk.Advance(f.ttl)
	_, err := st.Credential(context.Background(), server, nil, false)
	var se *SessionError
	if !errors.As(err, &se) || se.Ended == "" || !strings.Contains(err.Error(), "berth login "+server) {
		t.Fatalf("refused refresh: %v, want a SessionError saying to sign in again", err)
	}
	data, _ := os.ReadFile(st.Path())
	if strings.Contains(string(data), "brt_") || strings.Contains(string(data), "at-") {
		t.Errorf("an ended session's tokens are still stored:\n%s", data)
	}
	_, before := f.counts()
	_, err = st.Credential(context.Background(), server, nil, false)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "has ended") {
		t.Errorf("again: %v", err)
	}
	if _, after := f.counts(); after != before {
		t.Error("an ended session was asked about again")
	}
}

func TestBerthUnreachableServesTheCachedTokenToItsEnd(t *testing.T) {
	f := newFakeBerth(t)
	st, clk, server := signedIn(t, f)
	first, _ := st.Credential(context.Background(), server, nil, false)
	f.mu.Lock()
	f.failWith = 503
	f.mu.Unlock()
	clk.Advance(f.ttl - RefreshMargin(f.ttl) + time.Second) // inside the margin, not expired
	c, err := st.Credential(context.Background(), server, nil, false)
	if err != nil || c.Token != first.Token || !c.ExpiresAt.Equal(first.ExpiresAt.Add(RefreshMargin(f.ttl))) {
		t.Fatalf("Berth unavailable inside the margin: %v; want the cached token to its true expiry", err)
	}
	clk.Advance(RefreshMargin(f.ttl))
	if _, err := st.Credential(context.Background(), server, nil, false); err == nil || !strings.Contains(err.Error(), "try later") {
		t.Errorf("expired and Berth unavailable: %v, want Berth's message", err)
	}
}

func TestStoreRefusesFilesOthersCanRead(t *testing.T) {
	f := newFakeBerth(t)
	st, _, server := signedIn(t, f)
	if fi, err := os.Stat(st.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	if fi, _ := os.Stat(st.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	os.Chmod(st.Path(), 0o640)
	if _, err := st.Credential(context.Background(), server, nil, false); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable file: %v, want a refusal", err)
	}
	os.Chmod(st.Path(), 0o600)
	os.Chmod(st.Dir, 0o777)
	if _, err := st.Credential(context.Background(), server, nil, false); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("world-writable directory: %v, want a refusal", err)
	}
}

func TestLogoutForgetsTheServer(t *testing.T) {
	f := newFakeBerth(t)
	st, _, server := signedIn(t, f)
	if err := st.Logout(context.Background(), server); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	told := f.revoked
	f.mu.Unlock()
	if !told {
		t.Error("Berth was not told to end the session")
	}
	if _, err := st.Resolve(""); err == nil {
		t.Error("still signed in after logout")
	}
	data, _ := os.ReadFile(st.Path())
	if strings.Contains(string(data), server) {
		t.Errorf("the server is still stored:\n%s", data)
	}
}

func TestParseServer(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://Berth.Example.com:8443/", "https://berth.example.com:8443", true},
		{"https://berth.example.com/edge/", "https://berth.example.com/edge", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"http://localhost:8080", "http://localhost:8080", true},
		{"http://berth.example.com", "", false}, // a password in clear over a network
		{"berth.example.com", "", false},
		{"https://user:pw@berth.example.com", "", false},
		{"https://berth.example.com/?x=1", "", false},
		{"ftp://berth.example.com", "", false},
	}
	for _, tt := range tests {
		got, err := ParseServer(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseServer(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestAPIErrorCarriesBerthsMessage(t *testing.T) {
	f := newFakeBerth(t)
	cl := &Client{Server: f.srv.URL, HTTP: f.srv.Client()}
	_, err := cl.Login(context.Background(), "alice", "wrong")
	if err == nil || !strings.Contains(err.Error(), "invalid username or password") || !IsUnauthenticated(err) {
		t.Errorf("wrong password: %v", err)
	}
}
