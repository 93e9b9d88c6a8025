// Package pebbletest runs Let's Encrypt's pebble, a real ACME server, on
// loopback for Berth's TLS tests, with a small DNS server that resolves
// every name to 127.0.0.1 so pebble's validation reaches the gateway under
// test, and that serves the TXT records of dns-01 challenges.
//
// The pebble binary comes from $BERTH_PEBBLE, else from the cache
// ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/pebble/<Version>/pebble, which is
// built on first use with `go build` from the tools module in
// testdata/pebble (the Go module proxy is all it needs).
package pebbletest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/internal/freeport"
	"github.com/berthgw/berth/internal/syncbuf"
)

// Version is the pinned pebble; testdata/pebble/go.mod requires it.
const Version = "v2.10.1"

var buildMu sync.Mutex

// Binary returns the pebble binary, building it into the cache when it is
// missing. Concurrent test processes may both build; each writes a
// temporary file and renames it into place, so neither sees a torn binary.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BERTH_PEBBLE"); p != "" {
		return p
	}
	root := os.Getenv("BERTH_CACHE_DIR")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("pebbletest: no cache dir: %v", err)
		}
		root = filepath.Join(home, ".cache", "berth")
	}
	dir := filepath.Join(root, "pebble", Version)
	bin := filepath.Join(dir, "pebble")
	buildMu.Lock()
	defer buildMu.Unlock()
	if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, "github.com/letsencrypt/pebble/v2/cmd/pebble")
	cmd.Dir = ToolsDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pebbletest: building pebble %s in %s: %v\n%s", Version, cmd.Dir, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	return bin
}

// ToolsDir is the tools module pebble is built from.
func ToolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "pebble")
}

// Options configure one pebble.
type Options struct {
	// HTTPPort and TLSPort are where pebble validates HTTP-01 and
	// TLS-ALPN-01: the gateway's HTTP and HTTPS ports.
	HTTPPort, TLSPort int
	// Validity of the default profile's certificates; zero means 90 days.
	Validity time.Duration
	// ShortValidity is the validity of the "shortlived" profile; zero
	// means 6 days.
	ShortValidity time.Duration
	// DNSServer (host:port), when set, is the DNS server pebble asks
	// instead of its own (Server.DNS is then nil): a real authoritative
	// server that a DNS plugin writes the challenges to.
	DNSServer string
}

// Server is a running pebble.
type Server struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// TLSRootFile is a PEM file with the root of pebble's own HTTPS
	// certificate: what tls.acme.ca_root names.
	TLSRootFile string
	// DNS serves A 127.0.0.1 for every name and the TXT records set on it.
	DNS *DNS

	mgmt   string
	client *http.Client
	out    *syncbuf.Buffer
}

// Start runs pebble until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := makeServingCert(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := &Server{TLSRootFile: write("pebble-root.pem", caPEM), out: &syncbuf.Buffer{}}
	dnsServer := opts.DNSServer
	if dnsServer == "" {
		s.DNS = StartDNS(t)
		dnsServer = s.DNS.Addr
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}

	sec := func(d, def time.Duration) uint64 {
		if d == 0 {
			d = def
		}
		return uint64(d / time.Second)
	}
	listen, mgmt := freeAddr(t), freeAddr(t)
	s.mgmt = mgmt
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             write("cert.pem", certPEM),
		"privateKey":              write("key.pem", keyPEM),
		"httpPort":                opts.HTTPPort,
		"tlsPort":                 opts.TLSPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"profiles": map[string]any{
			"default":    map[string]any{"description": "default", "validityPeriod": sec(opts.Validity, 90*24*time.Hour)},
			"shortlived": map[string]any{"description": "short", "validityPeriod": sec(opts.ShortValidity, 6*24*time.Hour)},
		},
	}}
	cfgJSON, _ := json.Marshal(cfg)
	cfgPath := write("pebble.json", cfgJSON)

	cmd := exec.Command(bin, "-config", cfgPath, "-strict=false", "-dnsserver", dnsServer)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce errors
		"PEBBLE_AUTHZREUSE=0",      // every order is validated afresh
	)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("pebbletest: start pebble: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("pebble output:\n%s", s.out.String())
		}
	})
	s.DirectoryURL = "https://" + listen + "/dir"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.Get(s.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("pebbletest: pebble exited:\n%s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebbletest: pebble not ready: %v\n%s", err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Roots returns the roots pebble issues under, as a pool for verifying the
// chains the gateway serves. Pebble makes new roots at every start.
func (s *Server) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := s.client.Get("https://" + s.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebbletest: fetch root: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if resp.StatusCode != 200 || !pool.AppendCertsFromPEM(data) {
		t.Fatalf("pebbletest: root: %d %q", resp.StatusCode, data)
	}
	return pool
}

// Output is what pebble printed so far.
func (s *Server) Output() string { return s.out.String() }

// Orders counts the orders pebble has finalized, from its log, so a test
// can prove a restart served from storage without a new order.
func (s *Server) Orders() int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s.out.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Issued certificate serial") {
			n++
		}
	}
	return n
}

// freeAddr picks a free loopback address for pebble's own listeners.
func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// FreePort picks a free loopback port, for configuring the gateway before
// pebble starts (its challenges reach the gateway on fixed ports). See
// package freeport for why it is not a port from 127.0.0.1:0.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := freeport.Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// makeServingCert makes a CA and a certificate for 127.0.0.1 and localhost
// for pebble's own HTTPS listeners.
func makeServingCert(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest serving CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
