package main

// Telegram cannot be reached from the test machines, so these tests run a
// local HTTPS server (trusted through the plugin's ca_file, allowed by an
// allow-list naming 127.0.0.1 alone) that implements the documented
// request and answers of the Bot API's sendMessage
// (https://core.telegram.org/bots/api#sendmessage and #making-requests):
// POST /bot<token>/sendMessage with a JSON body, answered
// {"ok":true,"result":Message} or {"ok":false,"error_code":N,
// "description":"...","parameters":{"retry_after":N}} with the HTTP status
// equal to error_code.

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
)

const telegramBotToken = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"

// fakeTelegram answers like the Bot API for the chats it knows.
type fakeTelegram struct {
	mu       sync.Mutex
	next     int64
	limited  int // requests still to answer 429
	retryAft int
}

func (f *fakeTelegram) handler(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(code int, desc string, params map[string]any) {
		w.WriteHeader(code)
		v := map[string]any{"ok": false, "error_code": code, "description": desc}
		if params != nil {
			v["parameters"] = params
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	token, method, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/bot"), "/")
	if !ok || method != "sendMessage" {
		fail(http.StatusNotFound, "Not Found", nil)
		return
	}
	if token != telegramBotToken {
		fail(http.StatusUnauthorized, "Unauthorized", nil)
		return
	}
	var body struct {
		ChatID    string `json:"chat_id"`
		Text      string `json:"text"`
		ParseMode string `json:"parse_mode"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil || body.Text == "" {
		fail(http.StatusBadRequest, "Bad Request: message text is empty", nil)
		return
	}
	f.mu.Lock()
	limited := f.limited > 0
	if limited {
		f.limited--
	}
	f.next++
	id := f.next
	f.mu.Unlock()
	if limited {
		fail(http.StatusTooManyRequests, "Too Many Requests: retry after N", map[string]any{"retry_after": f.retryAft})
		return
	}
	switch body.ChatID {
	case "-1001234567890", "@berth_alerts":
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "result": map[string]any{
			"message_id": id, "date": time.Now().Unix(), "text": body.Text, "chat": map[string]any{"id": -1001234567890, "type": "channel"},
		}})
	case "777":
		fail(http.StatusForbidden, "Forbidden: bot was blocked by the user", nil)
	case "888":
		fail(http.StatusBadRequest, "Bad Request: can't parse entities: Character '.' is reserved", nil)
	case "999":
		fail(http.StatusBadGateway, "Bad Gateway", nil)
	default:
		fail(http.StatusBadRequest, "Bad Request: chat not found", nil)
	}
}

func startTelegram(t *testing.T) (*receiver, *fakeTelegram) {
	f := &fakeTelegram{}
	return startReceiver(t, f.handler), f
}

func telegramSettingsFor(r *receiver) map[string]string {
	return map[string]string{"bot_token": telegramBotToken, "api_url": r.URL, "chat_id": "-1001234567890"}
}

func TestTelegramMessage(t *testing.T) {
	r, _ := startTelegram(t)
	n := startPlugin(t, r.Config())
	msg := sdk.Message{IdempotencyKey: "k1", Channel: "telegram", Target: "@berth_alerts", Subject: "edge-1 down (v1.2)!",
		TextBody: `load=3.5 [high] _x_ *y* ~z~ ` + "`c`" + ` > # + - | {a} . \ done`, Settings: telegramSettingsFor(r)}
	d, err := n.Send(ctx(t), msg)
	if err != nil {
		t.Fatal(err)
	}
	if d.ProviderMessageID != "-1001234567890/1" {
		t.Errorf("provider message id %q, want chat/message id", d.ProviderMessageID)
	}
	reqs := r.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/bot"+telegramBotToken+"/sendMessage" {
		t.Fatalf("requests %+v", reqs)
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	want := `*edge\-1 down \(v1\.2\)\!*` + "\n\n" +
		`load\=3\.5 \[high\] \_x\_ \*y\* \~z\~ ` + "\\`c\\`" + ` \> \# \+ \- \| \{a\} \. \\ done`
	if body["text"] != want || body["parse_mode"] != "MarkdownV2" || body["chat_id"] != "@berth_alerts" {
		t.Errorf("body = %s\nwant text %s", reqs[0].Body, want)
	}
	// The chat_id setting is the default target.
	msg.Target, msg.IdempotencyKey = "", "k2"
	if _, err := n.Send(ctx(t), msg); err != nil {
		t.Fatal(err)
	}
	if reqs := r.Requests(); !strings.Contains(string(reqs[len(reqs)-1].Body), `"chat_id":"-1001234567890"`) {
		t.Errorf("request %s does not go to the default chat", reqs[len(reqs)-1].Body)
	}
}

// TestTelegramEscaping: every reserved character of MarkdownV2 is
// escaped, and nothing else is touched.
func TestTelegramEscaping(t *testing.T) {
	tests := []struct{ subject, text, want string }{
		{"", "plain text 123", "plain text 123"},
		{"S", "", "*S*"},
		{"a_b", `\`, "*a\\_b*\n\n\\\\"},
		{"", "_*[]()~`>#+-=|{}.!", "\\_\\*\\[\\]\\(\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!"},
		{"été", "naïve — ok", "*été*\n\nnaïve — ok"},
		{"two\r\nlines", "", "*two lines*"},
	}
	for _, tt := range tests {
		if got := telegramText(sdk.Message{Subject: tt.subject, TextBody: tt.text}); got != tt.want {
			t.Errorf("telegramText(%q, %q) = %q, want %q", tt.subject, tt.text, got, tt.want)
		}
	}
	// Telegram counts the text after parsing: without the bold markers
	// (this text needs no escapes).
	long := telegramText(sdk.Message{Subject: "s", TextBody: strings.Repeat("é", 5000)})
	if n := len([]rune(strings.ReplaceAll(long, "*", ""))); n > telegramMax || n < telegramMax-10 {
		t.Errorf("a long text makes %d characters, want it cut to Telegram's %d", n, telegramMax)
	}
}

func TestTelegramErrors(t *testing.T) {
	r, f := startTelegram(t)
	cfg := r.Config()
	cfg.Timeout = "4s"
	n := startPlugin(t, cfg)
	s := telegramSettingsFor(r)
	wrongToken := map[string]string{"bot_token": "123456789:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", "api_url": r.URL}
	tests := []struct {
		name     string
		target   string
		settings map[string]string
		kind     error
		text     string
	}{
		{"chat not found", "-100999", s, refused, "chat not found"},
		{"bad entities", "888", s, refused, "can't parse entities"},
		{"blocked", "777", s, denied, "bot was blocked"},
		{"wrong token", "-1001234567890", wrongToken, denied, "Unauthorized"},
		{"bad gateway", "999", s, retryable, "Bad Gateway"},
		{"bad target", "chat-1", s, invalid, "target"},
		{"short username", "@abc", s, invalid, "target"},
		{"no target", "", map[string]string{"bot_token": telegramBotToken, "api_url": r.URL}, invalid, `"chat_id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: tt.name, Channel: "telegram", Target: tt.target, Subject: "s", TextBody: "t", Settings: tt.settings})
			wantKind(t, "send", err, tt.kind)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q lacks %q", err, tt.text)
			}
			noSecrets(t, err, telegramBotToken, wrongToken["bot_token"], "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
		})
	}

	t.Run("429 short wait retried once", func(t *testing.T) {
		f.mu.Lock()
		f.limited, f.retryAft = 1, 1
		f.mu.Unlock()
		before := len(r.Requests())
		if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "429-short", Channel: "telegram", Subject: "s", Settings: s}); err != nil {
			t.Fatalf("send after a 429 with retry_after 1: %v", err)
		}
		if got := len(r.Requests()) - before; got != 2 {
			t.Errorf("%d requests, want the 429 and one retry", got)
		}
	})
	t.Run("429 twice is left to the gateway", func(t *testing.T) {
		f.mu.Lock()
		f.limited, f.retryAft = 2, 1
		f.mu.Unlock()
		before := len(r.Requests())
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "429-twice", Channel: "telegram", Subject: "s", Settings: s})
		wantKind(t, "send", err, retryable)
		if got := len(r.Requests()) - before; got != 2 {
			t.Errorf("%d requests, want 2: one retry, no more", got)
		}
	})
	t.Run("429 beyond the deadline", func(t *testing.T) {
		f.mu.Lock()
		f.limited, f.retryAft = 1, 45
		f.mu.Unlock()
		begin := time.Now()
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "429-long", Channel: "telegram", Subject: "s", Settings: s})
		wantKind(t, "send", err, retryable)
		if err != nil && !strings.Contains(err.Error(), "retry after 45 s") {
			t.Errorf("error %q does not name retry_after", err)
		}
		if took := time.Since(begin); took > 3*time.Second {
			t.Errorf("waited %s for a retry_after that cannot fit", took)
		}
		f.mu.Lock()
		f.limited = 0
		f.mu.Unlock()
	})
}

// TestTelegramTokenNeverInErrors: the token is part of the Bot API's URL,
// and Go's HTTP errors (url.Error) quote the whole URL. Transport
// failures of every kind must come back without it.
func TestTelegramTokenNeverInErrors(t *testing.T) {
	r, _ := startTelegram(t)
	settings := telegramSettingsFor(r)

	t.Run("untrusted certificate", func(t *testing.T) {
		n := startPlugin(t, pluginConfig{AllowPrivateTargets: loopbackOnly}) // no ca_file
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "telegram", Subject: "s", Settings: settings})
		wantKind(t, "send", err, refused)
		noSecrets(t, err, telegramBotToken, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
		if err != nil && !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %q does not say the certificate is the problem", err)
		}
	})
	t.Run("server gone", func(t *testing.T) {
		n := startPlugin(t, r.Config())
		r.Close()
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "telegram", Subject: "s", Settings: settings})
		wantKind(t, "send", err, retryable)
		noSecrets(t, err, telegramBotToken, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
	})
	t.Run("bad settings", func(t *testing.T) {
		n := startPlugin(t, r.Config())
		for _, s := range []map[string]string{
			{"bot_token": telegramBotToken + "\n", "api_url": "http://" + strings.TrimPrefix(r.URL, "https://")},
			{"bot_token": "123:" + strings.Repeat("x", 10), "api_url": r.URL},
			{"bot_token": telegramBotToken, "api_url": "https://user:" + telegramBotToken + "@127.0.0.1/"},
		} {
			err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "telegram", Settings: s})
			wantKind(t, "CheckChannel", err, invalid)
			noSecrets(t, err, telegramBotToken, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "xxxxxxxxxx")
		}
	})
}
