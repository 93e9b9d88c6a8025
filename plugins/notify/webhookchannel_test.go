package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/plugins/notify/webhook"
	"github.com/berthgw/berth/sdk"
)

const hookSecret = "whsec-5b1f0c1e-test-secret"

func TestWebhookDelivery(t *testing.T) {
	r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	n := startPlugin(t, r.Config())
	settings := map[string]string{
		"url":     r.URL + "/hooks/berth?tenant=a",
		"secret":  hookSecret,
		"headers": `{"Authorization": "Bearer receiver-token-123", "x-tenant": "acme"}`,
	}
	event := `{"type":"cluster.ready","id":"ev-42","data":{"cluster":"edge-1","note":"\u00e9t\u00e9"}}`
	tests := []struct {
		name     string
		msg      sdk.Message
		wantBody string // exact body, when the test knows it
		wantJSON map[string]any
		event    bool
	}{
		{
			name:     "plain message",
			msg:      sdk.Message{IdempotencyKey: "key-plain", Subject: "Cluster ready", TextBody: "edge-1 is <ready> & serving"},
			wantJSON: map[string]any{"subject": "Cluster ready", "text": "edge-1 is <ready> & serving", "idempotency_key": "key-plain"},
		},
		{
			name:     "event verbatim",
			msg:      sdk.Message{IdempotencyKey: "key-event", Subject: "ignored", Metadata: map[string]string{"event": event, "event_type": "cluster.ready", "event_id": "ev-42"}},
			wantBody: event,
			event:    true,
		},
	}
	start := time.Now()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.msg.Channel, tt.msg.Settings = "webhook", settings
			d, err := n.Send(ctx(t), tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if d.ProviderMessageID == "" {
				t.Error("no provider message id")
			}
			reqs := r.Requests()
			if len(reqs) != i+1 {
				t.Fatalf("receiver got %d requests, want %d", len(reqs), i+1)
			}
			got := reqs[i]
			if got.Method != http.MethodPost || got.Path != "/hooks/berth" {
				t.Errorf("request %s %s, want POST /hooks/berth", got.Method, got.Path)
			}
			for name, want := range map[string]string{
				"Content-Type": "application/json", "User-Agent": "berth-notify",
				"X-Berth-Delivery": tt.msg.IdempotencyKey, "Authorization": "Bearer receiver-token-123", "X-Tenant": "acme",
			} {
				if v := got.Header.Get(name); v != want {
					t.Errorf("header %s = %q, want %q", name, v, want)
				}
			}
			if tt.event {
				if got.Header.Get("X-Berth-Event") != "cluster.ready" || got.Header.Get("X-Berth-Event-Id") != "ev-42" {
					t.Errorf("event headers = %q, %q", got.Header.Get("X-Berth-Event"), got.Header.Get("X-Berth-Event-Id"))
				}
			} else if _, ok := got.Header["X-Berth-Event"]; ok {
				t.Error("X-Berth-Event set on a message without an event type")
			}
			if tt.wantBody != "" && string(got.Body) != tt.wantBody {
				t.Errorf("body = %s, want %s", got.Body, tt.wantBody)
			}
			if tt.wantJSON != nil {
				var body map[string]any
				if err := json.Unmarshal(got.Body, &body); err != nil {
					t.Fatalf("body %s: %v", got.Body, err)
				}
				for k, v := range tt.wantJSON {
					if body[k] != v {
						t.Errorf("body[%q] = %v, want %v", k, body[k], v)
					}
				}
			}
			// What a receiver does: verify the signature on the raw body.
			sig := got.Header.Get("X-Berth-Signature")
			if err := webhook.Verify([]byte(hookSecret), sig, got.Body, time.Now(), webhook.DefaultTolerance); err != nil {
				t.Errorf("the receiver cannot verify the delivery: %v", err)
			}
			// ... and refuses it altered, under another secret, or replayed late.
			tampered := append([]byte(nil), got.Body...)
			tampered[len(tampered)/2] ^= 1
			for what, err := range map[string]error{
				"tampered body": webhook.Verify([]byte(hookSecret), sig, tampered, time.Now(), webhook.DefaultTolerance),
				"wrong secret":  webhook.Verify([]byte(hookSecret+"x"), sig, got.Body, time.Now(), webhook.DefaultTolerance),
				"replayed late": webhook.Verify([]byte(hookSecret), sig, got.Body, time.Now().Add(10*time.Minute), webhook.DefaultTolerance),
			} {
				if !errors.Is(err, webhook.ErrSignature) {
					t.Errorf("%s: Verify = %v, want ErrSignature", what, err)
				}
			}
			// The signature's time is the send's, not some other clock.
			ts, err := strconv.ParseInt(strings.TrimPrefix(strings.Split(got.Header.Get("X-Berth-Signature"), ",")[0], "t="), 10, 64)
			if err != nil || ts < start.Unix() || ts > time.Now().Unix() {
				t.Errorf("signature time %d (%v) is not between the test's start and now", ts, err)
			}
			if want := webhook.SignHub([]byte(hookSecret), got.Body); got.Header.Get("X-Hub-Signature-256") != want {
				t.Errorf("X-Hub-Signature-256 = %q, want %q", got.Header.Get("X-Hub-Signature-256"), want)
			}
		})
	}
}

// TestWebhookAnswers checks how the receiver's answer is classified: what
// the gateway retries, and what it dead-letters with the receiver's text.
func TestWebhookAnswers(t *testing.T) {
	tests := []struct {
		status int
		body   string
		header map[string]string
		kind   error
		text   string // in the error
	}{
		{http.StatusOK, "", nil, nil, ""},
		{http.StatusAccepted, "queued", nil, nil, ""},
		{http.StatusInternalServerError, "database down", nil, retryable, "database down"},
		{http.StatusBadGateway, "", nil, retryable, "502"},
		{http.StatusServiceUnavailable, "", map[string]string{"Retry-After": "120"}, retryable, "retry after 2m0s"},
		{http.StatusTooManyRequests, "slow down", nil, retryable, "429"},
		{http.StatusRequestTimeout, "", nil, retryable, "408"},
		{http.StatusBadRequest, "unknown field \"subject\"", nil, refused, `unknown field "subject"`},
		{http.StatusNotFound, "no such hook", nil, refused, "no such hook"},
		{http.StatusGone, "", nil, refused, "410"},
		{http.StatusUnauthorized, "bad token", nil, denied, "bad token"},
		{http.StatusForbidden, "", nil, denied, "403"},
		{http.StatusFound, "", map[string]string{"Location": "https://127.0.0.1:1/elsewhere"}, refused, "302"},
		{http.StatusPermanentRedirect, "", map[string]string{"Location": "/elsewhere"}, refused, "redirects are not followed"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			n := startPlugin(t, r.Config())
			_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s",
				Settings: map[string]string{"url": r.URL + "/hook", "secret": hookSecret}})
			if tt.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				wantKind(t, "send", err, tt.kind)
				if err != nil && !strings.Contains(err.Error(), tt.text) {
					t.Errorf("error %q lacks %q", err, tt.text)
				}
			}
			noSecrets(t, err, hookSecret)
			// Exactly one request: no redirect followed, no retry of our own.
			if got := len(r.Requests()); got != 1 {
				t.Errorf("receiver got %d requests, want 1", got)
			}
		})
	}
}

// TestWebhookAnswerBounded: a receiver cannot flood the error, or the
// gateway's dead-letter record, with its answer, nor inject lines into it.
func TestWebhookAnswerBounded(t *testing.T) {
	r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("first line\r\nX-Injected: yes\n" + strings.Repeat("x", 1<<20)))
	})
	n := startPlugin(t, r.Config())
	_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s", Settings: map[string]string{"url": r.URL}})
	wantKind(t, "send", err, refused)
	if err == nil {
		return
	}
	if len(err.Error()) > 500 || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error is %d bytes (or has line breaks): %.200q", len(err.Error()), err)
	}
	if !strings.Contains(err.Error(), "first line X-Injected: yes") {
		t.Errorf("error lacks the receiver's text, on one line: %.200q", err)
	}
}

// TestWebhookTimeout: a receiver that never answers is a temporary
// failure once the plugin's timeout passes.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	r := startReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	cfg := r.Config()
	cfg.Timeout = "300ms"
	n := startPlugin(t, cfg)
	begin := time.Now()
	_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s", Settings: map[string]string{"url": r.URL}})
	wantKind(t, "send to a receiver that hangs", err, retryable)
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("send took %s with a 300ms timeout", took)
	}
}

func TestWebhookBadMessage(t *testing.T) {
	r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	n := startPlugin(t, r.Config())
	for _, ev := range []string{`[1,2]`, `"text"`, `null`, `{"open":`, `42`} {
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k-" + ev, Channel: "webhook", Subject: "s",
			Metadata: map[string]string{"event": ev}, Settings: map[string]string{"url": r.URL}})
		wantKind(t, "event "+ev, err, invalid)
	}
	if got := len(r.Requests()); got != 0 {
		t.Errorf("receiver got %d requests for bad messages", got)
	}
}

// TestWebhookHeadersSetting: the extra headers cannot smuggle requests,
// forge the plugin's own headers or inject lines, and refusals never
// echo a header's value (it is often a credential).
func TestWebhookHeadersSetting(t *testing.T) {
	r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	n := startPlugin(t, r.Config())
	const value = "s3cr3t-header-value"
	tests := map[string]string{
		"CR in value":          `{"X-Token": "` + value + `\r\nX-Evil: 1"}`,
		"LF in value":          `{"X-Token": "` + value + `\nX-Evil: 1"}`,
		"NUL in value":         `{"X-Token": "` + value + `\u0000"}`,
		"CRLF in name":         `{"X-Token\r\nX-Evil": "` + value + `"}`,
		"space in name":        `{"X Token": "` + value + `"}`,
		"colon in name":        `{"X-Token:": "` + value + `"}`,
		"empty name":           `{"": "` + value + `"}`,
		"Host":                 `{"host": "` + value + `"}`,
		"Content-Length":       `{"Content-Length": "0"}`,
		"Content-Type":         `{"content-type": "text/plain"}`,
		"Transfer-Encoding":    `{"Transfer-Encoding": "chunked"}`,
		"Connection":           `{"Connection": "close"}`,
		"Keep-Alive":           `{"Keep-Alive": "timeout=5"}`,
		"TE":                   `{"TE": "trailers"}`,
		"Trailer":              `{"Trailer": "X-Foo"}`,
		"Upgrade":              `{"Upgrade": "websocket"}`,
		"Proxy-Authorization":  `{"Proxy-Authorization": "` + value + `"}`,
		"X-Berth-Signature":    `{"X-Berth-Signature": "t=1,v1=00"}`,
		"X-Hub-Signature-256":  `{"x-hub-signature-256": "sha256=00"}`,
		"X-Berth-Delivery":     `{"X-Berth-Delivery": "forged"}`,
		"not an object":        `["Authorization", "` + value + `"]`,
		"not strings":          `{"X-Count": 3}`,
		"not JSON":             `Authorization: ` + value,
		"value is an object":   `{"X-Token": {"v": "` + value + `"}}`,
		"DEL in value":         `{"X-Token": "` + value + `\u007f"}`,
		"unicode line break":   `{"X-Token\u2028": "` + value + `"}`,
		"User-Agent is ours":   `{"User-Agent": "curl"}`,
		"Content-Encoding":     `{"Content-Encoding": "gzip"}`,
		"Proxy-Connection":     `{"Proxy-Connection": "keep-alive"}`,
		"X-Berth-Event forged": `{"X-Berth-Event": "cluster.deleted"}`,
	}
	for name, headers := range tests {
		t.Run(name, func(t *testing.T) {
			settings := map[string]string{"url": r.URL, "headers": headers}
			err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "webhook", Settings: settings})
			wantKind(t, "CheckChannel", err, invalid)
			noSecrets(t, err, value)
			if err != nil && !strings.Contains(err.Error(), `"headers"`) {
				t.Errorf("error does not name the setting: %v", err)
			}
			_, err = n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s", Settings: settings})
			wantKind(t, "Send", err, invalid)
			noSecrets(t, err, value)
		})
	}
	if got := len(r.Requests()); got != 0 {
		t.Errorf("receiver got %d requests with bad headers", got)
	}
	// A good one passes, and arrives.
	settings := map[string]string{"url": r.URL, "headers": `{"Authorization": "Bearer ` + value + `", "X-Custom_Token.v2": "a\tb"}`}
	if err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "webhook", Settings: settings}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "good", Channel: "webhook", Subject: "s", Settings: settings}); err != nil {
		t.Fatal(err)
	}
	if reqs := r.Requests(); len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+value || reqs[0].Header.Get("X-Custom_Token.v2") != "a\tb" {
		t.Errorf("receiver got %+v", reqs)
	}
}

func TestWebhookCheckChannel(t *testing.T) {
	n := startPlugin(t, pluginConfig{})
	tests := []struct {
		name     string
		settings map[string]string
		kind     error
		text     string
	}{
		{"public https", map[string]string{"url": "https://93.184.216.34/hook"}, nil, ""},
		{"public http with secret", map[string]string{"url": "http://93.184.216.34:8080/hook", "secret": "k"}, nil, ""},
		{"missing url", map[string]string{"secret": "k"}, invalid, `"url"`},
		{"unknown setting", map[string]string{"url": "https://93.184.216.34/", "sekret": "k"}, invalid, `"sekret"`},
		{"not a url", map[string]string{"url": "::not a url"}, invalid, `"url"`},
		{"ftp", map[string]string{"url": "ftp://93.184.216.34/"}, invalid, `"url"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "webhook", Settings: tt.settings})
			if tt.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, "CheckChannel", err, tt.kind)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not name %s", err, tt.text)
			}
		})
	}
	wantKind(t, "unknown channel", n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "pager", Settings: map[string]string{}}), notFoundKind)
}
