package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/plugins/billing-stripe/internal/stripemocktest"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
)

// testWebhookSecret signs the tests' webhooks.
const testWebhookSecret = "whsec_berthTestSigningSecret0123456789"

// ctx bounds one call of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error = %v, want one matching %v", what, err, kind)
	}
}

// sent is what the plugin sent Stripe in one request.
type sent struct {
	Method, Path   string
	Query, Form    url.Values
	IdempotencyKey string
	Authorization  string
}

// recorder is an http.RoundTripper that records each request the
// plugin's Stripe client sends before passing it on.
type recorder struct {
	mu   sync.Mutex
	reqs []sent
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	s := sent{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(),
		IdempotencyKey: req.Header.Get("Idempotency-Key"), Authorization: req.Header.Get("Authorization")}
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		s.Form, _ = url.ParseQuery(string(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// requests returns what was sent so far.
func (r *recorder) requests() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.reqs...)
}

// stripeTest is the plugin served in the test process, over real gRPC,
// talking to a stripe-mock through a recorder.
type stripeTest struct {
	mock     *stripemocktest.Server
	rec      *recorder
	b        pluginclient.Billing
	settings map[string]string
}

// start serves a fresh plugin against mock (a fresh stripe-mock when nil).
func start(t *testing.T, mock *stripemocktest.Server) *stripeTest {
	t.Helper()
	if mock == nil {
		mock = stripemocktest.Start(t)
	}
	rec := &recorder{}
	bl := newBilling()
	bl.http = &http.Client{Transport: rec, Timeout: 30 * time.Second}
	c := plugintest.StartInProcess(t, sdk.Options{Name: "billing-stripe", Version: Version, Billing: bl})
	b, err := c.Billing()
	if err != nil {
		t.Fatal(err)
	}
	return &stripeTest{mock: mock, rec: rec, b: b, settings: mockSettings(mock)}
}

// mockSettings are settings that point the plugin at mock.
func mockSettings(mock *stripemocktest.Server) map[string]string {
	return map[string]string{
		settingSecretKey:     stripemocktest.TestKey,
		settingWebhookSecret: testWebhookSecret,
		settingAPIBase:       mock.URL,
	}
}

// only returns the one request the plugin sent since from, failing the
// test when there is not exactly one.
func (x *stripeTest) only(t *testing.T, from int) sent {
	t.Helper()
	reqs := x.rec.requests()[from:]
	if len(reqs) != 1 {
		t.Fatalf("the plugin sent %d requests to Stripe, want 1: %+v", len(reqs), reqs)
	}
	if want := "Bearer " + stripemocktest.TestKey; reqs[0].Authorization != want {
		t.Errorf("Authorization %q, want %q", reqs[0].Authorization, want)
	}
	return reqs[0]
}

// wantForm checks form values of a request.
func wantForm(t *testing.T, s sent, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := s.Form.Get(k); got != v {
			t.Errorf("%s %s: %s = %q, want %q", s.Method, s.Path, k, got, v)
		}
	}
}

// lacks checks that a request has none of the form keys.
func lacks(t *testing.T, s sent, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if s.Form.Has(k) {
			t.Errorf("%s %s: sends %s = %q", s.Method, s.Path, k, s.Form.Get(k))
		}
	}
}
