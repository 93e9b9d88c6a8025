package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
)

// Moving a single-node edge to a replicated one: back up the Badger data
// directory, restore into etcd, run two replicas on it (a token signed by
// one is good on the other), and come back the same way.
func TestMoveEdgeBetweenBadgerAndEtcd(t *testing.T) {
	const password = "admin-password-0123"
	root := t.TempDir()
	data := filepath.Join(root, "edge")
	edge := append(baseEnv(data), "BERTH_ADMIN_PASSWORD="+password)
	s := startServer(t, edge)
	healthy(t, s.http)
	s.stop(t, syscall.SIGTERM)
	bak := filepath.Join(root, "edge.bak")
	if out, stderr, code := run(t, edge, "backup", "--out", bak); code != 0 || !strings.Contains(out, "data directory") {
		t.Fatalf("backup: %d %q %q", code, out, stderr)
	}

	c := etcdenv.ForTest(t, 1)
	key, err := os.ReadFile(filepath.Join(data, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	replica := func(name string) []string {
		return append(baseEnv(filepath.Join(root, name)),
			"BERTH_STORE_BACKEND=etcd",
			"BERTH_STORE_ETCD_ENDPOINTS="+strings.Join(c.Endpoints(), ","),
			"BERTH_SECRET_KEY="+strings.TrimSpace(string(key)),
			// The per-address sign-in rate limit (per replica by design)
			// would answer before the lockout this test counts.
			"BERTH_RATE_LIMITS_AUTH_REQUESTS=0")
	}
	// Without the shared key an etcd replica refuses to start.
	noKey := slices.DeleteFunc(replica("nokey"), func(v string) bool { return strings.HasPrefix(v, "BERTH_SECRET_KEY=") })
	if _, stderr, code := run(t, noKey, "config", "check"); code == 0 || !strings.Contains(stderr, "secret_key") {
		t.Errorf("etcd without secret_key: %d %q", code, stderr)
	}
	out, stderr, code := run(t, replica("r1"), "restore", "--in", bak)
	if code != 0 || !strings.Contains(out, "into etcd") {
		t.Fatalf("restore into etcd: %d %q %q", code, out, stderr)
	}
	if _, stderr, code := run(t, replica("r1"), "restore", "--in", bak); code == 0 || !strings.Contains(stderr, "not empty") {
		t.Errorf("second restore into etcd: %d %q", code, stderr)
	}

	r1, r2 := startServer(t, replica("r1")), startServer(t, replica("r2"))
	for _, r := range []*server{r1, r2} {
		if strings.Contains(r.Stdout(), "password") {
			t.Errorf("a replica on the restored store created a new admin: %q", r.Stdout())
		}
		ready(t, r.http)
	}
	token := login(t, r1.http, "admin", password)
	if status := me(t, r2.http, token); status != 200 {
		t.Errorf("a token from replica 1 on replica 2: %d", status)
	}
	// Revoked through one replica, refused through the other, whose cache
	// had just accepted it: the revocation reaches it through etcd's watch.
	var apiKey struct{ ID, Key string }
	if status := call(t, "POST", r1.http+"/api/v1/auth/api-keys", token, `{"name":"ci"}`, &apiKey); status != 201 {
		t.Fatalf("create API key: %d", status)
	}
	if status := me(t, r2.http, apiKey.Key); status != 200 {
		t.Fatalf("API key on replica 2: %d", status)
	}
	if status := call(t, "DELETE", r1.http+"/api/v1/auth/api-keys/"+apiKey.ID, token, "", nil); status != 204 {
		t.Fatalf("revoke API key: %d", status)
	}
	refusedSoon(t, "the revoked API key", func() int { return me(t, r2.http, apiKey.Key) })
	second := login(t, r2.http, "admin", password)
	if status := me(t, r1.http, second); status != 200 {
		t.Fatalf("a token from replica 2 on replica 1: %d", status)
	}
	if status := call(t, "POST", r2.http+"/api/v1/auth/logout", second, "", nil); status != 204 && status != 200 {
		t.Fatalf("sign out: %d", status)
	}
	refusedSoon(t, "the signed-out session", func() int { return me(t, r1.http, second) })

	// The sign-in lockout counts across replicas: five wrong passwords
	// for one name, spread over both, lock it on both.
	for i := range 5 {
		r := []*server{r1, r2}[i%2]
		if status := signIn(t, r.http, "mallory", "not-the-password-1"); status != 401 {
			t.Fatalf("wrong password %d on replica %d: %d, want 401", i+1, i%2+1, status)
		}
	}
	for i, r := range []*server{r1, r2} {
		if status := signIn(t, r.http, "mallory", "not-the-password-1"); status != 429 {
			t.Errorf("a sixth attempt on replica %d: %d, want 429 (locked)", i+1, status)
		}
	}

	// The signing key withdrawn after a leak through one replica: the
	// other refuses the tokens it signed and signs with the new key, which
	// the first accepts.
	third := login(t, r2.http, "admin", password)
	if status := call(t, "POST", r1.http+"/api/v1/signing-keys/rotate", login(t, r1.http, "admin", password), `{"retire_previous":true}`, nil); status != 201 {
		t.Fatalf("rotate the signing key: %d", status)
	}
	refusedSoon(t, "a token of the withdrawn key", func() int { return me(t, r2.http, third) })
	if status := me(t, r1.http, login(t, r2.http, "admin", password)); status != 200 {
		t.Errorf("a token signed by replica 2 after the rotation, on replica 1: %d", status)
	}

	// etcd lost: the replicas are not ready, and within GrantStaleness
	// (5 s) a request that needs what only etcd can confirm is 503, not
	// answered from a cache that may have missed a revocation. Back when
	// etcd is.
	fresh := login(t, r1.http, "admin", password)
	c.Kill(0)
	until(t, "not ready without etcd", func() bool { return status(t, r1.http+"/readyz") == 503 })
	until(t, "503 without etcd", func() bool { return me(t, r1.http, fresh) == 503 })
	if err := c.Restart(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	until(t, "ready again", func() bool { return status(t, r1.http+"/readyz") == 200 && status(t, r2.http+"/readyz") == 200 })
	until(t, "the token good again", func() bool { return me(t, r1.http, fresh) == 200 })

	// And back: a backup of etcd (taken while the replicas run) restores
	// into a new Badger directory.
	back := filepath.Join(root, "etcd.bak")
	if out, stderr, code := run(t, replica("r1"), "backup", "--out", back); code != 0 || !strings.Contains(out, "from etcd") {
		t.Fatalf("backup of etcd: %d %q %q", code, out, stderr)
	}
	r1.stop(t, syscall.SIGTERM)
	r2.stop(t, syscall.SIGTERM)
	home := filepath.Join(root, "home")
	again := append(baseEnv(home), "BERTH_SECRET_KEY="+strings.TrimSpace(string(key)))
	if out, stderr, code := run(t, again, "restore", "--in", back); code != 0 {
		t.Fatalf("restore into badger: %d %q %q", code, out, stderr)
	}
	s = startServer(t, again)
	if status := me(t, s.http, login(t, s.http, "admin", password)); status != 200 {
		t.Errorf("signed in on the edge restored from etcd: %d", status)
	}
	s.stop(t, syscall.SIGTERM)
}

// refusedSoon waits, bounded, for status to become 401: the other
// replica learns of a revocation a moment after it commits.
func refusedSoon(t *testing.T, what string, status func() int) {
	t.Helper()
	last := 0
	for range 100 {
		if last = status(); last == 401 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s still answered %d on the other replica after 10 s", what, last)
}

// until polls cond, bounded (30 s).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 300 {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("never %s", what)
}

// status is the status of a GET of url.
func status(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// call sends a JSON request with a bearer token and decodes the answer
// into out when it is not nil.
func call(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

func ready(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s/readyz: %d", base, resp.StatusCode)
	}
}

func login(t *testing.T, base, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.AccessToken == "" {
		t.Fatalf("login at %s: %d %v", base, resp.StatusCode, err)
	}
	return out.AccessToken
}

// signIn tries a password and returns the status.
func signIn(t *testing.T, base, user, password string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func me(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
