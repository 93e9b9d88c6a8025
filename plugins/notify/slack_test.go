package main

// Slack cannot be reached from the test machines, so these tests run a
// local HTTPS server (trusted through the plugin's ca_file, allowed by an
// allow-list naming 127.0.0.1 alone) that implements the documented
// requests and answers of Slack's endpoints: chat.postMessage
// (https://api.slack.com/methods/chat.postMessage: Bearer token, JSON
// body, HTTP 200 with {"ok":false,"error":"..."} on failure, HTTP 429 with
// Retry-After when rate limited) and incoming webhooks
// (https://api.slack.com/messaging/webhooks: "ok", or a 4xx with a plain
// text error such as invalid_token or no_service).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
)

const (
	slackBotToken = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx"
	slackHookPath = "/services/T0001/B0001/XyZsecretHookPart42"
)

// fakeSlack answers like Slack for the channels it knows.
type fakeSlack struct {
	mu sync.Mutex
	ts int
	// limited counts down requests answered with 429.
	limited     int
	limitedWait string
}

func (f *fakeSlack) handler(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	reply := func(v map[string]any) { _ = json.NewEncoder(w).Encode(v) }
	f.mu.Lock()
	limited := f.limited > 0
	if limited {
		f.limited--
	}
	f.ts++
	ts := f.ts
	f.mu.Unlock()
	if limited {
		w.Header().Set("Retry-After", f.limitedWait)
		w.WriteHeader(http.StatusTooManyRequests)
		reply(map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	switch req.URL.Path {
	case slackHookPath:
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("ok"))
	case "/services/T0001/B0001/revoked":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("invalid_token"))
	case "/services/T0001/B0001/archived":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusGone)
		_, _ = w.Write([]byte("channel_is_archived"))
	case "/api/chat.postMessage":
		switch req.Header.Get("Authorization") {
		case "":
			reply(map[string]any{"ok": false, "error": "not_authed"})
			return
		case "Bearer " + slackBotToken:
		case "Bearer xoxb-9999999999-revoked-token-0000":
			reply(map[string]any{"ok": false, "error": "token_revoked"})
			return
		default:
			reply(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		var body struct{ Channel string }
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil || !strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
			reply(map[string]any{"ok": false, "error": "invalid_arguments"})
			return
		}
		switch body.Channel {
		case "C0123ABCD", "#ops":
			reply(map[string]any{"ok": true, "channel": "C0123ABCD", "ts": fmt.Sprintf("1700000000.%06d", ts)})
		case "#archived":
			reply(map[string]any{"ok": false, "error": "is_archived"})
		case "#private":
			reply(map[string]any{"ok": false, "error": "not_in_channel"})
		case "#busy":
			reply(map[string]any{"ok": false, "error": "ratelimited"})
		case "#flaky":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("upstream connect error"))
		default:
			reply(map[string]any{"ok": false, "error": "channel_not_found"})
		}
	default:
		http.NotFound(w, req)
	}
}

func startSlack(t *testing.T) (*receiver, *fakeSlack) {
	f := &fakeSlack{}
	return startReceiver(t, f.handler), f
}

func botSettings(r *receiver) map[string]string {
	return map[string]string{"bot_token": slackBotToken, "api_url": r.URL + "/api", "channel": "C0123ABCD"}
}

func TestSlackBotMessage(t *testing.T) {
	r, _ := startSlack(t)
	n := startPlugin(t, r.Config())
	msg := sdk.Message{IdempotencyKey: "k1", Channel: "slack", Target: "#ops", Subject: "Cluster edge-1 <down>",
		TextBody: "Node *n1* lost: see <https://evil.example|this> & <!channel>", Settings: botSettings(r)}
	d, err := n.Send(ctx(t), msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.ProviderMessageID, "C0123ABCD/1700000000.") {
		t.Errorf("provider message id %q, want channel/ts", d.ProviderMessageID)
	}
	reqs := r.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer "+slackBotToken {
		t.Errorf("Authorization = %q", got)
	}
	var body struct {
		Channel string
		Text    string
		Blocks  []struct {
			Type string
			Text struct{ Type, Text string }
		}
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Channel != "#ops" {
		t.Errorf("channel = %q, want the target #ops", body.Channel)
	}
	if len(body.Blocks) != 2 || body.Blocks[0].Type != "header" || body.Blocks[0].Text.Type != "plain_text" ||
		body.Blocks[1].Type != "section" || body.Blocks[1].Text.Type != "mrkdwn" {
		t.Fatalf("blocks = %+v, want a plain_text header and a mrkdwn section", body.Blocks)
	}
	if body.Blocks[0].Text.Text != "Cluster edge-1 <down>" {
		t.Errorf("header text = %q (plain_text needs no escaping)", body.Blocks[0].Text.Text)
	}
	wantSection := "Node *n1* lost: see &lt;https://evil.example|this&gt; &amp; &lt;!channel&gt;"
	if body.Blocks[1].Text.Text != wantSection {
		t.Errorf("section = %q, want %q", body.Blocks[1].Text.Text, wantSection)
	}
	if strings.Contains(body.Text, "<!channel>") || !strings.Contains(body.Text, "&lt;!channel&gt;") {
		t.Errorf("fallback text is not escaped: %q", body.Text)
	}

	// Without a target the channel setting is used.
	msg.Target, msg.IdempotencyKey = "", "k2"
	if _, err := n.Send(ctx(t), msg); err != nil {
		t.Fatal(err)
	}
	if reqs := r.Requests(); len(reqs) != 2 || !strings.Contains(string(reqs[1].Body), `"channel":"C0123ABCD"`) {
		t.Errorf("second request %s, want the default channel", reqs[len(reqs)-1].Body)
	}
}

func TestSlackIncomingWebhook(t *testing.T) {
	r, _ := startSlack(t)
	n := startPlugin(t, r.Config())
	d, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k1", Channel: "slack", Subject: "Deploy done", TextBody: "v1.2 on edge-1",
		Settings: map[string]string{"webhook_url": r.URL + slackHookPath}})
	if err != nil {
		t.Fatal(err)
	}
	if d.ProviderMessageID == "" {
		t.Error("no provider message id")
	}
	reqs := r.Requests()
	if len(reqs) != 1 || reqs[0].Path != slackHookPath || reqs[0].Header.Get("Authorization") != "" {
		t.Fatalf("requests %+v", reqs)
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["channel"]; ok {
		t.Errorf("an incoming webhook's payload names a channel: %s", reqs[0].Body)
	}
	if blocks, _ := body["blocks"].([]any); len(blocks) != 2 {
		t.Errorf("payload %s lacks the header and section blocks", reqs[0].Body)
	}
}

// TestSlackErrors maps Slack's refusals to kinds; the webhook URL and the
// token never appear in an error.
func TestSlackErrors(t *testing.T) {
	r, f := startSlack(t)
	cfg := r.Config()
	cfg.Timeout = "3s"
	n := startPlugin(t, cfg)
	bot := botSettings(r)
	withToken := func(token string) map[string]string {
		s := botSettings(r)
		s["bot_token"] = token
		return s
	}
	hook := func(path string) map[string]string { return map[string]string{"webhook_url": r.URL + path} }
	tests := []struct {
		name     string
		target   string
		settings map[string]string
		kind     error
		text     string
	}{
		{"channel_not_found", "#nope", bot, refused, "channel_not_found"},
		{"not_in_channel", "#private", bot, refused, "not_in_channel"},
		{"is_archived", "#archived", bot, refused, "is_archived"},
		{"invalid_auth", "#ops", withToken("xoxb-5555555555-wrong-token-00000"), denied, "invalid_auth"},
		{"token_revoked", "#ops", withToken("xoxb-9999999999-revoked-token-0000"), denied, "token_revoked"},
		{"ratelimited in body", "#busy", bot, retryable, "rate limited"},
		{"5xx", "#flaky", bot, retryable, "503"},
		{"webhook invalid_token", "", hook("/services/T0001/B0001/revoked"), denied, "invalid_token"},
		{"webhook archived", "", hook("/services/T0001/B0001/archived"), refused, "channel_is_archived"},
		{"webhook unknown path", "", hook("/services/T0001/B0001/unknown"), refused, "404"},
		{"bad target shape", "ops", bot, invalid, "target"},
		{"lower-case id", "c0123abcd", bot, invalid, "target"},
		{"no target, no channel", "", map[string]string{"bot_token": slackBotToken, "api_url": r.URL + "/api"}, invalid, `"channel"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: tt.name, Channel: "slack", Target: tt.target, Subject: "s", TextBody: "t", Settings: tt.settings})
			wantKind(t, "send", err, tt.kind)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q lacks %q", err, tt.text)
			}
			noSecrets(t, err, tt.settings["bot_token"], tt.settings["webhook_url"], "XyZsecretHookPart42", "revoked-token")
		})
	}

	// HTTP 429 with a short Retry-After: the plugin waits and tries once
	// more, within its timeout.
	f.mu.Lock()
	f.limited, f.limitedWait = 1, "1"
	f.mu.Unlock()
	before := len(r.Requests())
	if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "limited-once", Channel: "slack", Target: "#ops", Subject: "s", Settings: bot}); err != nil {
		t.Fatalf("send after one 429 with Retry-After: 1: %v", err)
	}
	if got := len(r.Requests()) - before; got != 2 {
		t.Errorf("%d requests for one 429 and a retry, want 2", got)
	}
	// A Retry-After beyond the timeout is left to the gateway, and named.
	f.mu.Lock()
	f.limited, f.limitedWait = 1, "30"
	f.mu.Unlock()
	begin := time.Now()
	_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "limited-long", Channel: "slack", Target: "#ops", Subject: "s", Settings: bot})
	wantKind(t, "send with Retry-After: 30", err, retryable)
	if err != nil && !strings.Contains(err.Error(), "30s") {
		t.Errorf("error %q does not name the wait", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("the plugin waited %s for a Retry-After it could not honour", took)
	}
}

func TestSlackCheckChannel(t *testing.T) {
	r, _ := startSlack(t)
	n := startPlugin(t, r.Config())
	hookURL := r.URL + slackHookPath
	tests := []struct {
		name     string
		settings map[string]string
		target   string
		ok       bool
		text     string
	}{
		{"bot token", botSettings(r), "C0123ABCD", true, ""},
		{"bot token, #name", botSettings(r), "#ops-alerts", true, ""},
		{"webhook", map[string]string{"webhook_url": hookURL}, "", true, ""},
		{"neither", map[string]string{"channel": "#ops"}, "", false, "webhook_url"},
		{"both", map[string]string{"webhook_url": hookURL, "bot_token": slackBotToken}, "", false, "both"},
		{"http webhook", map[string]string{"webhook_url": strings.Replace(hookURL, "https:", "http:", 1)}, "", false, "https"},
		{"user token", map[string]string{"bot_token": "xoxp-1111111111-2222222222-abcdefabcdef", "api_url": r.URL + "/api"}, "", false, `"bot_token"`},
		{"http api", map[string]string{"bot_token": slackBotToken, "api_url": strings.Replace(r.URL, "https:", "http:", 1)}, "", false, `"api_url"`},
		{"bad channel", map[string]string{"bot_token": slackBotToken, "api_url": r.URL + "/api", "channel": "ops"}, "", false, `"channel"`},
		{"channel with webhook", map[string]string{"webhook_url": hookURL, "channel": "#ops"}, "", false, `"channel"`},
		{"bad target", botSettings(r), "#Ops Room", false, "target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "slack", Settings: tt.settings, Target: tt.target})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, "CheckChannel", err, invalid)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q lacks %q", err, tt.text)
			}
			noSecrets(t, err, slackBotToken, "XyZsecretHookPart42", "xoxp-1111111111-2222222222-abcdefabcdef")
		})
	}
	if got := len(r.Requests()); got != 0 {
		t.Errorf("CheckChannel sent %d requests", got)
	}
}
