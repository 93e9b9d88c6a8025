package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
)

// EnvAPIToken is the environment variable holding the API token when
// api_token_file is not set. The gateway passes it to the plugin through
// the instance's env: list.
const EnvAPIToken = "BERTH_CLOUDFLARE_API_TOKEN"

// DefaultBaseURL is Cloudflare's v4 API.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4"

// maxTimeout keeps a stuck API from holding a gateway call for long.
const maxTimeout = 5 * time.Minute

// Config is the plugin's configuration, decoded by sdk.DecodeConfig. It
// never holds the token itself.
type Config struct {
	APITokenFile string `json:"api_token_file" berth:"description=Absolute path of a file holding the Cloudflare API token (surrounding blanks are ignored); when empty the token comes from the environment variable BERTH_CLOUDFLARE_API_TOKEN"`
	BaseURL      string `json:"base_url" berth:"default=https://api.cloudflare.com/client/v4,description=Base URL of Cloudflare's v4 API (https only); change it only for tests. The token is sent there"`
	CAFile       string `json:"ca_file" berth:"description=Absolute path of a PEM file of extra trusted root certificates, added to the system roots (for tests against a local server)"`
	PerPage      int    `json:"per_page" berth:"min=5,max=5000,default=100,description=DNS records asked for per page when listing a zone"`
	Timeout      string `json:"timeout" berth:"default=30s,description=How long one call may take, every request and rate-limit wait included (a Go duration such as 30s; at most 5m)"`
	Proxied      bool   `json:"proxied" berth:"description=Create A, AAAA and CNAME records proxied through Cloudflare (orange cloud) instead of DNS only; false by default"`
}

// Validate checks what the tags cannot say.
func (c Config) Validate() error {
	if c.APITokenFile != "" && !filepath.IsAbs(c.APITokenFile) {
		return fmt.Errorf("field \"api_token_file\": %q is not an absolute path", c.APITokenFile)
	}
	if c.CAFile != "" && !filepath.IsAbs(c.CAFile) {
		return fmt.Errorf("field \"ca_file\": %q is not an absolute path", c.CAFile)
	}
	if _, err := parseBaseURL(c.BaseURL); err != nil {
		return fmt.Errorf("field \"base_url\": %v", err)
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

// parseBaseURL checks that raw is an https URL without credentials, query
// or fragment, and returns it without a trailing slash.
func parseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL")
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("%q is not an https URL", raw)
	case u.Host == "":
		return "", fmt.Errorf("%q has no host", raw)
	case u.User != nil:
		return "", fmt.Errorf("the URL may not hold credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%q may not have a query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// loadToken returns the API token from the file the configuration names,
// or from the environment. Its errors name where the token was looked for,
// never what was found.
func loadToken(c Config) (string, error) {
	env, inEnv := os.LookupEnv(EnvAPIToken)
	var token string
	switch {
	case c.APITokenFile != "" && inEnv:
		return "", fmt.Errorf("field \"api_token_file\" is set and so is %s in the plugin's environment; keep one: %w", EnvAPIToken, sdk.ErrInvalidConfig)
	case c.APITokenFile != "":
		data, err := os.ReadFile(c.APITokenFile)
		if err != nil {
			// The error names the path, not the content.
			return "", fmt.Errorf("field \"api_token_file\": %v: %w", err, sdk.ErrInvalidConfig)
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			return "", fmt.Errorf("field \"api_token_file\": %s is empty: %w", c.APITokenFile, sdk.ErrInvalidConfig)
		}
		if !validToken(token) {
			return "", fmt.Errorf("field \"api_token_file\": %s does not hold an API token (one line of printable characters without blanks): %w", c.APITokenFile, sdk.ErrInvalidConfig)
		}
	case inEnv:
		token = strings.TrimSpace(env)
		if token == "" {
			return "", fmt.Errorf("%s is empty: %w", EnvAPIToken, sdk.ErrInvalidConfig)
		}
		if !validToken(token) {
			return "", fmt.Errorf("%s does not hold an API token (printable characters without blanks): %w", EnvAPIToken, sdk.ErrInvalidConfig)
		}
	default:
		return "", fmt.Errorf("no API token: set field \"api_token_file\", or %s in the plugin instance's env: list: %w", EnvAPIToken, sdk.ErrInvalidConfig)
	}
	return token, nil
}

// validToken reports whether s can go in an Authorization header: printable
// ASCII without blanks. Cloudflare's tokens are 40 characters of
// [A-Za-z0-9_-]; the check is looser so that a new format still works.
func validToken(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// runtime is what a configuration turns into. It is replaced whole on
// reconfiguration, never modified, except for the zone cache inside api.
type runtime struct {
	api     *client
	timeout time.Duration
	proxied bool
}

// newRuntime builds the runtime of a decoded configuration.
func newRuntime(c Config) (*runtime, error) {
	base, err := parseBaseURL(c.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("field \"base_url\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	timeout, err := time.ParseDuration(c.Timeout)
	if err != nil {
		return nil, fmt.Errorf("field \"timeout\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	token, err := loadToken(c)
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if c.CAFile != "" {
		if roots, err = loadRoots(c.CAFile); err != nil {
			return nil, fmt.Errorf("field \"ca_file\": %v: %w", err, sdk.ErrInvalidConfig)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	hc := &http.Client{
		Transport: tr,
		// The token goes only to base_url: a redirect is an error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		// Each call's context bounds its requests; this is a backstop.
		Timeout: timeout,
	}
	return &runtime{
		api:     newClient(hc, base, token, c.PerPage),
		timeout: timeout,
		proxied: c.Proxied,
	}, nil
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

// configure applies a new configuration; calls under way finish with the
// old one.
func (p *provider) configure(_ context.Context, c Config, _ sdk.Host) error {
	rt, err := newRuntime(c)
	if err != nil {
		return err
	}
	if old := p.rt.Swap(rt); old != nil {
		old.api.http.CloseIdleConnections()
	}
	return nil
}

// errNotConfigured is returned by calls made before configure.
var errNotConfigured = fmt.Errorf("plugin not configured: %w", sdk.ErrFailedPrecondition)

// current returns the runtime, or errNotConfigured.
func (p *provider) current() (*runtime, error) {
	rt := p.rt.Load()
	if rt == nil {
		return nil, errNotConfigured
	}
	return rt, nil
}
