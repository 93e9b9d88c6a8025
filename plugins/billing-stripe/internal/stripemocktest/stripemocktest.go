// Package stripemocktest runs stripe-mock, Stripe's own mock of its API
// (it answers every documented endpoint from the OpenAPI specification,
// validating the parameters and returning fixture objects), on a random
// loopback port for the billing-stripe plugin's tests.
//
// The stripe-mock binary comes from $BERTH_STRIPE_MOCK, else from the
// cache ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/stripe-mock/<Version>/stripe-mock,
// built on first use with `go build` from the tools module in
// testdata/stripe-mock (the Go module proxy is all it needs). When it
// cannot be had the test fails under BERTH_E2E=1 and is skipped, saying
// so, otherwise.
package stripemocktest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk/testpeer"
)

// Version is the pinned stripe-mock; testdata/stripe-mock/go.mod requires it.
const Version = "v0.203.0"

// EnvStripeMock names a stripe-mock binary to use instead of the cached build.
const EnvStripeMock = "BERTH_STRIPE_MOCK"

// TestKey is a secret key stripe-mock accepts: any sk_test_ or rk_test_ key.
const TestKey = "sk_test_berthStripeMock"

// peer is the pinned stripe-mock, built from the tools module in
// testdata/stripe-mock.
var peer = testpeer.Peer{
	Name: "stripe-mock", Version: Version, Package: "github.com/stripe/stripe-mock",
	ToolsDir: ToolsDir(), LDFlags: "-X main.version=" + Version, Env: EnvStripeMock, Reports: reportsVersion,
}

// ToolsDir is the tools module stripe-mock is built from.
func ToolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "stripe-mock")
}

// CachePath is where the pinned stripe-mock is built.
func CachePath() (string, error) { return peer.CachePath() }

// Binary returns the stripe-mock binary, building it into the cache when it
// is missing or reports another version.
func Binary(t testing.TB) string { return peer.Binary(t) }

func reportsVersion(bin string) bool {
	out, err := exec.Command(bin, "-version").Output()
	return err == nil && bytes.Contains(out, []byte("stripe-mock "+Version+"\n"))
}

// Server is a running stripe-mock.
type Server struct {
	// URL is the base of its API, http://127.0.0.1:<port>: what the
	// plugin's api_base setting names.
	URL string

	out *lockedBuffer
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (127\.0\.0\.1:\d+)`)

// Start runs stripe-mock until the test ends. It listens on ports the
// system picks on 127.0.0.1 (HTTPS too, which the tests do not use), so
// no port is chosen before it is bound.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	// stripe-mock also listens on $PORT when it is set.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PORT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	addr := make(chan string, 1)
	s := &Server{out: &lockedBuffer{watch: func(out string) bool {
		if m := listening.FindStringSubmatch(out); m != nil {
			addr <- m[1]
			return true
		}
		return false
	}}}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("stripemocktest: start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() { _ = cmd.Process.Kill(); <-done }
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-done:
		t.Fatalf("stripemocktest: stripe-mock exited:\n%s", s.out.String())
	case <-time.After(60 * time.Second):
		stop()
		t.Fatalf("stripemocktest: stripe-mock did not listen within 60s:\n%s", s.out.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("stripe-mock output:\n%s", s.Output())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !s.ready() {
		if time.Now().After(deadline) {
			t.Fatalf("stripemocktest: stripe-mock at %s not ready after 30s:\n%s", s.URL, s.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *Server) ready() bool {
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/balance", nil)
	req.Header.Set("Authorization", "Bearer "+TestKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Output is what stripe-mock printed so far: a line per request, with
// its parameters.
func (s *Server) Output() string { return s.out.String() }

// lockedBuffer collects a process's output while tests read it. Until
// watch returns true it is shown all the output after every write.
type lockedBuffer struct {
	mu    sync.Mutex
	buf   strings.Builder
	watch func(string) bool
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.watch != nil && b.watch(b.buf.String()) {
		b.watch = nil
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
