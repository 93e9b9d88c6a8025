package edgetls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a certificate and key PEM signed by ca.
func (ca *testCA) issue(t *testing.T, subject pkix.Name, names []string, nb, na time.Time, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFilesStartupErrors(t *testing.T) {
	db, box := testDB(t)
	ca := newCA(t, "files CA")
	now := time.Now()
	good, goodKey := ca.issue(t, pkix.Name{CommonName: "edge"}, []string{"edge.example"}, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageServerAuth)
	expired, expiredKey := ca.issue(t, pkix.Name{CommonName: "edge"}, []string{"edge.example"}, now.Add(-48*time.Hour), now.Add(-time.Hour), x509.ExtKeyUsageServerAuth)
	future, futureKey := ca.issue(t, pkix.Name{CommonName: "edge"}, []string{"edge.example"}, now.Add(time.Hour), now.Add(48*time.Hour), x509.ExtKeyUsageServerAuth)
	_, otherKey := ca.issue(t, pkix.Name{CommonName: "other"}, nil, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageServerAuth)

	tests := []struct {
		name       string
		cert, key  []byte
		key1, want string
	}{
		{"expired", expired, expiredKey, OptionCertFile, "expired on"},
		{"not yet valid", future, futureKey, OptionCertFile, "not valid before"},
		{"key mismatch", good, otherKey, OptionKeyFile, "does not match"},
		{"no certificate", []byte("hello"), goodKey, OptionCertFile, "no usable PEM certificate"},
		{"no key", good, []byte("hello"), OptionKeyFile, "no usable PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{Mode: ModeFiles, Files: Files{
				CertFile: writeTemp(t, "cert.pem", tt.cert), KeyFile: writeTemp(t, "key.pem", tt.key), ReloadInterval: time.Second,
			}, DB: db, Box: box})
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tt.key1 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v: want an OptionError on %s saying %q", err, tt.key1, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error quotes key material or spans lines: %q", err)
			}
		})
	}
}

// A certificate's last renewal and last error survive a restart: the
// certificates API should not report a failing renewal as fine because
// Berth restarted since.
func TestCertificateStatusSurvivesRestart(t *testing.T) {
	db, box := testDB(t)
	start := func() *Manager {
		t.Helper()
		m, err := New(Options{DB: db, Box: box, Mode: ModeSelfSigned})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := start()
	failedAt := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	m.setStatus("a.example", func(s *nameStatus) { s.LastError, s.LastErrorAt = "acme: rate limited", failedAt }, nil)
	m.setStatus("b.example", func(s *nameStatus) { s.LastRenewedAt = failedAt }, nil)
	m.setStatus("b.example", func(s *nameStatus) { s.LastError, s.LastErrorAt = "dns: timeout", failedAt.Add(time.Hour) }, nil)
	m.Stop()

	m = start()
	defer m.Stop()
	if got := m.getStatus("a.example"); got.LastError != "acme: rate limited" || !got.LastErrorAt.Equal(failedAt) {
		t.Errorf("a.example after a restart: %+v", got)
	}
	if got := m.getStatus("b.example"); !got.LastRenewedAt.Equal(failedAt) || got.LastError != "dns: timeout" {
		t.Errorf("b.example after a restart: %+v", got)
	}
	if got := m.getStatus("c.example"); got != (nameStatus{}) {
		t.Errorf("a name never tried has status %+v", got)
	}
}

func TestClientIdentity(t *testing.T) {
	db, box := testDB(t)
	clientCA, otherCA := newCA(t, "machines CA"), newCA(t, "someone else")
	now := time.Now()
	m, err := New(Options{DB: db, Box: box,
		Mode: ModeSelfSigned, ClientCAFile: writeTemp(t, "ca.pem", clientCA.pem),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	srvCfg := m.TLSConfig()
	if srvCfg.MinVersion != tls.VersionTLS12 || strings.Join(srvCfg.NextProtos, ",") != "http/1.1" {
		t.Fatalf("server config: min %x alpn %v", srvCfg.MinVersion, srvCfg.NextProtos)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	states := make(chan *tls.ConnectionState, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() != nil {
				states <- nil
			} else {
				st := tc.ConnectionState()
				states <- &st
			}
			c.Close()
		}
	}()
	dial := func(certPEM, keyPEM []byte) (*tls.ConnectionState, error) {
		cfg := &tls.Config{InsecureSkipVerify: true}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			// Offer the certificate whatever CAs the server names, as a
			// hostile client would.
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // surfaces the server's verdict on our certificate (TLS 1.3)
			c.Close()
		}
		return <-states, err
	}

	kubectl, kubectlKey := clientCA.issue(t, pkix.Name{CommonName: "ci-bot", Organization: []string{"system:masters", "deployers", "deployers"}}, nil, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	st, _ := dial(kubectl, kubectlKey)
	user, groups, ok := ClientIdentity(st)
	if !ok || user != "ci-bot" || strings.Join(groups, ",") != "deployers,system:masters" {
		t.Fatalf("identity = %q %q %v", user, groups, ok)
	}

	// No certificate: the handshake works, there is no identity.
	st, err = dial(nil, nil)
	if st == nil {
		t.Fatalf("handshake without a client certificate failed: %v", err)
	}
	if _, _, ok := ClientIdentity(st); ok {
		t.Fatal("identity without a certificate")
	}

	// A certificate from another CA is refused, not ignored.
	stranger, strangerKey := otherCA.issue(t, pkix.Name{CommonName: "admin"}, nil, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	if st, _ := dial(stranger, strangerKey); st != nil {
		t.Fatal("a client certificate from an unknown CA was accepted")
	}
	// A verified certificate without a common name names no one.
	anon, anonKey := clientCA.issue(t, pkix.Name{Organization: []string{"x"}}, nil, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	st, _ = dial(anon, anonKey)
	if _, _, ok := ClientIdentity(st); ok {
		t.Fatal("a certificate without CN became an identity")
	}
	if _, _, ok := ClientIdentity(nil); ok {
		t.Fatal("nil state")
	}
}

func TestRedirectMiddleware(t *testing.T) {
	m := &Manager{cfg: Options{RedirectHTTP: true}, httpsPort: "8443"}
	next := func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(299) }
	h := m.Middleware()(next)
	run := func(method, uri, host string) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(uri)
		ctx.Request.Header.SetHost(host)
		h(&ctx)
		return &ctx
	}
	ctx := run("POST", "/api/v1/users?x=1", "edge.example:8080")
	if ctx.Response.StatusCode() != 308 || string(ctx.Response.Header.Peek("Location")) != "https://edge.example:8443/api/v1/users?x=1" {
		t.Fatalf("redirect: %d %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Location"))
	}
	ctx = run("GET", "/", "[::1]:8080")
	if string(ctx.Response.Header.Peek("Location")) != "https://[::1]:8443/" {
		t.Fatalf("ipv6 redirect: %q", ctx.Response.Header.Peek("Location"))
	}
	for _, p := range []string{"/healthz", "/readyz", "/.well-known/acme-challenge/abc"} {
		if ctx := run("GET", p, "edge.example"); ctx.Response.StatusCode() != 299 {
			t.Errorf("%s was redirected: %d", p, ctx.Response.StatusCode())
		}
	}
	if ctx := run("GET", "/", "evil.example/@x"); ctx.Response.StatusCode() != 400 {
		t.Errorf("odd Host redirected: %d %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Location"))
	}
	m.httpsPort = "443"
	if ctx := run("GET", "/a", "edge.example"); string(ctx.Response.Header.Peek("Location")) != "https://edge.example/a" {
		t.Errorf("port 443: %q", ctx.Response.Header.Peek("Location"))
	}
}

// Behind port forwarding the bound HTTPS port is not the one clients can
// reach: an https public_url names it, and the redirect uses it.
func TestRedirectUsesThePublicPort(t *testing.T) {
	tests := []struct {
		publicURL, bound, want string
	}{
		{"", "8443", "https://edge.example:8443/a"},
		{"https://berth.example.com", "8443", "https://edge.example/a"},
		{"https://berth.example.com:9443/base", "8443", "https://edge.example:9443/a"},
		{"http://berth.example.com:8080", "8443", "https://edge.example:8443/a"}, // not https: says nothing of the HTTPS port
	}
	for _, tt := range tests {
		m := &Manager{cfg: Options{RedirectHTTP: true}, httpsPort: publicHTTPSPort(tt.publicURL)}
		if err := m.Start("", "127.0.0.1:"+tt.bound); err != nil {
			t.Fatal(err)
		}
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/a")
		ctx.Request.Header.SetHost("edge.example:8080")
		m.Middleware()(func(*fasthttp.RequestCtx) {})(&ctx)
		if got := string(ctx.Response.Header.Peek("Location")); got != tt.want {
			t.Errorf("public_url %q, bound %s: Location %q, want %q", tt.publicURL, tt.bound, got, tt.want)
		}
		m.Stop()
	}
}
