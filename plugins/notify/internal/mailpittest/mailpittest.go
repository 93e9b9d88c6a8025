// Package mailpittest runs mailpit, a real SMTP server with an HTTP API to
// read what it received, on loopback for the notify plugin's email tests:
// TLS (STARTTLS or implicit) with a certificate the test makes, SMTP AUTH
// with a password file, and the API to read each message back.
//
// The mailpit binary comes from $BERTH_MAILPIT, else from the cache
// ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/mailpit/<Version>/mailpit, built
// on first use with `go build` from the tools module in testdata/mailpit
// (the Go module proxy is all it needs). When it cannot be had the test
// fails under BERTH_E2E=1 and is skipped, saying so, otherwise.
package mailpittest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
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

	"github.com/berthgw/berth/sdk/testpeer"
)

// Version is the pinned mailpit; testdata/mailpit/go.mod requires it.
const Version = "v1.33.1"

// EnvMailpit names a mailpit binary to use instead of the cached build.
const EnvMailpit = "BERTH_MAILPIT"

// peer is the pinned mailpit, built from the tools module in
// testdata/mailpit.
var peer = testpeer.Peer{
	Name: "mailpit", Version: Version, Package: "github.com/axllent/mailpit",
	ToolsDir: ToolsDir(), LDFlags: "-X github.com/axllent/mailpit/config.Version=" + Version, Env: EnvMailpit, Reports: reportsVersion,
}

// ToolsDir is the tools module mailpit is built from.
func ToolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "mailpit")
}

// CachePath is where the pinned mailpit is built.
func CachePath() (string, error) { return peer.CachePath() }

// Binary returns the mailpit binary, building it into the cache when it
// is missing or reports another version.
func Binary(t testing.TB) string { return peer.Binary(t) }

func reportsVersion(bin string) bool {
	out, err := exec.Command(bin, "version", "--no-release-check").Output()
	return err == nil && bytes.Contains(out, []byte(" "+Version+" "))
}

// Options configure one mailpit.
type Options struct {
	// Username and Password, when set, are the only SMTP credentials
	// accepted, and every message must authenticate.
	Username, Password string
	// ImplicitTLS serves TLS from the first byte (port 465 style) instead
	// of requiring STARTTLS.
	ImplicitTLS bool
}

// Server is a running mailpit.
type Server struct {
	// Host is 127.0.0.1; SMTPPort the SMTP listener's port.
	Host     string
	SMTPPort int
	// CAFile is a PEM file with the CA of the SMTP certificate (issued to
	// 127.0.0.1): what the plugin's ca_file names.
	CAFile string
	// APIURL is the base of the HTTP API, http://127.0.0.1:<port>.
	APIURL string

	out *lockedBuffer
}

// Start runs mailpit until the test ends. A port taken between choosing
// and binding it makes mailpit exit; Start then tries other ports.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := makeCert(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile, certFile, keyFile := write("ca.pem", caPEM), write("cert.pem", certPEM), write("key.pem", keyPEM)
	var lastErr error
	for attempt := range 5 {
		smtpPort, httpPort := freePort(t), freePort(t)
		args := []string{
			"--smtp", "127.0.0.1:" + strconv.Itoa(smtpPort),
			"--listen", "127.0.0.1:" + strconv.Itoa(httpPort),
			"--database", filepath.Join(dir, fmt.Sprintf("mailpit-%d.db", attempt)),
			"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile,
			"--smtp-disable-rdns", "--disable-version-check",
		}
		if opts.ImplicitTLS {
			args = append(args, "--smtp-require-tls")
		} else {
			args = append(args, "--smtp-require-starttls")
		}
		if opts.Username != "" {
			// go-htpasswd's plain format: user:password.
			args = append(args, "--smtp-auth-file", write("smtp-auth", []byte(opts.Username+":"+opts.Password+"\n")))
		}
		s := &Server{Host: "127.0.0.1", SMTPPort: smtpPort, CAFile: caFile, APIURL: "http://127.0.0.1:" + strconv.Itoa(httpPort), out: &lockedBuffer{}}
		if lastErr = s.run(t, bin, args); lastErr == nil {
			return s
		}
	}
	t.Fatalf("mailpittest: mailpit did not start: %v", lastErr)
	return nil
}

// run starts mailpit with args and waits until both its HTTP API and its
// SMTP listener answer; it stops mailpit when the test ends.
func (s *Server) run(t testing.TB, bin string, args []string) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() { _ = cmd.Process.Kill(); <-done }
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s.ready() {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("mailpit output:\n%s", s.out.String())
				}
			})
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mailpit exited:\n%s", s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("mailpit not ready after 30s:\n%s", s.out.String())
		}
	}
}

func (s *Server) ready() bool {
	resp, err := http.Get(s.APIURL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.SMTPPort)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Output is what mailpit logged so far.
func (s *Server) Output() string { return s.out.String() }

// Address is a sender or recipient in mailpit's API.
type Address struct {
	Name    string
	Address string
}

// Summary is one message in the list of /api/v1/messages.
type Summary struct {
	ID        string
	MessageID string
	From      Address
	To        []Address
	Subject   string
}

// Message is one message in full, from /api/v1/message/{ID}.
type Message struct {
	ID        string
	MessageID string
	From      Address
	To        []Address
	Subject   string
	Text      string
	HTML      string
}

// Messages lists the messages mailpit holds, newest first.
func (s *Server) Messages(t testing.TB) []Summary {
	t.Helper()
	var list struct {
		Total    int
		Messages []Summary
	}
	s.get(t, "/api/v1/messages", &list)
	return list.Messages
}

// Message returns one message by mailpit's ID.
func (s *Server) Message(t testing.TB, id string) Message {
	t.Helper()
	var m Message
	s.get(t, "/api/v1/message/"+id, &m)
	return m
}

// Headers returns one message's headers by mailpit's ID.
func (s *Server) Headers(t testing.TB, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	s.get(t, "/api/v1/message/"+id+"/headers", &h)
	return h
}

// Raw returns one message as received, by mailpit's ID.
func (s *Server) Raw(t testing.TB, id string) string {
	t.Helper()
	resp, err := http.Get(s.APIURL + "/api/v1/message/" + id + "/raw")
	if err != nil {
		t.Fatalf("mailpittest: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpittest: raw %s: %d %s", id, resp.StatusCode, data)
	}
	return string(data)
}

func (s *Server) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(s.APIURL + path)
	if err != nil {
		t.Fatalf("mailpittest: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpittest: GET %s: %d %s", path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("mailpittest: GET %s: %v in %s", path, err, data)
	}
}

// freePort picks a port that was free on 127.0.0.1 a moment ago, below
// Linux's ephemeral range (32768-60999), where outgoing connections never
// take it by themselves.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + mrand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("mailpittest: no free port")
	return 0
}

// makeCert makes a CA and a certificate for 127.0.0.1 signed by it.
func makeCert(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailpittest CA"},
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
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mailpit"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
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

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
