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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// berth is a running gateway child and what the benchmark set up in it.
type berth struct {
	proc  *child
	addrs gatewayReady
	// client trusts the gateway's certificate; HTTP/1.1 only, as Berth
	// serves.
	client *http.Client
	// token is the access token (JWT) of the benchmark user, a plain user
	// who is a "view" member of every cluster.
	token string
}

const (
	adminPassword = "bench-Admin-Password-1"
	benchUser     = "bench"
	benchPassword = "bench-User-Password-1"
	// proxyRate is the proxy scope's per-principal limit during the
	// benchmark: the limiter runs on every request but never refuses.
	proxyRate = "100000000"
)

// startBerth starts the gateway child with the benchmark's configuration
// plus extraEnv, named name (its log is dir/name.log).
func startBerth(dir, name string, extraEnv []string) (*berth, error) {
	dataDir := filepath.Join(dir, name+"-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("berth data dir: %w", err)
	}
	ready, certOut := filepath.Join(dir, name+".ready"), filepath.Join(dir, name+"-cert.pem")
	env := []string{
		"BERTH_DATA_DIR=" + dataDir,
		"BERTH_HTTP_ADDR=127.0.0.1:0",
		"BERTH_HTTPS_ADDR=127.0.0.1:0",
		"BERTH_ADMIN_PASSWORD=" + adminPassword,
		// Set-up calls (logins, registrations) must not be throttled.
		"BERTH_RATE_LIMITS_AUTH_REQUESTS=0",
		"BERTH_RATE_LIMITS_API_REQUESTS=0",
		"BERTH_RATE_LIMITS_API_USER_REQUESTS=0",
		"BERTH_AUTH_LOCKOUT_MAX_FAILURES=0",
		// The proxy limiter stays on, with a limit no run reaches.
		"BERTH_RATE_LIMITS_PROXY_REQUESTS=" + proxyRate,
		"BERTH_RATE_LIMITS_PROXY_PER=1s",
		"BERTH_RATE_LIMITS_PROXY_BURST=" + proxyRate,
		// And so does the per-user scope applied after it (proxy_user,
		// added after this benchmark was written: without these lines
		// every run fails with 429s past its default of 100/s).
		"BERTH_RATE_LIMITS_PROXY_USER_REQUESTS=" + proxyRate,
		"BERTH_RATE_LIMITS_PROXY_USER_PER=1s",
		"BERTH_RATE_LIMITS_PROXY_USER_BURST=" + proxyRate,
		// The stream limits stay on too, above the watch case's one user
		// with up to 5 000 watches (the defaults, 64 per user, were added
		// after this benchmark was written and refused its 65th watch).
		"BERTH_PROXY_MAX_STREAMS_PER_CLUSTER=6000",
		"BERTH_PROXY_MAX_STREAMS_PER_USER=6000",
		// One token for the whole run (default 15m).
		"BERTH_AUTH_ACCESS_TOKEN_TTL=3h",
	}
	env = append(env, extraEnv...)
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating this program: %w", err)
	}
	logFile := filepath.Join(dir, name+".log")
	proc, err := startChild(name, logFile, env, self, "gateway", "-ready", ready, "-cert-out", certOut)
	if err != nil {
		return nil, err
	}
	data, err := waitFile(proc, ready, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, logFile)
	}
	b := &berth{proc: proc}
	if err := json.Unmarshal(data, &b.addrs); err != nil {
		return nil, fmt.Errorf("berth ready file: %w", err)
	}
	certPEM, err := os.ReadFile(certOut)
	if err != nil {
		return nil, fmt.Errorf("berth certificate: %w", err)
	}
	b.client, err = trustingClient(certPEM)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// trustingClient is an HTTP/1.1 client that trusts caPEM, with enough idle
// connections for the benchmark's concurrency.
func trustingClient(caPEM []byte) (*http.Client, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in the PEM given")
	}
	return &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConns:        2048,
			MaxIdleConnsPerHost: 2048,
			DisableCompression:  true,
		},
	}, nil
}

// api calls Berth's REST API over HTTPS and decodes a JSON answer into out
// (when not nil); a status other than want is an error.
func (b *berth) api(ctx context.Context, want int, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+b.addrs.HTTPS+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

func (b *berth) login(ctx context.Context, user, password string) (string, error) {
	var tp struct {
		AccessToken string `json:"access_token"`
	}
	if err := b.api(ctx, 200, "POST", "/api/v1/auth/login", "", map[string]any{"username": user, "password": password}, &tp); err != nil {
		return "", err
	}
	return tp.AccessToken, nil
}

// clusterSpec is a cluster to register in Berth.
type clusterSpec struct {
	Name, Server, Token string
	CA                  []byte
}

// setUp creates the benchmark user, registers the clusters, makes the user
// a view member of each and logs the user in.
func (b *berth) setUp(ctx context.Context, clusters []clusterSpec) error {
	admin, err := b.login(ctx, "admin", adminPassword)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	if err := b.api(ctx, 201, "POST", "/api/v1/users", admin, map[string]any{"username": benchUser, "password": benchPassword, "roles": []string{"user"}}, nil); err != nil {
		return err
	}
	for _, c := range clusters {
		if err := b.api(ctx, 201, "POST", "/api/v1/clusters", admin, map[string]any{
			"name": c.Name, "server": c.Server, "token": c.Token,
			"certificate_authority_data": base64.StdEncoding.EncodeToString(c.CA),
		}, nil); err != nil {
			return err
		}
		if err := b.api(ctx, 201, "POST", "/api/v1/clusters/"+c.Name+"/members", admin, map[string]any{"user": benchUser, "role": "view"}, nil); err != nil {
			return err
		}
	}
	b.token, err = b.login(ctx, benchUser, benchPassword)
	if err != nil {
		return fmt.Errorf("bench user login: %w", err)
	}
	return nil
}

// mem asks the gateway for its memory after a forced GC, and reads its RSS.
func (b *berth) mem(ctx context.Context) (memStats, int64, error) {
	var m memStats
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.addrs.Debug+"/bench/mem", nil)
	if err != nil {
		return m, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, 0, fmt.Errorf("gateway /bench/mem: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return m, 0, fmt.Errorf("gateway /bench/mem: %w", err)
	}
	rss, err := rssBytes(b.proc.pid())
	return m, rss, err
}

// idle waits idleWait, reads the gateway's memory from /proc, then asks
// for the runtime's after a forced GC (which changes what /proc would say,
// hence the order).
func (b *berth) idle(ctx context.Context) (*idleResult, error) {
	select {
	case <-time.After(idleWait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p, err := readProcMem(b.proc.pid())
	if err != nil {
		return nil, err
	}
	m, _, err := b.mem(ctx)
	if err != nil {
		return nil, err
	}
	return &idleResult{Proc: p, Runtime: m}, nil
}

// debugGet calls the gateway's debug listener and returns the body.
func (b *berth) debugGet(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.addrs.Debug+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("gateway %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("gateway %s: %w", path, err)
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("gateway %s: %s: %s", path, resp.Status, data)
	}
	return strings.TrimSpace(string(data)), nil
}

// kubeRBAC is applied in the benchmark's cluster: Berth's identity (the
// unprivileged user) gets the documented impersonator role from
// deploy/rbac/berth-rbac.yaml, and Berth's "view" role a read-only role
// (the built-in view role is empty here: its rules are aggregated by
// kube-controller-manager, which kubeenv does not run).
const kubeReadOnly = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bench-read-only}
rules:
- apiGroups: [""]
  resources: ["configmaps", "pods", "namespaces"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-berth-role-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bench-read-only}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "berth:role:view"}]
---
apiVersion: v1
kind: Namespace
metadata: {name: bench-watch}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: seed, namespace: bench-watch}
data: {hello: world}
`

// startKube starts etcd and kube-apiserver and applies the RBAC above.
func startKube(ctx context.Context, dir, repo string) (*kubeenv.Env, error) {
	env, err := kubeenv.Start(ctx, kubeenv.Options{Dir: filepath.Join(dir, "kube")})
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w (build the binaries with deploy/e2e/build-k8s.sh)", err)
	}
	manifest, err := os.ReadFile(filepath.Join(repo, "deploy/rbac/berth-rbac.yaml"))
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("reading the RBAC manifest: %w", err)
	}
	rbac := filepath.Join(dir, "rbac.yaml")
	all := strings.ReplaceAll(string(manifest), "BERTH_GATEWAY_USER", kubeenv.UnprivilegedUser) + "\n---\n" + kubeReadOnly
	if err := os.WriteFile(rbac, []byte(all), 0o600); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("writing the RBAC manifest: %w", err)
	}
	if out, err := env.Kubectl(ctx, "apply", "-f", rbac); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("kubectl apply: %w\n%s", err, out)
	}
	return env, nil
}

// saveDebug writes the answer of a debug-listener path (a profile) to file.
func (b *berth) saveDebug(ctx context.Context, path, file string) error {
	data, err := b.debugGet(ctx, path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// startStoreEtcd starts the etcd that berth-etcd keeps its store in (-etcd): Debian's
// etcd as the tests run it (deploy/e2e/etcdenv), members on loopback.
func startStoreEtcd(ctx context.Context, dir string, members int) (*etcdenv.Cluster, error) {
	bin, err := exec.LookPath("etcd")
	if bins, ferr := kubeenv.FindBinaries(); bins.Etcd != "" {
		bin, err = bins.Etcd, nil
	} else if err != nil {
		return nil, fmt.Errorf("etcd not found (apt-get install etcd-server): %w; %v", err, ferr)
	}
	logf("starting etcd (%d members) for berth-etcd", members)
	etcdDir := filepath.Join(dir, "berth-etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return nil, err
	}
	return etcdenv.Start(ctx, bin, etcdDir, members)
}
