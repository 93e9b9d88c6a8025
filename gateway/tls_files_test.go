package gateway

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/config"
)

// filesCA signs the certificates of the files-mode tests.
type filesCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newFilesCA(t *testing.T) *filesCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "files test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &filesCA{cert: c, key: key, pool: pool}
}

func (ca *filesCA) issue(t *testing.T, serial int64, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "edge.berth.test"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		DNSNames: []string{"edge.berth.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// writeAtomic replaces a file the way deploy tools do (write, rename), so
// a reader never sees half a file.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func filesConfig(t *testing.T, certFile, keyFile string) (*config.Config, error) {
	return config.Load("", func(k string) (string, bool) {
		v, ok := map[string]string{
			"BERTH_DATA_DIR":                  t.TempDir(),
			"BERTH_HTTP_ADDR":                 "127.0.0.1:0",
			"BERTH_HTTPS_ADDR":                "127.0.0.1:0",
			"BERTH_LOG_LEVEL":                 "debug",
			"BERTH_STORE_SYNC_WRITES":         "false",
			"BERTH_TLS_MODE":                  "files",
			"BERTH_TLS_FILES_CERT_FILE":       certFile,
			"BERTH_TLS_FILES_KEY_FILE":        keyFile,
			"BERTH_TLS_FILES_RELOAD_INTERVAL": "1s",
		}[k]
		return v, ok
	})
}

// httpOn sends one request on an open connection and reads the answer.
func httpOn(t *testing.T, c net.Conn, r *bufio.Reader, path string) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: edge.berth.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestFilesModeHotReloadKeepsConnections(t *testing.T) {
	ca := newFilesCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := ca.issue(t, 1001, time.Now().Add(24*time.Hour))
	writeAtomic(t, certFile, c1)
	writeAtomic(t, keyFile, k1)
	cfg, err := filesConfig(t, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tg := start(t, cfg, nil)
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", tg.HTTPSAddr(), &tls.Config{ServerName: "edge.berth.test", RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := dial()
	defer old.Close()
	oldR := bufio.NewReader(old)
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 1001 {
		t.Fatalf("serving serial %d", got)
	}
	if code := httpOn(t, old, oldR, "/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}

	// A torn update (new certificate, old key) is refused; the old pair
	// keeps serving.
	c2, k2 := ca.issue(t, 1002, time.Now().Add(48*time.Hour))
	writeAtomic(t, certFile, c2)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(tg.logs.String(), "cannot be used") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(tg.logs.String(), "does not match") {
		t.Fatal("a mismatched pair on disk was not reported")
	}
	c := dial()
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 1001 {
		t.Fatalf("mismatched pair served: serial %d", got)
	}
	c.Close()

	// The whole new pair is picked up by new handshakes.
	writeAtomic(t, keyFile, k2)
	var serial int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c := dial()
		serial = c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
		c.Close()
		if serial == 1002 {
			break
		}
	}
	if serial != 1002 {
		t.Fatalf("reload not picked up: serial %d", serial)
	}
	// The connection opened before the reload is still served.
	if code := httpOn(t, old, oldR, "/healthz"); code != 200 {
		t.Fatalf("old connection after reload: %d", code)
	}
	if tg.CertificatePEM() != nil {
		t.Error("files mode must not tell clients to trust a self-signed certificate")
	}
}

func TestFilesModeStartupErrors(t *testing.T) {
	ca := newFilesCA(t)
	dir := t.TempDir()
	good, goodKey := ca.issue(t, 1, time.Now().Add(time.Hour))
	expired, expiredKey := ca.issue(t, 2, time.Now().Add(-time.Minute))
	_, otherKey := ca.issue(t, 3, time.Now().Add(time.Hour))
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		writeAtomic(t, p, data)
		return p
	}
	tests := []struct {
		name, cert, key, wantKey, want string
		atLoad                         bool
	}{
		{"missing cert", filepath.Join(dir, "absent.crt"), write("k0", goodKey), "tls.files.cert_file", "does not exist", true},
		{"missing key", write("c0", good), filepath.Join(dir, "absent.key"), "tls.files.key_file", "does not exist", true},
		{"expired", write("c1", expired), write("k1", expiredKey), "tls.files.cert_file", "expired on", false},
		{"mismatched", write("c2", good), write("k2", otherKey), "tls.files.key_file", "does not match", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := filesConfig(t, tt.cert, tt.key)
			if err == nil {
				if tt.atLoad {
					t.Fatal("config accepted a missing file")
				}
				var g *Gateway
				g, err = New(Options{Config: cfg})
				if err == nil {
					g.Close()
					t.Fatal("gateway started with a bad pair")
				}
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tt.wantKey || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v: want one line naming %s saying %q", err, tt.wantKey, tt.want)
			}
		})
	}
}

// A plain-HTTP request to the HTTPS port and a TLS 1.0 client fail at
// once, and neither disturbs a connection already being served.
func TestHTTPSRefusesPlainHTTPAndOldTLS(t *testing.T) {
	tg := start(t, testConfig(t, t.TempDir()), nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tg.CertificatePEM())
	good, err := tls.Dial("tcp", tg.HTTPSAddr(), &tls.Config{ServerName: "localhost", RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	goodR := bufio.NewReader(good)
	if code := httpOn(t, good, goodR, "/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}

	plain, err := net.Dial("tcp", tg.HTTPSAddr())
	if err != nil {
		t.Fatal(err)
	}
	_ = plain.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(plain, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	reply, err := io.ReadAll(plain)
	plain.Close()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("plain HTTP on the HTTPS port hung instead of being closed")
	}
	if strings.Contains(string(reply), "200 OK") {
		t.Fatalf("plain HTTP was served on the HTTPS port: %q", reply)
	}

	old, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tg.HTTPSAddr(),
		&tls.Config{ServerName: "localhost", RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10})
	if err == nil {
		old.Close()
		t.Fatal("a TLS 1.0 handshake succeeded")
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.0 refused with %v, want a protocol version alert", err)
	}

	// The connection opened first still works, and so do new ones.
	if code := httpOn(t, good, goodR, "/healthz"); code != 200 {
		t.Fatalf("existing connection after the bad clients: %d", code)
	}
	resp, _ := tg.get(t, tg.https+"/healthz")
	if resp.StatusCode != 200 {
		t.Fatalf("new connection: %d", resp.StatusCode)
	}
}

// With tls.redirect_http, plain HTTP answers 308 to HTTPS, except health.
func TestRedirectHTTPToHTTPS(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TLS.RedirectHTTP = true
	tg := start(t, cfg, nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Post(tg.http+"/api/v1/auth/login?x=1", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(tg.HTTPSAddr())
	if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://127.0.0.1:"+port+"/api/v1/auth/login?x=1" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := tg.get(t, tg.http+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("/healthz redirected: %d", resp.StatusCode)
	}
	if resp, _ := tg.get(t, tg.https+"/healthz"); resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("https: %d", resp.StatusCode)
	}
}
