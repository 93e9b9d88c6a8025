package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
)

// pluginConfig is the plugin's configuration as a test writes it.
type pluginConfig struct {
	AllowPrivateTargets []string `json:"allow_private_targets,omitempty"`
	CAFile              string   `json:"ca_file,omitempty"`
	Timeout             string   `json:"timeout,omitempty"`
}

func (c pluginConfig) JSON() []byte {
	data, _ := json.Marshal(c)
	return data
}

// loopbackOnly allows the test receivers' address and nothing else
// private.
var loopbackOnly = []string{"127.0.0.1/32"}

// startPlugin serves a fresh plugin in the test process, over real gRPC,
// configured with cfg.
func startPlugin(t *testing.T, cfg pluginConfig) pluginclient.Notifier {
	t.Helper()
	c := plugintest.StartInProcess(t, options())
	c.Configure(t, cfg.JSON())
	n, err := c.Notifier()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ctx bounds one call of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// request is what a test receiver saw of one request.
type request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// receiver is an HTTPS server on 127.0.0.1 that records every request
// and answers with its handler; it stands in for a webhook receiver, the
// Slack API or the Telegram Bot API.
type receiver struct {
	*httptest.Server
	// CAFile holds the server's certificate as a PEM root, for ca_file.
	CAFile string

	mu       sync.Mutex
	requests []request
}

// startReceiver starts a TLS receiver.
func startReceiver(t *testing.T, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewTLSServer(r.record(handler))
	t.Cleanup(r.Close)
	r.CAFile = filepath.Join(t.TempDir(), "receiver-ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate().Raw})
	if err := os.WriteFile(r.CAFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// startPlainReceiver starts a plain-HTTP receiver on 127.0.0.1.
func startPlainReceiver(t *testing.T, handler http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(r.record(handler))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) record(handler http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, request{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body})
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		handler(w, req)
	}
}

// Requests returns the requests received so far.
func (r *receiver) Requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

// Config is a plugin configuration trusting this receiver and allowing
// its address alone.
func (r *receiver) Config() pluginConfig {
	return pluginConfig{AllowPrivateTargets: loopbackOnly, CAFile: r.CAFile}
}

// wantKind fails unless err is of the kind.
func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error = %v, want one matching %v", what, err, kind)
	}
}

// noSecrets fails if err's message holds any of the secrets.
func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error leaks the secret %q: %v", s, err)
		}
	}
}

// kinds the tests name in tables.
var (
	retryable    = sdk.ErrRetryable
	refused      = sdk.ErrFailedPrecondition
	denied       = sdk.ErrPermissionDenied
	invalid      = sdk.ErrInvalidArgument
	notFoundKind = sdk.ErrNotFound
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
