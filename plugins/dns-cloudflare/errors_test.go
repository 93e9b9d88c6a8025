package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/plugins/dns-cloudflare/internal/cftest"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
	"github.com/hashicorp/go-hclog"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBadTokenPermissionDenied starts the real plugin process with a
// token Cloudflare does not know, at trace log level, and checks that the
// refusal is ErrPermissionDenied and that neither the error nor anything
// the plugin wrote to stderr holds the token.
func TestBadTokenPermissionDenied(t *testing.T) {
	cf := startCF(t)
	const badToken = "wrongToken_9876543210zyxwvutsrqponmlkjih"
	logs := &lockedBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: logs})
	p, err := pluginclient.Start(ctx(t), pluginclient.Config{
		Name:   "dns-cloudflare",
		Path:   plugintest.Build(t, "."),
		Env:    []string{EnvAPIToken + "=" + badToken, sdk.EnvLogLevel + "=trace"},
		Host:   hostServices(),
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.Base().Configure(ctx(t), pluginConfig{BaseURL: cf.BaseURL, CAFile: cf.CAFile}.JSON()); err != nil {
		t.Fatal(err)
	}
	d, err := p.DNS()
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.GetRecords(ctx(t), zone)
	wantKind(t, "GetRecords with a bad token", err, sdk.ErrPermissionDenied)
	_, err2 := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}})
	wantKind(t, "AppendRecords with a bad token", err2, sdk.ErrPermissionDenied)
	for _, e := range []error{err, err2} {
		if e != nil && strings.Contains(e.Error(), badToken) {
			t.Errorf("the error holds the token: %v", e)
		}
	}
	p.Kill()
	if out := logs.String(); strings.Contains(out, badToken) || strings.Contains(out, badToken[:12]) {
		t.Errorf("the logs hold the token:\n%s", out)
	}
	// The token did reach Cloudflare, in the header and nowhere else.
	for _, r := range cf.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+badToken {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
		}
		if strings.Contains(r.Query.Encode(), badToken) || bytes.Contains(r.Body, []byte(badToken)) {
			t.Errorf("%s %s carries the token outside the header", r.Method, r.Path)
		}
	}
}

// TestWriteWithoutDNSEditPermissionDenied: a token that can read but not
// edit gets Cloudflare's 403 (10000) on the first write, and nothing else
// changes.
func TestWriteWithoutDNSEditPermissionDenied(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, cf.ReadOnlyToken))
	if _, err := d.GetRecords(ctx(t), zone); err != nil {
		t.Fatalf("reading with a read-only token: %v", err)
	}
	_, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}})
	wantKind(t, "AppendRecords with a read-only token", err, sdk.ErrPermissionDenied)
	if err != nil && !strings.Contains(err.Error(), "DNS:Edit") {
		t.Errorf("the error does not say which permission the token needs: %v", err)
	}
	if len(cf.Records(zone)) != 0 {
		t.Errorf("records after a refused write: %+v", cf.Records(zone))
	}
}

func TestConfigureRefusesMissingOrBadToken(t *testing.T) {
	cf := startCF(t)
	c := plugintest.StartInProcess(t, options())
	for _, tc := range []struct {
		what string
		cfg  pluginConfig
	}{
		{"no token anywhere", pluginConfig{BaseURL: cf.BaseURL}},
		{"a missing token file", pluginConfig{APITokenFile: "/nonexistent/berth-cloudflare-token", BaseURL: cf.BaseURL}},
		{"an empty token file", pluginConfig{APITokenFile: writeToken(t, ""), BaseURL: cf.BaseURL}},
		{"a token file of two words", pluginConfig{APITokenFile: writeToken(t, "two words-secretish"), BaseURL: cf.BaseURL}},
		{"a relative token file", pluginConfig{APITokenFile: "token", BaseURL: cf.BaseURL}},
		{"a plain-HTTP base URL", pluginConfig{APITokenFile: writeToken(t, testToken), BaseURL: "http://api.cloudflare.com/client/v4"}},
		{"a base URL with credentials", pluginConfig{APITokenFile: writeToken(t, testToken), BaseURL: "https://u:p@api.cloudflare.com/client/v4"}},
		{"per_page 2", pluginConfig{APITokenFile: writeToken(t, testToken), PerPage: 2}},
		{"a timeout of an hour", pluginConfig{APITokenFile: writeToken(t, testToken), Timeout: "1h"}},
	} {
		err := c.Base().Configure(ctx(t), tc.cfg.JSON())
		wantKind(t, "Configure with "+tc.what, err, sdk.ErrInvalidConfig)
		if err != nil && (strings.Contains(err.Error(), "secretish") || strings.Contains(err.Error(), testToken)) {
			t.Errorf("Configure with %s echoes the token: %v", tc.what, err)
		}
	}
	// A token in the configuration itself is an unknown field.
	err := c.Base().ValidateConfig(ctx(t), []byte(`{"api_token": "`+testToken+`"}`))
	wantKind(t, "a token in the configuration", err, sdk.ErrInvalidConfig)
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Errorf("the refusal echoes the token: %v", err)
	}
	if len(cf.Requests()) != 0 {
		t.Errorf("configuring made %d requests", len(cf.Requests()))
	}
}

// TestRateLimitedThenSuccess: two 429s with Retry-After: 0, then the
// answer; the call succeeds, having sent the same request three times.
func TestRateLimitedThenSuccess(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	if _, err := d.GetRecords(ctx(t), zone); err != nil { // caches the zone id
		t.Fatal(err)
	}
	cf.ResetRequests()
	cf.RateLimit(2, "0")
	added, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x", TTL: time.Minute}}})
	if err != nil {
		t.Fatalf("AppendRecords after two 429s: %v", err)
	}
	if len(added) != 1 || added[0].Value != "x" {
		t.Errorf("added %+v", added)
	}
	got := methods(cf.Requests())
	if got["GET"] != 3 || got["POST"] != 1 {
		t.Errorf("requests %v, want the list three times (two 429s) and one POST", got)
	}
}

// TestRateLimitedForever: a 429 on every request ends the call with
// ErrRetryable before its deadline: after the bounded retries when
// Cloudflare asks for short waits, at once when it asks for a wait
// longer than the call has left.
func TestRateLimitedForever(t *testing.T) {
	for _, tc := range []struct {
		what, retryAfter string
		requests         int
	}{
		{"Retry-After: 0", "0", maxAttempts},
		{"Retry-After: 3600", "3600", 1},
		{"Retry-After a day away as a date", time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat), 1},
	} {
		t.Run(tc.what, func(t *testing.T) {
			cf := startCF(t)
			d := startPlugin(t, configFor(t, cf, testToken))
			cf.RateLimit(cftest.Forever, tc.retryAfter)
			callCtx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, err := d.GetRecords(callCtx, zone)
			wantKind(t, "GetRecords rate-limited forever", err, sdk.ErrRetryable)
			if errors.Is(err, sdk.ErrDeadline) || callCtx.Err() != nil {
				t.Errorf("the call ran into its deadline: %v", err)
			}
			if n := len(cf.Requests()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

// TestServerErrorsUnavailable: 5xx (JSON or Cloudflare's HTML error page)
// and an unreachable API are ErrRetryable, without retries (a POST that
// failed on the server may have been applied).
func TestServerErrorsUnavailable(t *testing.T) {
	for _, status := range []int{500, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			cf := startCF(t)
			d := startPlugin(t, configFor(t, cf, testToken))
			cf.Fail(cftest.Forever, status)
			_, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}})
			wantKind(t, "AppendRecords on a failing API", err, sdk.ErrRetryable)
			if n := len(cf.Requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if err != nil && strings.Contains(err.Error(), "<html>") {
				t.Errorf("the error holds the HTML page: %v", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		cf := startCF(t)
		cfg := configFor(t, cf, testToken)
		cf.Close()
		d := startPlugin(t, cfg)
		_, err := d.GetRecords(ctx(t), zone)
		wantKind(t, "GetRecords of an unreachable API", err, sdk.ErrRetryable)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		cf := startCF(t)
		cfg := configFor(t, cf, testToken)
		cfg.CAFile = ""
		d := startPlugin(t, cfg)
		_, err := d.GetRecords(ctx(t), zone)
		wantKind(t, "GetRecords of a server with an unknown CA", err, sdk.ErrFailedPrecondition)
	})
}

// TestUnknownZoneNotFound: a zone Cloudflare does not list is ErrNotFound.
func TestUnknownZoneNotFound(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	_, err := d.GetRecords(ctx(t), "example.net.")
	wantKind(t, "GetRecords of an unknown zone", err, sdk.ErrNotFound)
	_, err = d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: "example.net.", Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}})
	wantKind(t, "AppendRecords in an unknown zone", err, sdk.ErrNotFound)
	if w := writes(cf.Requests()); len(w) != 0 {
		t.Errorf("writes to an unknown zone: %d", len(w))
	}
}

// TestZoneIDCachedAndRefreshed: the zone id is looked up once; when the
// zone is deleted and added again (a new id), the stale id's 7003 makes
// the plugin look it up again and the call succeeds.
func TestZoneIDCachedAndRefreshed(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	for range 3 {
		if _, err := d.GetRecords(ctx(t), zone); err != nil {
			t.Fatal(err)
		}
	}
	lookups := func() int {
		n := 0
		for _, r := range cf.Requests() {
			if r.Path == "/client/v4/zones" {
				n++
			}
		}
		return n
	}
	if n := lookups(); n != 1 {
		t.Errorf("%d zone lookups for three calls, want 1", n)
	}
	cf.RemoveZone(zone)
	cf.AddZone(zone)
	if _, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}}); err != nil {
		t.Fatalf("AppendRecords after the zone changed id: %v", err)
	}
	if n := lookups(); n != 2 {
		t.Errorf("%d zone lookups, want 2", n)
	}
	if len(cf.Records(zone)) != 1 {
		t.Errorf("records: %+v", cf.Records(zone))
	}
}

// TestCNAMEConflictFailedPrecondition: Cloudflare's 81053/81054 (a CNAME
// beside A records) are ErrFailedPrecondition.
func TestCNAMEConflictFailedPrecondition(t *testing.T) {
	cf := startCF(t)
	cf.Seed(t, zone, map[string]any{"type": "A", "name": "www", "content": "192.0.2.1"})
	cf.Seed(t, zone, map[string]any{"type": "CNAME", "name": "alias", "content": "www.example.com"})
	d := startPlugin(t, configFor(t, cf, testToken))
	_, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "www", Type: "CNAME", Value: "other.example.org."}}})
	wantKind(t, "a CNAME beside an A record", err, sdk.ErrFailedPrecondition)
	_, err = d.SetRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "alias", Type: "A", Value: "192.0.2.9"}}})
	wantKind(t, "an A record beside a CNAME", err, sdk.ErrFailedPrecondition)
}

// TestKindOf maps Cloudflare's answers to the SDK's error kinds.
func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		status int
		codes  []int
		want   error
	}{
		{401, nil, sdk.ErrPermissionDenied},
		{403, []int{10000}, sdk.ErrPermissionDenied},
		{403, []int{9109}, sdk.ErrPermissionDenied},
		{400, []int{6003, 6111}, sdk.ErrPermissionDenied},
		{400, []int{9106}, sdk.ErrPermissionDenied},
		{400, []int{81057}, sdk.ErrAlreadyExists},
		{400, []int{81058}, sdk.ErrAlreadyExists},
		{400, []int{81053}, sdk.ErrFailedPrecondition},
		{400, []int{81054}, sdk.ErrFailedPrecondition},
		{404, []int{81044}, sdk.ErrNotFound},
		{400, []int{7003, 7000}, sdk.ErrNotFound},
		{404, nil, sdk.ErrNotFound},
		{429, []int{971}, sdk.ErrRetryable},
		{500, nil, sdk.ErrRetryable},
		{503, []int{10001}, sdk.ErrRetryable},
		{400, []int{1004, 9021}, sdk.ErrInvalidArgument},
		{409, nil, sdk.ErrFailedPrecondition},
	} {
		if got := kindOf(tc.status, tc.codes); got != tc.want {
			t.Errorf("kindOf(%d, %v) = %v, want %v", tc.status, tc.codes, got, tc.want)
		}
	}
}

// TestRetryAfter reads Retry-After as seconds or a date, and backs off
// doubling, up to a cap, without one.
func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		header  string
		attempt int
		want    time.Duration
	}{
		{"0", 1, 0},
		{"7", 1, 7 * time.Second},
		{" 12 ", 3, 12 * time.Second},
		{"", 1, time.Second},
		{"", 2, 2 * time.Second},
		{"", 3, 4 * time.Second},
		{"", 6, maxBackoff},
		{"soon", 1, time.Second},
		{"-5", 2, 2 * time.Second},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 1, 0}, // in the past
		{"99999999999", 1, 24 * time.Hour},
	} {
		if got := retryAfter(tc.header, tc.attempt); got != tc.want {
			t.Errorf("retryAfter(%q, %d) = %s, want %s", tc.header, tc.attempt, got, tc.want)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got := retryAfter(future, 1); got < 58*time.Minute || got > time.Hour {
		t.Errorf("retryAfter(an hour from now) = %s", got)
	}
}

// TestRedirectNotFollowed: the token goes only to base_url; an answer
// that redirects elsewhere is not followed.
func TestRedirectNotFollowed(t *testing.T) {
	var hits int
	var mu sync.Mutex
	elsewhere := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer elsewhere.Close()
	cf := startCF(t)
	redirector := httptest.NewTLSServer(http.RedirectHandler(elsewhere.URL+"/client/v4/zones", http.StatusTemporaryRedirect))
	defer redirector.Close()
	cfg := configFor(t, cf, testToken)
	cfg.BaseURL = redirector.URL + "/client/v4"
	// The redirector's certificate is httptest's, which cftest's CA file
	// also holds: they share one test certificate.
	cfg.CAFile = cf.CAFile
	d := startPlugin(t, cfg)
	_, err := d.GetRecords(ctx(t), zone)
	if err == nil {
		t.Fatal("a redirect was followed to an answer")
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the redirect target got %d requests", hits)
	}
}

// hostServices are the in-memory host services plugintest gives plugins.
func hostServices() host.Services {
	return host.Services{KV: plugintest.NewMemoryKV(), Events: plugintest.NewMemoryEvents()}
}

// TestConfigDefaults: an empty configuration takes Cloudflare's API, 100
// records a page, 30s a call and DNS-only records.
func TestConfigDefaults(t *testing.T) {
	cfg, err := sdk.DecodeConfig[Config]([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BaseURL != DefaultBaseURL || cfg.PerPage != 100 || cfg.Timeout != "30s" || cfg.Proxied || cfg.APITokenFile != "" {
		t.Errorf("defaults: %+v", cfg)
	}
}
