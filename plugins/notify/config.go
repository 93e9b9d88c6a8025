package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/berthgw/berth/plugins/notify/netguard"
	"github.com/berthgw/berth/sdk"
)

// Config is the plugin's configuration, decoded by sdk.DecodeConfig.
type Config struct {
	AllowPrivateTargets []string `json:"allow_private_targets" berth:"description=CIDRs (or single addresses) of private networks that channels may reach, e.g. an in-cluster webhook receiver or mail relay; empty means every loopback, private, link-local and metadata address is refused"`
	CAFile              string   `json:"ca_file" berth:"description=Absolute path of a PEM file of extra trusted root certificates (a private CA), added to the system roots for SMTP and HTTPS"`
	Timeout             string   `json:"timeout" berth:"default=10s,description=How long one send may take, connection and retries included (a Go duration such as 10s or 1m)"`
}

// maxTimeout keeps a stuck peer from holding a gateway delivery worker.
const maxTimeout = 5 * time.Minute

// Validate checks what the tags cannot say.
func (c Config) Validate() error {
	if _, err := netguard.ParseAllowList(c.AllowPrivateTargets); err != nil {
		return fmt.Errorf("field \"allow_private_targets\": %v", err)
	}
	if c.CAFile != "" && !filepath.IsAbs(c.CAFile) {
		return fmt.Errorf("field \"ca_file\": %q is not an absolute path", c.CAFile)
	}
	d, err := time.ParseDuration(c.Timeout)
	if err != nil {
		return fmt.Errorf("field \"timeout\": %v", err)
	}
	if d <= 0 || d > maxTimeout {
		return fmt.Errorf("field \"timeout\": %s is not between 0 and %s", d, maxTimeout)
	}
	return nil
}

// runtime is what a configuration turns into: the guard every connection
// goes through, the TLS roots, and the HTTP client built on both. It is
// replaced whole on reconfiguration, never modified.
type runtime struct {
	guard   *netguard.Guard
	roots   *x509.CertPool // nil means the system roots
	timeout time.Duration
	http    *http.Client
}

// newRuntime builds the runtime of a validated configuration.
func newRuntime(c Config) (*runtime, error) {
	allow, err := netguard.ParseAllowList(c.AllowPrivateTargets)
	if err != nil {
		return nil, fmt.Errorf("field \"allow_private_targets\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	timeout, err := time.ParseDuration(c.Timeout)
	if err != nil {
		return nil, fmt.Errorf("field \"timeout\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	rt := &runtime{guard: &netguard.Guard{Allow: allow}, timeout: timeout}
	if c.CAFile != "" {
		if rt.roots, err = loadRoots(c.CAFile); err != nil {
			return nil, fmt.Errorf("field \"ca_file\": %v: %w", err, sdk.ErrInvalidConfig)
		}
	}
	// The guard's client dials only through the guard, ignores proxies
	// and follows no redirects; only the roots are ours to add. The send's
	// context bounds each request, so the client's own timeout is the
	// configured one as a backstop.
	rt.http = rt.guard.HTTPClient(timeout)
	tr, ok := rt.http.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("netguard's HTTP client has a %T transport, cannot set the trusted roots", rt.http.Transport)
	}
	tr.TLSClientConfig = rt.tlsConfig("")
	return rt, nil
}

// tlsConfig returns the client TLS configuration for serverName ("" lets
// net/http fill it in from the URL).
func (rt *runtime) tlsConfig(serverName string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rt.roots, ServerName: serverName}
}

// loadRoots returns the system roots plus the certificates of a PEM file.
func loadRoots(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		// No system roots (a minimal container): the file's alone.
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// configure applies a new configuration; sends already under way finish
// with the old one.
func (n *notifier) configure(_ context.Context, c Config, _ sdk.Host) error {
	rt, err := newRuntime(c)
	if err != nil {
		return err
	}
	if old := n.rt.Swap(rt); old != nil {
		old.http.CloseIdleConnections()
	}
	return nil
}
