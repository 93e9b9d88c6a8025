package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/gateway"
	"github.com/berthgw/berth/gateway/config"
)

// The client commands' end-to-end tests run this test binary itself as
// the berth command (and as kubectl's credential plugin), with its clock
// moved as far as the in-process Berth's: tokens expire in the test's
// time, not in fifteen real minutes.
const (
	envAsCLI     = "BERTH_TEST_AS_CLI"
	envClockFile = "BERTH_TEST_CLOCK_FILE"
)

// runAsCLI is TestMain's branch for those runs: the berth command with
// the shared clock.
func runAsCLI() {
	if path := os.Getenv(envClockFile); path != "" {
		clientNow = func() time.Time {
			data, _ := os.ReadFile(path)
			off, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			return time.Now().Add(time.Duration(off))
		}
	}
	main()
	os.Exit(0)
}

// offsetClock is real time plus an offset the test moves; the CLI
// processes read the offset from file.
type offsetClock struct {
	mu   sync.Mutex
	off  time.Duration
	file string
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) Advance(t *testing.T, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
	if err := os.WriteFile(c.file, []byte(strconv.FormatInt(int64(c.off), 10)), 0o600); err != nil {
		t.Fatal(err)
	}
}

const cliAdminPassword = "admin-password-for-the-cli-test"

// cliEnv is one Berth in this process, a real kube-apiserver registered
// in it as "e2e", and the berth command run as its users.
type cliEnv struct {
	t     *testing.T
	kube  *kubeenv.Env
	g     *gateway.Gateway
	clock *offsetClock
	base  string // Berth's HTTPS address
	ca    string // its self-signed certificate, as a file
	http  *http.Client
	admin string // an admin access token
	self  string // this test binary
	logs  bytes.Buffer
}

func startCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	kube := kubeenv.ForTest(t, kubeenv.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	// Berth's identity in the cluster is bound to the documented
	// impersonator role only; the view group may read what the test reads
	// (the built-in view role is aggregated by a controller this control
	// plane does not run).
	manifest, err := os.ReadFile("../../deploy/rbac/berth-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rbac := strings.ReplaceAll(string(manifest), "BERTH_GATEWAY_USER", kubeenv.UnprivilegedUser) + `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-read-only}
rules:
- apiGroups: [""]
  resources: ["configmaps", "namespaces"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-berth-role-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-read-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "berth:role:view"}]
`
	path := filepath.Join(dir, "rbac.yaml")
	os.WriteFile(path, []byte(rbac), 0o600)
	if out, err := kube.Kubectl(ctx, "apply", "-f", path); err != nil {
		t.Fatalf("apply rbac: %v\n%s", err, out)
	}

	clock := &offsetClock{file: filepath.Join(dir, "clock")}
	clock.Advance(t, 0)
	vars := map[string]string{
		"BERTH_DATA_DIR": t.TempDir(), "BERTH_HTTP_ADDR": "127.0.0.1:0", "BERTH_HTTPS_ADDR": "127.0.0.1:0",
		"BERTH_LOG_LEVEL": "debug", "BERTH_ADMIN_PASSWORD": cliAdminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS": "0", "BERTH_RATE_LIMITS_API_REQUESTS": "0", "BERTH_RATE_LIMITS_PROXY_REQUESTS": "0",
		"BERTH_RATE_LIMITS_API_USER_REQUESTS": "0", "BERTH_RATE_LIMITS_PROXY_USER_REQUESTS": "0",
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.SyncWrites = false
	e := &cliEnv{t: t, kube: kube, clock: clock}
	g, err := gateway.New(gateway.Options{Config: cfg, Clock: clock.Now, Stdout: io.Discard,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{b: &e.logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		g.Close()
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("Berth's log:\n%s", e.logs.String())
		}
	})
	e.g, e.base = g, "https://"+g.HTTPSAddr()
	e.ca = filepath.Join(dir, "berth-ca.crt")
	os.WriteFile(e.ca, g.CertificatePEM(), 0o600)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(g.CertificatePEM())
	e.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	if e.self, err = os.Executable(); err != nil {
		t.Fatal(err)
	}

	e.admin = e.login("admin", cliAdminPassword)
	e.must(201, "POST", "/api/v1/clusters", e.admin, map[string]any{
		"name": "e2e", "server": kube.Server, "token": kube.UserToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(kube.CAData),
	}, nil)
	return e
}

type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// call is one API request as token.
func (e *cliEnv) call(method, path, token string, in any) (int, []byte) {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, e.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (e *cliEnv) must(status int, method, path, token string, in, out any) {
	e.t.Helper()
	got, data := e.call(method, path, token, in)
	if got != status {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, got, data, status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *cliEnv) login(user, password string) string {
	e.t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	e.must(200, "POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": password}, &tok)
	return tok.AccessToken
}

// user is someone running berth and kubectl on their machine: their own
// configuration directory and home.
type user struct {
	e    *cliEnv
	env  []string
	home string
}

func (e *cliEnv) newUser() *user {
	home := e.t.TempDir()
	return &user{e: e, home: home, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		envAsCLI + "=1", envClockFile + "=" + e.clock.file,
	}}
}

// berth runs the berth command as u.
func (u *user) berth(stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(u.e.self, args...)
	cmd.Env, cmd.Stdin = u.env, strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (u *user) mustBerth(stdin string, args ...string) string {
	u.e.t.Helper()
	out, errOut, err := u.berth(stdin, args...)
	if err != nil {
		u.e.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// kubectl runs the pinned kubectl as u, with a discovery cache of u's own.
func (u *user) kubectl(ctx context.Context, kubeconfig string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, u.e.kube.KubectlPath, append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(u.home, "kube-cache")}, args...)...)
	cmd.Env = u.env
	return cmd
}

func (u *user) mustKubectl(kubeconfig string, args ...string) string {
	u.e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := u.kubectl(ctx, kubeconfig, args...).CombinedOutput()
	if err != nil {
		u.e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// refreshes counts Berth's successful token refreshes so far.
func (e *cliEnv) refreshes() int {
	e.t.Helper()
	var page struct {
		Items []struct {
			Result string `json:"result"`
		} `json:"items"`
	}
	// A new sign-in each time: the test's clock jumps past tokens' lives.
	e.must(200, "GET", "/api/v1/audit?action=refresh&limit=500", e.login("admin", cliAdminPassword), nil, &page)
	n := 0
	for _, ev := range page.Items {
		if ev.Result == "success" {
			n++
		}
	}
	return n
}

// lineWatcher collects a process's output lines.
type lineWatcher struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor polls until cond holds, or fails after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// The path with the real kubectl: sign in, a kubeconfig whose user
// is the credential plugin, kubectl through Berth; the access token
// expires during a long watch and is renewed once for several kubectls
// started at once, the watch going on; the session revoked elsewhere
// makes kubectl fail saying to sign in again.
func TestKubectlWithTheCredentialPlugin(t *testing.T) {
	e := startCLIEnv(t)
	ctx := context.Background()
	e.must(201, "POST", "/api/v1/users", e.admin, map[string]any{"username": "alice", "password": "alice-password-123"}, nil)
	e.must(201, "POST", "/api/v1/clusters/e2e/members", e.admin, map[string]any{"user": "alice", "role": "view"}, nil)
	for _, args := range [][]string{{"create", "namespace", "watched"}, {"-n", "watched", "create", "configmap", "first"}} {
		if out, err := e.kube.Kubectl(ctx, args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}

	alice := e.newUser()
	out := alice.mustBerth("alice-password-123\n", "login", e.base, "--username", "alice", "--password-stdin", "--certificate-authority", e.ca)
	if want := "Signed in to " + e.base + " as alice."; strings.TrimSpace(out) != want {
		t.Errorf("login said %q, want %q", out, want)
	}
	credFile := filepath.Join(alice.home, ".config", "berth", "credentials.json")
	if fi, err := os.Stat(credFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", err, fi)
	}
	if out := alice.mustBerth("", "whoami"); !strings.Contains(out, "alice") || !strings.Contains(out, e.base) {
		t.Errorf("whoami:\n%s", out)
	}
	out = alice.mustBerth("", "clusters")
	if fields := strings.Fields(strings.Split(out, "\n")[1]); len(fields) < 4 || fields[0] != "e2e" || fields[1] != "view" || fields[2] != "ready" || fields[3] != "reachable" {
		t.Errorf("clusters:\n%s", out)
	}
	var listed struct {
		Items []struct{ Name, Role string }
	}
	if err := json.Unmarshal([]byte(alice.mustBerth("", "clusters", "-o", "json")), &listed); err != nil || len(listed.Items) != 1 || listed.Items[0].Role != "view" {
		t.Errorf("clusters -o json: %v %+v", err, listed)
	}

	kc := filepath.Join(alice.home, "alice.kubeconfig")
	data := alice.mustBerth("", "kubeconfig", "e2e")
	os.WriteFile(kc, []byte(data), 0o600)
	for _, want := range []string{"server: " + e.base + "/proxy/clusters/e2e", "certificate-authority-data:", "command: " + e.self,
		"- credential", "- --cluster", "client.authentication.k8s.io/v1", "interactiveMode: Never"} {
		if !strings.Contains(data, want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(data, "token") {
		t.Errorf("the kubeconfig holds a token:\n%s", data)
	}
	if out := alice.mustKubectl(kc, "get", "namespaces"); !strings.Contains(out, "watched") {
		t.Errorf("kubectl get namespaces:\n%s", out)
	}
	if out := alice.mustKubectl(kc, "auth", "whoami"); !strings.Contains(out, "berth:alice") {
		t.Errorf("kubectl auth whoami:\n%s", out)
	}
	if n := e.refreshes(); n != 0 {
		t.Errorf("%d refreshes while the token was fresh, want 0", n)
	}

	// A long watch, opened with the first access token.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchOut lineWatcher
	watch := alice.kubectl(wctx, kc, "get", "configmaps", "-n", "watched", "--watch", "-o", "name")
	watch.Stdout, watch.Stderr = &watchOut, &watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	watchDone := make(chan error, 1)
	go func() { watchDone <- watch.Wait() }()
	// The list shows the first configmap; then configmaps are created
	// until the watch shows one: then it is open.
	waitFor(t, "the watch's list", func() bool { return strings.Contains(watchOut.String(), "configmap/first") })
	for i := 0; !strings.Contains(watchOut.String(), "configmap/before-"); i++ {
		if i > 600 {
			t.Fatalf("the watch never showed a configmap:\n%s", watchOut.String())
		}
		e.kube.Kubectl(ctx, "-n", "watched", "create", "configmap", fmt.Sprintf("before-%d", i))
		time.Sleep(100 * time.Millisecond)
	}

	// The access token expires (15 minutes and the 30 s leeway).
	e.clock.Advance(t, 16*time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	outs := make([][]byte, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			outs[i], errs[i] = alice.kubectl(cctx, kc, "get", "namespace", "watched", "-o", "name").CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Errorf("kubectl %d after the token's expiry: %v\n%s", i, errs[i], outs[i])
		}
	}
	if n := e.refreshes(); n != 1 {
		t.Errorf("%d refreshes for 4 kubectls started at once after the expiry, want 1", n)
	}
	if out := alice.mustKubectl(kc, "get", "namespace", "watched", "-o", "name"); !strings.Contains(out, "namespace/watched") {
		t.Errorf("after the refresh: %s", out)
	}
	// The watch outlived its token and the refresh.
	if out, err := e.kube.Kubectl(ctx, "-n", "watched", "create", "configmap", "after-refresh"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "the watch to show a configmap made after the refresh", func() bool {
		return strings.Contains(watchOut.String(), "configmap/after-refresh")
	})

	// The session is revoked from another device: alice signs in with the
	// API and ends the CLI's session.
	other := e.login("alice", "alice-password-123")
	var sessions struct {
		Items []struct {
			ID        string `json:"id"`
			UserAgent string `json:"user_agent"`
			Current   bool   `json:"current"`
		} `json:"items"`
	}
	e.must(200, "GET", "/api/v1/auth/sessions", other, nil, &sessions)
	revoked := 0
	for _, s := range sessions.Items {
		if !s.Current && strings.HasPrefix(s.UserAgent, "berth-cli/") {
			e.must(204, "DELETE", "/api/v1/auth/sessions/"+s.ID, other, nil, nil)
			revoked++
		}
	}
	if revoked != 1 {
		t.Fatalf("%d sessions of the CLI (user agent berth-cli/…), want 1: %+v", revoked, sessions.Items)
	}
	select {
	case <-watchDone:
	case <-time.After(time.Minute):
		t.Fatal("the watch went on after its session was revoked")
	}
	for i := 0; i < 2; i++ {
		// First with the cached token (refused by Berth, then the plugin
		// finds the session over), then with nothing left to try.
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := alice.kubectl(cctx, kc, "get", "namespaces").CombinedOutput()
		cancel()
		if err == nil {
			t.Fatalf("kubectl %d with a revoked session succeeded:\n%s", i, out)
		}
		if !strings.Contains(string(out), "has ended") || !strings.Contains(string(out), "berth login "+e.base) {
			t.Errorf("kubectl %d with a revoked session did not say to sign in again:\n%s", i, out)
		}
	}
	stored, _ := os.ReadFile(credFile)
	if strings.Contains(string(stored), "refresh_token") {
		t.Errorf("a revoked session's tokens are still stored:\n%s", stored)
	}

	// Signing in again repairs it, with the same kubeconfig.
	alice.mustBerth("alice-password-123\n", "login", e.base, "--username", "alice", "--password-stdin")
	alice.mustKubectl(kc, "get", "namespace", "watched")
	alice.mustBerth("", "logout")
	if _, errOut, err := alice.berth("", "clusters"); err == nil || !strings.Contains(errOut, "not signed in") {
		t.Errorf("clusters after logout: %v %s", err, errOut)
	}
}

// The other client commands against the same Berth, as an admin:
// join tokens, nodes, operations, a cluster that does not exist, and the
// refusals a script needs to see.
func TestClientCommandsAgainstBerth(t *testing.T) {
	e := startCLIEnv(t)
	admin := e.newUser()
	if _, errOut, err := admin.berth(cliAdminPassword+"\n", "login", e.base, "--username", "admin", "--password-stdin"); err == nil || !strings.Contains(errOut, "signed by an unknown authority") || !strings.Contains(errOut, "--certificate-authority") {
		t.Errorf("login without trusting the self-signed certificate: %v\n%s", err, errOut)
	}
	if _, errOut, err := admin.berth("wrong-password\n", "login", e.base, "--username", "admin", "--password-stdin", "--certificate-authority", e.ca); err == nil || !strings.HasPrefix(errOut, "berth: ") || !strings.Contains(errOut, "HTTP 401") {
		t.Errorf("a wrong password: %v\n%s", err, errOut)
	}
	_, errOut, err := admin.berth(cliAdminPassword+"\n", "login", e.base, "--username", "admin", "--password-stdin", "--insecure-skip-tls-verify")
	if err != nil || !strings.Contains(errOut, "warning: Berth's certificate is not verified") {
		t.Errorf("--insecure-skip-tls-verify: %v, no warning in %q", err, errOut)
	}
	admin.mustBerth(cliAdminPassword+"\n", "login", e.base, "--username", "admin", "--password-stdin", "--certificate-authority", e.ca)

	out := admin.mustBerth("", "join-token", "create", "e2e", "--ttl", "10m", "--max-uses", "2")
	if !strings.Contains(out, "curl -sfL '") || !strings.Contains(out, "/join?token=") {
		t.Errorf("join-token create:\n%s", out)
	}
	var jt struct {
		ID          string `json:"id"`
		JoinCommand string `json:"join_command"`
	}
	if err := json.Unmarshal([]byte(admin.mustBerth("", "join-token", "create", "e2e", "-o", "json")), &jt); err != nil || jt.ID == "" || jt.JoinCommand == "" {
		t.Errorf("join-token create -o json: %v %+v", err, jt)
	}
	node := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(node, []byte("apiVersion: v1\nkind: Node\nmetadata:\n  name: cli-node-1\n  labels: {node-role.kubernetes.io/worker: \"\"}\n"), 0o600)
	if out, err := e.kube.Kubectl(context.Background(), "apply", "-f", node); err != nil {
		t.Fatalf("create a node: %v\n%s", err, out)
	}
	if out := admin.mustBerth("", "nodes", "e2e"); !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "cli-node-1") {
		t.Errorf("nodes e2e:\n%s", out)
	}
	// Without a cluster: every cluster's nodes, each with its cluster.
	if out := admin.mustBerth("", "nodes"); !strings.HasPrefix(out, "CLUSTER") || !regexp.MustCompile(`(?m)^e2e\s+cli-node-1\s+NotReady\s+worker`).MatchString(out) {
		t.Errorf("nodes (the fleet):\n%s", out)
	}
	if out := admin.mustBerth("", "operations", "-o", "yaml"); strings.TrimSpace(out) != "items: []" {
		t.Errorf("operations -o yaml: %q", out)
	}
	for _, args := range [][]string{{"nodes", "nope"}, {"kubeconfig", "nope"}, {"operations", "watch", "op_nope"}, {"operations", "--status", "bogus"}} {
		_, errOut, err := admin.berth("", args...)
		if err == nil || !strings.HasPrefix(errOut, "berth: ") || !strings.Contains(errOut, "HTTP 4") {
			t.Errorf("berth %s: %v, stderr %q; want Berth's refusal and a non-zero exit", strings.Join(args, " "), err, errOut)
		}
	}
	for _, format := range []string{"json", "yaml"} {
		out := admin.mustBerth("", "whoami", "-o", format)
		if !strings.Contains(out, "admin") || strings.Contains(out, "access_token") {
			t.Errorf("whoami -o %s:\n%s", format, out)
		}
	}
}
