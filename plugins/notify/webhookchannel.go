package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/berthgw/berth/plugins/notify/netguard"
	"github.com/berthgw/berth/plugins/notify/webhook"
	"github.com/berthgw/berth/sdk"
)

// webhookChannel POSTs each message as JSON to a URL, signed with HMAC
// when the channel has a secret (see package webhook for the receiver).
type webhookChannel struct{}

func (webhookChannel) info() sdk.Channel {
	return sdk.Channel{
		Type: "webhook", Name: "webhook",
		Description: "POSTs a JSON body to a URL, signed with HMAC-SHA256 when a secret is set",
		Settings: []sdk.ChannelSetting{
			{Name: "url", Required: true, Description: "http or https URL the JSON is POSTed to; private and loopback addresses only if the plugin's allow_private_targets names them"},
			{Name: "secret", Secret: true, Description: "HMAC key: each delivery carries X-Berth-Signature (t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">) and X-Hub-Signature-256"},
			{Name: "headers", Secret: true, Description: "JSON object of extra request headers, e.g. {\"Authorization\": \"Bearer ...\"}; hop-by-hop, Host, Content-*, and X-Berth-*/X-Hub-Signature-* headers are refused"},
		},
	}
}

// webhookSettings are a webhook channel's parsed settings.
type webhookSettings struct {
	url     string
	secret  string
	headers http.Header
}

func parseWebhook(ctx context.Context, rt *runtime, settings map[string]string) (webhookSettings, error) {
	s := webhookSettings{url: setting(settings, "url"), secret: settings["secret"]}
	if s.url == "" {
		return s, invalidf("webhook: setting \"url\" is required")
	}
	if err := checkURL(ctx, rt, "webhook: setting \"url\"", s.url); err != nil {
		return s, err
	}
	var err error
	if s.headers, err = parseHeaders(settings["headers"]); err != nil {
		return s, err
	}
	return s, nil
}

// checkURL refuses a URL the guard refuses: the early form of the check
// made again at every dial. Only a failed DNS lookup is not a refusal, and
// may pass later.
func checkURL(ctx context.Context, rt *runtime, what, raw string) error {
	_, err := rt.guard.CheckURL(ctx, raw)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, netguard.ErrRefused):
		return invalidf("%s: %v%s", what, err, allowHint)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return invalidf("%s: %v", what, err)
	}
	return kindf(sdk.ErrRetryable, "%s: %v", what, err)
}

// reservedHeaders are headers an operator may not set: hop-by-hop headers
// and framing (they would corrupt or smuggle the request), and the
// headers the plugin sets itself (a receiver trusts them).
var reservedHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Te": true, "Trailer": true,
	"Upgrade": true, "Host": true, "Content-Length": true, "Content-Type": true, "Content-Encoding": true,
	"User-Agent": true, "X-Hub-Signature": true, "X-Hub-Signature-256": true,
}

// parseHeaders reads the headers setting. Header values are secrets
// (Authorization): errors name the header, never a value.
func parseHeaders(raw string) (http.Header, error) {
	h := http.Header{}
	if strings.TrimSpace(raw) == "" {
		return h, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, invalidf("webhook: setting \"headers\" is not a JSON object of strings")
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		if !validToken(name) {
			// An invalid name may be anything pasted there: not echoed.
			return nil, invalidf("webhook: setting \"headers\": header name #%d is not a valid HTTP token (no spaces, colons or control characters)", i+1)
		}
		canon := http.CanonicalHeaderKey(name)
		if reservedHeaders[canon] || strings.HasPrefix(canon, "Proxy-") || strings.HasPrefix(canon, "X-Berth-") {
			return nil, invalidf("webhook: setting \"headers\": header %q is set by the plugin or by HTTP itself and may not be configured", canon)
		}
		if !validHeaderValue(m[name]) {
			return nil, invalidf("webhook: setting \"headers\": the value of header %q has a control character (CR, LF, NUL, ...)", canon)
		}
		h.Set(canon, m[name])
	}
	return h, nil
}

// validToken reports whether s is an RFC 9110 token, the syntax of a
// header name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than tab: CR and LF
// would split the header (injection), NUL is refused by servers.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func (webhookChannel) check(ctx context.Context, rt *runtime, settings map[string]string, _ string) error {
	// The target of a webhook is its URL setting; a message's target is
	// not used.
	_, err := parseWebhook(ctx, rt, settings)
	return err
}

// webhookBody is the body of a message that is not about an event.
type webhookBody struct {
	Subject        string `json:"subject"`
	Text           string `json:"text"`
	IdempotencyKey string `json:"idempotency_key"`
}

func webhookPayload(msg sdk.Message) ([]byte, error) {
	if ev, ok := msg.Metadata["event"]; ok {
		// The event's JSON goes verbatim: receivers get the gateway's
		// own event document, byte for byte as signed.
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev), &obj); err != nil || obj == nil {
			return nil, invalidf("webhook: metadata \"event\" is not a JSON object")
		}
		return []byte(ev), nil
	}
	return json.Marshal(webhookBody{Subject: msg.Subject, Text: msg.TextBody, IdempotencyKey: msg.IdempotencyKey})
}

func (webhookChannel) send(ctx context.Context, rt *runtime, msg sdk.Message) (sdk.Delivery, error) {
	s, err := parseWebhook(ctx, rt, msg.Settings)
	if err != nil {
		return sdk.Delivery{}, err
	}
	body, err := webhookPayload(msg)
	if err != nil {
		return sdk.Delivery{}, err
	}
	h := s.headers.Clone()
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "berth-notify")
	if msg.IdempotencyKey != "" {
		h.Set(webhook.DeliveryHeader, headerSafe(msg.IdempotencyKey))
	}
	if v := msg.Metadata["event_type"]; v != "" {
		h.Set(webhook.EventHeader, headerSafe(v))
	}
	if v := msg.Metadata["event_id"]; v != "" {
		h.Set(webhook.EventIDHeader, headerSafe(v))
	}
	if s.secret != "" {
		h.Set(webhook.SignatureHeader, webhook.Sign([]byte(s.secret), body, time.Now()))
		h.Set(webhook.HubSignatureHeader, webhook.SignHub([]byte(s.secret), body))
	}
	a, err := post(ctx, rt, "webhook", s.url, h, body)
	if err != nil {
		return sdk.Delivery{}, err
	}
	if err := webhookStatus(a); err != nil {
		return sdk.Delivery{}, err
	}
	return sdk.Delivery{ProviderMessageID: "webhook:" + msg.IdempotencyKey, AcceptedAt: time.Now().UTC()}, nil
}

// webhookStatus classifies the receiver's answer.
func webhookStatus(a answer) error {
	code := a.status
	text := peerText(bytes.TrimSpace(a.body))
	if text != "" {
		text = ": " + text
	}
	switch {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		// Following a redirect would send the payload, and its headers,
		// where the operator did not configure.
		return kindf(sdk.ErrFailedPrecondition, "webhook: receiver answered %d %s (redirects are not followed; configure the final URL)", code, http.StatusText(code))
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		wait := ""
		if d, ok := retryAfter(a.header); ok {
			wait = fmt.Sprintf(" (retry after %s)", d)
		}
		return kindf(sdk.ErrRetryable, "webhook: receiver answered %d %s%s%s", code, http.StatusText(code), wait, text)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return kindf(sdk.ErrPermissionDenied, "webhook: receiver answered %d %s%s", code, http.StatusText(code), text)
	default:
		return kindf(sdk.ErrFailedPrecondition, "webhook: receiver answered %d %s%s", code, http.StatusText(code), text)
	}
}

// headerSafe drops what may not appear in a header value; keys and ids
// come from the gateway, but a header is no place to trust that.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
