package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests need no Kubernetes binaries; the users of the package
// (deploy/e2e/kubeenv, plugins/provisioner-local) run real control planes.

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	ca, err := NewCA("test-ca", time.Hour, f("ca.crt"), f("ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	serving := APIServerLeaf("10.0.0.1")
	serving.Lifetime, serving.CertFile, serving.KeyFile = time.Hour, f("apiserver.crt"), f("apiserver.key")
	if err := ca.Issue(serving); err != nil {
		t.Fatal(err)
	}
	client := Leaf{CommonName: "alice", Organizations: []string{"system:masters"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		Lifetime: time.Hour, CertFile: f("alice.crt"), KeyFile: f("alice.key")}
	if err := ca.Issue(client); err != nil {
		t.Fatal(err)
	}
	if err := WriteServiceAccountKeys(f("sa.key"), f("sa.pub")); err != nil {
		t.Fatal(err)
	}

	onDisk, err := os.ReadFile(f("ca.crt"))
	if err != nil || string(onDisk) != string(ca.CertPEM) {
		t.Fatalf("ca.crt differs from CertPEM (%v)", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	leaf := func(cert, key string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(f(cert), f(key))
		if err != nil {
			t.Fatalf("loading %s: %v", cert, err)
		}
		c, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv := leaf("apiserver.crt", "apiserver.key")
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.0.0.1"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", name, err)
		}
	}
	alice := leaf("alice.crt", "alice.key")
	if _, err := alice.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if alice.Subject.CommonName != "alice" || !slices.Equal(alice.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("client subject %v", alice.Subject)
	}
	if time.Until(alice.NotAfter) > time.Hour || time.Since(alice.NotBefore) < 59*time.Minute {
		t.Errorf("validity %s to %s, want an hour ago to an hour from now", alice.NotBefore, alice.NotAfter)
	}
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600, "apiserver.key": 0o600, "alice.key": 0o600, "sa.key": 0o600, "sa.pub": 0o644} {
		st, err := os.Stat(f(name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", name, st.Mode().Perm(), err, mode)
		}
	}
	pub, _ := os.ReadFile(f("sa.pub"))
	if b, _ := pem.Decode(pub); b == nil || b.Type != "PUBLIC KEY" {
		t.Errorf("sa.pub is not a PEM public key:\n%s", pub)
	}
}

func TestArgs(t *testing.T) {
	plain := Etcd{Name: "m", DataDir: "/d", ClientURL: "http://127.0.0.1:1", PeerURL: "http://127.0.0.1:2"}.Args()
	tlsArgs := Etcd{Name: "m", DataDir: "/d", ClientURL: "https://127.0.0.1:1", PeerURL: "https://127.0.0.1:2",
		CertFile: "/c", KeyFile: "/k", TrustedCAFile: "/ca", Extra: []string{"--snapshot-count=1"}}.Args()
	api := APIServer{EtcdURL: "https://127.0.0.1:1", EtcdCAFile: "/eca", EtcdCertFile: "/ec", EtcdKeyFile: "/ek", Port: 6443,
		CertFile: "/s.crt", ServiceCIDR: "10.0.0.0/24", Extra: []string{"--allow-privileged=true"}}.Args()
	for _, tc := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"etcd", plain, []string{"--data-dir=/d", "--initial-cluster=m=http://127.0.0.1:2", "--listen-client-urls=http://127.0.0.1:1"}, []string{"--client-cert-auth=true"}},
		{"etcd over TLS", tlsArgs, []string{"--client-cert-auth=true", "--peer-client-cert-auth=true", "--peer-trusted-ca-file=/ca", "--snapshot-count=1"}, nil},
		{"apiserver", api, []string{"--etcd-certfile=/ec", "--secure-port=6443", "--tls-cert-file=/s.crt", "--service-account-issuer=" + ServiceAccountIssuer,
			"--authorization-mode=Node,RBAC", "--disable-admission-plugins=ServiceAccount", "--allow-privileged=true"}, nil},
	} {
		for _, w := range tc.want {
			if !slices.Contains(tc.args, w) {
				t.Errorf("%s: %q missing from %v", tc.name, w, tc.args)
			}
		}
		for _, n := range tc.not {
			if slices.Contains(tc.args, n) {
				t.Errorf("%s: %q in %v", tc.name, n, tc.args)
			}
		}
	}
}

func TestFind(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(EnvCacheDir, cache)
	bin, err := CacheBinDir()
	if err != nil || bin != filepath.Join(cache, "k8s", PinnedVersion, "bin") {
		t.Fatalf("CacheBinDir() = %q, %v", bin, err)
	}
	onPath := t.TempDir()
	t.Setenv("PATH", onPath)
	for _, dir := range []string{bin, onPath} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		places  []Place
		want    string
		wantErr string
	}{
		{"prog", []Place{InCache, InPATH}, filepath.Join(bin, "prog"), ""},
		{"prog", []Place{InPATH, InCache}, filepath.Join(onPath, "prog"), ""},
		{"noexec", []Place{InCache}, "", "noexec not found (tried " + filepath.Join(bin, "noexec") + ")"},
		{"missing", []Place{InPATH, InCache}, "", "missing not found (tried PATH, " + filepath.Join(bin, "missing") + ")"},
	} {
		got, err := Find(tc.name, tc.places...)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
			t.Errorf("Find(%s, %v) = %q, %v; want %q, %q", tc.name, tc.places, got, err, tc.want, tc.wantErr)
		}
	}
	if err := CheckExecutable(bin); err == nil {
		t.Error("a directory passed CheckExecutable")
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("ETCD_NAME", "x")
	t.Setenv("KUBECONFIG", "/k")
	t.Setenv("PLUGIN_X", "y")
	t.Setenv("KEEP_ME", "z")
	env := Environ("PLUGIN_")
	for _, kv := range env {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "PLUGIN_") {
			t.Errorf("%s kept", kv)
		}
	}
	if !slices.Contains(env, "KEEP_ME=z") {
		t.Error("KEEP_ME dropped")
	}
}

func TestHealthChecks(t *testing.T) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health" && healthy.Load():
			w.Write([]byte(`{"health":"true"}`))
		case r.URL.Path == "/health":
			w.Write([]byte(`{"health":"false"}`))
		case r.URL.Path == "/readyz" && r.Header.Get("Authorization") == "Bearer tok" && healthy.Load():
			w.Write([]byte("ok"))
		default:
			http.Error(w, "[-]etcd failed\nreadyz check failed", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	ctx := t.Context()
	if err := EtcdHealthy(ctx, srv.Client(), srv.URL); err == nil || !strings.Contains(err.Error(), `health="false"`) {
		t.Errorf("unhealthy etcd: %v", err)
	}
	if err := APIServerReady(ctx, srv.Client(), srv.URL, "tok"); err == nil || !strings.Contains(err.Error(), "readyz check failed") {
		t.Errorf("API server not ready: %v", err)
	}
	healthy.Store(true)
	if err := EtcdHealthy(ctx, srv.Client(), srv.URL); err != nil {
		t.Errorf("healthy etcd: %v", err)
	}
	if err := APIServerReady(ctx, srv.Client(), srv.URL, "tok"); err != nil {
		t.Errorf("ready API server: %v", err)
	}
}

func TestPoll(t *testing.T) {
	calls := 0
	err := Poll(t.Context(), func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, calls)
	}

	gone := errors.New("gone")
	calls = 0
	err = Poll(t.Context(), func(context.Context) error { calls++; return Permanent(gone) })
	if err != gone || calls != 1 {
		t.Errorf("Poll with a permanent error = %v after %d calls", err, calls)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 600*time.Millisecond)
	defer cancel()
	err = Poll(ctx, func(context.Context) error { return errors.New("still down") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still down") {
		t.Errorf("Poll past its deadline = %v, want the deadline and the last error", err)
	}
}
