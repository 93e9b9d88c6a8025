//go:build unix

package kubeenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVersionMatchesToolsModule keeps Version in step with the tools module
// that build-k8s.sh builds from.
func TestVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "k8s", "go.mod"))
	if err != nil {
		t.Fatalf("reading the tools module: %v", err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("deploy/e2e/k8s/go.mod does not require k8s.io/kubernetes")
	}
	if got := string(m[1]); got != Version {
		t.Fatalf("deploy/e2e/k8s/go.mod pins k8s.io/kubernetes %s but kubeenv.Version is %s", got, Version)
	}
	want := "v0" + strings.TrimPrefix(Version, "v1")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[1] == "=>" && strings.HasPrefix(f[0], "k8s.io/") && f[3] != want {
			t.Errorf("replace %s => %s %s, want %s", f[0], f[2], f[3], want)
		}
	}
}

func TestWritePKI(t *testing.T) {
	p, err := writePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.caCertPEM) {
		t.Fatal("CA PEM does not parse")
	}
	pair, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		t.Fatalf("loading the serving pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost", "::1", "kubernetes.default.svc", serviceIP} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("serving cert does not verify for %s: %v", name, err)
		}
	}
	for _, f := range []string{p.saKeyFile, p.saPubFile} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := pem.Decode(data); b == nil {
			t.Errorf("%s is not PEM", f)
		}
	}
	tokens, err := os.ReadFile(p.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tokens), p.adminToken+","+AdminUser+",") || !strings.Contains(string(tokens), `"system:masters"`) {
		t.Errorf("token file lacks the admin line:\n%s", tokens)
	}
	if !strings.Contains(string(tokens), p.userToken+","+UnprivilegedUser+",") {
		t.Errorf("token file lacks the unprivileged line:\n%s", tokens)
	}
}

func TestWriteKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kc")
	ca := []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	if err := WriteKubeconfig(path, "https://127.0.0.1:1/proxy/clusters/a b", `to"ken`, ca); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	var cfg kubeconfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("kubeconfig is not JSON: %v\n%s", err, data)
	}
	if cfg.CurrentContext == "" || len(cfg.Clusters) != 1 || cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:1/proxy/clusters/a b" ||
		string(cfg.Clusters[0].Cluster.CertificateAuthorityData) != string(ca) || cfg.Users[0].User.Token != `to"ken` {
		t.Errorf("unexpected kubeconfig:\n%s", data)
	}
	if err := WriteKubeconfig(path, "", "t", nil); err == nil {
		t.Error("empty server accepted")
	}
}

// recordingTB records Fatalf/Skipf instead of ending the real test.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runMustBinaries(t *testing.T) *recordingTB {
	r := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		MustBinaries(r)
	}()
	<-done
	return r
}

func TestMustBinariesFailsUnderE2E(t *testing.T) {
	t.Setenv(EnvKubectl, filepath.Join(t.TempDir(), "no-kubectl"))

	t.Setenv(EnvE2E, "1")
	r := runMustBinaries(t)
	if r.fatal == "" || r.skip != "" {
		t.Errorf("BERTH_E2E=1 with kubectl missing: fatal=%q skip=%q, want a failure", r.fatal, r.skip)
	}
	if !strings.Contains(r.fatal, "no-kubectl") {
		t.Errorf("failure does not name the missing binary: %s", r.fatal)
	}

	t.Setenv(EnvE2E, "")
	r = runMustBinaries(t)
	if r.skip == "" || r.fatal != "" {
		t.Errorf("BERTH_E2E unset with kubectl missing: fatal=%q skip=%q, want a skip", r.fatal, r.skip)
	}
	if _, ok := Available(); ok {
		t.Error("Available() = ok with kubectl missing")
	}
}

// TestControlPlane starts the real environment and checks what Berth's
// tests rely on: the pinned version, the system namespaces, RBAC, bootstrap
// tokens, and a clean stop.
func TestControlPlane(t *testing.T) {
	env := ForTest(t, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	t.Logf("apiserver %s (pid %d), etcd %s (pid %d), logs in %s", env.Server, env.APIServerPID, env.EtcdURL, env.EtcdPID, filepath.Dir(env.APIServerLog))

	t.Run("version", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.Server+"/version", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+env.AdminToken)
		resp, err := env.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("GET /version: %v", err)
		}
		defer resp.Body.Close()
		var v struct {
			Major, Minor, GitVersion, BuildDate string
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("decoding /version: %v", err)
		}
		if resp.StatusCode != http.StatusOK || v.GitVersion != Version {
			t.Fatalf("/version: %s %+v, want gitVersion %s", resp.Status, v, Version)
		}
		wantMinor := strings.Split(Version, ".")[1]
		if v.Major != "1" || v.Minor != wantMinor || v.BuildDate == "" {
			t.Errorf("/version: %+v, want major 1, minor %s and a build date", v, wantMinor)
		}

		out, err := env.Kubectl(ctx, "version", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var kv struct {
			ClientVersion, ServerVersion struct{ GitVersion string }
		}
		if err := json.Unmarshal(out, &kv); err != nil {
			t.Fatalf("decoding kubectl version: %v\n%s", err, out)
		}
		if kv.ClientVersion.GitVersion != Version || kv.ServerVersion.GitVersion != Version {
			t.Errorf("kubectl version: client %s server %s, want %s", kv.ClientVersion.GitVersion, kv.ServerVersion.GitVersion, Version)
		}
	})

	t.Run("namespaces", func(t *testing.T) {
		// The apiserver creates the system namespaces right after it starts;
		// /readyz does not wait for that, so allow a little time.
		var out []byte
		var err error
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err = env.Kubectl(ctx, "get", "ns", "-o", "name")
			if err == nil && strings.Contains(string(out), "namespace/default\n") && strings.Contains(string(out), "namespace/kube-system\n") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl get ns: err=%v, output:\n%s", err, out)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	t.Run("rbac", func(t *testing.T) {
		if _, err := env.Kubectl(ctx, "get", "pods", "-A"); err != nil {
			t.Fatalf("admin cannot list pods: %v", err)
		}
		out, err := env.KubectlWith(ctx, env.UserKubeconfig, "get", "pods", "-A")
		if err == nil {
			t.Fatalf("unprivileged user listed pods in all namespaces:\n%s", out)
		}
		msg := err.Error()
		if !strings.Contains(msg, "Forbidden") || !strings.Contains(msg, UnprivilegedUser) {
			t.Fatalf("want Forbidden for %s, got: %v", UnprivilegedUser, err)
		}
	})

	t.Run("bootstrap-token", func(t *testing.T) {
		id, secret := randomLowerAlnum(t, 6), randomLowerAlnum(t, 16)
		manifest := map[string]any{
			"apiVersion": "v1",
			"kind":       "Secret",
			"metadata":   map[string]any{"name": "bootstrap-token-" + id, "namespace": "kube-system"},
			"type":       "bootstrap.kubernetes.io/token",
			"stringData": map[string]string{
				"token-id":                       id,
				"token-secret":                   secret,
				"usage-bootstrap-authentication": "true",
				"expiration":                     time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			},
		}
		data, err := json.Marshal(manifest)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(env.Dir, "bootstrap-token.json")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Kubectl(ctx, "apply", "-f", file); err != nil {
			t.Fatal(err)
		}
		kc := filepath.Join(env.Dir, "bootstrap.kubeconfig")
		if err := env.WriteKubeconfig(kc, env.Server, id+"."+secret, env.CAData); err != nil {
			t.Fatal(err)
		}
		// The authenticator reads Secrets through an informer: poll until
		// it has seen the new one.
		want := "system:bootstrap:" + id
		var out []byte
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err = env.KubectlWith(ctx, kc, "auth", "whoami", "-o", "json")
			if err == nil {
				var review struct {
					Status struct {
						UserInfo struct {
							Username string
							Groups   []string
						}
					}
				}
				if jerr := json.Unmarshal(out, &review); jerr != nil {
					t.Fatalf("decoding whoami: %v\n%s", jerr, out)
				}
				u := review.Status.UserInfo
				if u.Username != want || !slices.Contains(u.Groups, "system:bootstrappers") {
					t.Fatalf("bootstrap token authenticated as %q %v, want %q in system:bootstrappers", u.Username, u.Groups, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("bootstrap token never authenticated: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	t.Run("reset", func(t *testing.T) {
		if err := env.Mark(ctx); err != nil {
			t.Fatal(err)
		}
		kubectl := func(args ...string) string {
			t.Helper()
			out, err := env.Kubectl(ctx, args...)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(out))
		}
		// One of each change Reset undoes: a created namespace with an
		// object in it, a changed object, a deleted one.
		for round := range 2 {
			kubectl("create", "namespace", "scratch")
			kubectl("-n", "scratch", "create", "configmap", "left-over", "--from-literal=round="+strconv.Itoa(round))
			kubectl("label", "namespace", "default", "touched=yes")
			kubectl("delete", "clusterrole", "view")

			if err := env.Reset(ctx); err != nil {
				t.Fatalf("Reset (round %d): %v", round, err)
			}
			// The apiserver serves the reset objects: its watch cache
			// followed the writes in etcd.
			if out, err := env.Kubectl(ctx, "get", "namespace", "scratch", "-o", "name"); err == nil || !strings.Contains(err.Error(), "NotFound") {
				t.Errorf("round %d: namespace scratch after Reset: %q, %v; want NotFound", round, out, err)
			}
			if out, err := env.Kubectl(ctx, "get", "configmaps", "-A", "-o", "name"); err != nil || strings.Contains(string(out), "left-over") {
				t.Errorf("round %d: configmaps after Reset: %q, %v", round, out, err)
			}
			if labels := kubectl("get", "namespace", "default", "-o", "jsonpath={.metadata.labels}"); strings.Contains(labels, "touched") {
				t.Errorf("round %d: default's labels after Reset: %s", round, labels)
			}
			if got := kubectl("get", "clusterrole", "view", "-o", "name"); got != "clusterrole.rbac.authorization.k8s.io/view" {
				t.Errorf("round %d: clusterrole view after Reset: %q", round, got)
			}
		}
	})

	t.Run("stop", func(t *testing.T) {
		pids := []int{env.APIServerPID, env.EtcdPID}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("pid %d not running before Stop: %v", pid, err)
			}
		}
		if err := env.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		for _, pid := range pids {
			// Stop waited for the processes, so the pid and its process
			// group are gone (no zombie, nothing forked left behind).
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
			}
			if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process group %d still has members after Stop (kill 0: %v)", pid, err)
			}
		}
		if err := env.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
}

func randomLowerAlnum(t *testing.T, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
