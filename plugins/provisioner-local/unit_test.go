package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
)

// These tests need no Kubernetes binaries.

func TestConfigDefaultsAndChecks(t *testing.T) {
	cfg, err := sdk.DecodeConfig[Config]([]byte(`{"data_dir": "/var/lib/berth/local"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxClusters != 4 || cfg.PortRangeStart != 17000 || cfg.PortRangeEnd != 17999 || cfg.StartTimeoutSec != 300 || cfg.StopOnExit {
		t.Errorf("defaults: %+v", cfg)
	}
	for bad, want := range map[string]string{
		`{}`:                                   `data_dir`,
		`{"data_dir": "relative"}`:             `not an absolute path`,
		`{"data_dir": "/d", "etcd_path": "e"}`: `etcd_path`,
		`{"data_dir": "/d", "port_range_start": 20000, "port_range_end": 19999}`:                    `below port_range_start`,
		`{"data_dir": "/d", "port_range_start": 20000, "port_range_end": 20010, "max_clusters": 4}`: `needs 12`,
		`{"data_dir": "/d", "max_cluster": 4}`:                                                      `unknown field`,
	} {
		_, err := sdk.DecodeConfig[Config]([]byte(bad))
		if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want ErrInvalidConfig mentioning %q", bad, err, want)
		}
	}
	var schema map[string]any
	if err := json.Unmarshal(sdk.SchemaFor[Config](), &schema); err != nil || schema["type"] != "object" {
		t.Errorf("schema: %v %v", schema, err)
	}
}

func TestFindBinariesConfigured(t *testing.T) {
	dir := t.TempDir()
	etcd := filepath.Join(dir, "etcd")
	if err := os.WriteFile(etcd, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := findBinaries(Config{EtcdPath: etcd, KubeAPIServerPath: filepath.Join(dir, "missing")})
	if err == nil || !strings.Contains(err.Error(), "kube_apiserver_path") || strings.Contains(err.Error(), `"etcd_path"`) {
		t.Errorf("error %v, want one naming kube_apiserver_path only", err)
	}
}

func TestNormalizeSpec(t *testing.T) {
	const have = "v1.31.14"
	for _, v := range []string{"", "1.31", "v1.31", "1.31.14", "v1.31.14", "1"} {
		s, err := normalizeSpec(sdk.ClusterSpec{Name: "a", KubernetesVersion: v}, have)
		if err != nil || s.KubernetesVersion != have {
			t.Errorf("version %q: %+v, %v", v, s, err)
		}
	}
	for _, spec := range []sdk.ClusterSpec{
		{Name: "a", KubernetesVersion: "1.3"},
		{Name: "a", KubernetesVersion: "1.31.1"},
		{Name: "a", KubernetesVersion: "1.31.14.1"},
		{Name: ""},
		{Name: "UPPER"},
		{Name: "-lead"},
		{Name: "trail-"},
		{Name: "../escape"},
		{Name: strings.Repeat("a", 41)},
		{Name: "a", Options: map[string]string{"region": "x"}},
		{Name: "a", Workers: sdk.Resources{MemoryBytes: -1}},
	} {
		if _, err := normalizeSpec(spec, have); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("%+v: error %v, want ErrInvalidArgument", spec, err)
		}
	}
	a, _ := normalizeSpec(sdk.ClusterSpec{Name: "a", KubernetesVersion: "1.31", Options: map[string]string{}}, have)
	b, _ := normalizeSpec(sdk.ClusterSpec{Name: "a"}, have)
	if !sameSpec(a, b) {
		t.Errorf("%+v and %+v should be the same spec", a, b)
	}
}

func TestPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := writePKI(dir); err != nil {
		t.Fatal(err)
	}
	if err := writePKI(dir); err == nil {
		t.Error("writing a PKI over an existing one succeeded")
	}
	cert := func(name string) *x509.Certificate {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, etcdCA := cert(fileCACert), cert(fileEtcdCACert)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	verify := func(c *x509.Certificate, usage x509.ExtKeyUsage) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	serving := cert(fileServingCert)
	if err := serving.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := serving.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := verify(serving, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("serving certificate: %v", err)
	}
	admin, gw := cert(fileAdminCert), cert(fileGatewayCert)
	if admin.Subject.CommonName != adminUser || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) || verify(admin, x509.ExtKeyUsageClientAuth) != nil {
		t.Errorf("admin certificate: %v %v", admin.Subject, verify(admin, x509.ExtKeyUsageClientAuth))
	}
	if gw.Subject.CommonName != "berth-gateway" || len(gw.Subject.Organization) != 0 || verify(gw, x509.ExtKeyUsageClientAuth) != nil {
		t.Errorf("gateway certificate: %v", gw.Subject)
	}
	// etcd's client certificate must be no identity on the API server.
	if err := verify(cert(fileEtcdClientCert), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("the etcd client certificate verifies against the API server's client CA")
	}
	if cert(fileEtcdCert).CheckSignatureFrom(etcdCA) != nil {
		t.Error("etcd's certificate is not signed by the etcd CA")
	}
	for _, secret := range []string{fileCAKey, fileServingKey, fileAdminKey, fileGatewayKey, fileSAKey, fileEtcdCAKey, fileEtcdKey, fileEtcdClientKey} {
		if st, err := os.Stat(filepath.Join(dir, secret)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", secret, st.Mode().Perm(), err)
		}
	}
	creds, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.caHash, "sha256:") || len(creds.caHash) != len("sha256:")+64 {
		t.Errorf("CA hash %q", creds.caHash)
	}
}

func TestKubeconfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := writePKI(dir); err != nil {
		t.Fatal(err)
	}
	creds, err := loadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := kubeconfig("demo", "https://127.0.0.1:17002", creds.caPEM, creds.gatewayPEM, creds.gatewayKey, gatewayUser)
	kc := parseKubeconfig(t, data)
	if kc.server != "https://127.0.0.1:17002" || string(kc.caPEM) != string(creds.caPEM) {
		t.Errorf("kubeconfig:\n%s", data)
	}
	if !strings.Contains(string(data), "current-context: demo\n") {
		t.Errorf("kubeconfig lacks its current context:\n%s", data)
	}
}

func TestRandomString(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := randomString(16)
		if len(s) != 16 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789") != "" || seen[s] {
			t.Fatalf("token part %q", s)
		}
		seen[s] = true
	}
}

func TestOperationStore(t *testing.T) {
	dir := t.TempDir()
	s := newOpStore(dir)
	op, err := s.create(sdk.OperationCreate, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []sdk.Operation, 1)
	go func() {
		var ops []sdk.Operation
		_ = s.watch(t.Context(), op.ID, func(o sdk.Operation) error { ops = append(ops, o); return nil })
		got <- ops
	}()
	time.Sleep(50 * time.Millisecond) // let the watch send the first state; not asserted
	if _, err := s.update(op.ID, func(o *sdk.Operation) { o.Progress = sdk.Progress{Stage: "pki", Percent: 15} }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.update(op.ID, func(o *sdk.Operation) { o.State = sdk.OperationSucceeded }); err != nil {
		t.Fatal(err)
	}
	ops := <-got
	if len(ops) == 0 || !ops[len(ops)-1].Done() {
		t.Errorf("watch saw %+v", ops)
	}
	// A new store (a restarted plugin) reads it back.
	s2 := newOpStore(dir)
	if err := s2.load(); err != nil {
		t.Fatal(err)
	}
	if back, _, ok := s2.get(op.ID); !ok || back.State != sdk.OperationSucceeded {
		t.Errorf("operation after reload: %+v %v", back, ok)
	}
	if err := s2.watch(t.Context(), "op-missing", func(sdk.Operation) error { return nil }); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("watch of an unknown operation: %v", err)
	}
}

// parsedKubeconfig is what the tests need from a kubeconfig the plugin
// wrote; it reads the plugin's own fixed layout, no general YAML.
type parsedKubeconfig struct {
	server string
	caPEM  []byte
	cert   tls.Certificate
}

func parseKubeconfig(t *testing.T, data []byte) parsedKubeconfig {
	t.Helper()
	fields := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if ok {
			fields[k] = v
		}
	}
	dec := func(k string) []byte {
		b, err := base64.StdEncoding.DecodeString(fields[k])
		if err != nil || len(b) == 0 {
			t.Fatalf("kubeconfig %s: %v", k, err)
		}
		return b
	}
	kc := parsedKubeconfig{server: fields["server"], caPEM: dec("certificate-authority-data")}
	cert, err := tls.X509KeyPair(dec("client-certificate-data"), dec("client-key-data"))
	if err != nil {
		t.Fatalf("kubeconfig client certificate: %v", err)
	}
	kc.cert = cert
	return kc
}
