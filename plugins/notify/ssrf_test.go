package main

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/berthgw/berth/sdk"
)

// TestSSRFRefused: with the allow-list off, no spelling of a loopback,
// metadata or non-HTTP target is accepted, neither when the channel is
// saved (CheckChannel) nor when a message is sent, and the loopback
// receiver the URLs point at gets no request.
func TestSSRFRefused(t *testing.T) {
	r := startPlainReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(r.URL, "http://"))
	n := startPlugin(t, pluginConfig{})
	urls := []string{
		"http://127.1:" + port + "/",
		"http://0x7f000001:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://127.0.0.1:" + port + "/",
		"http://2130706433:" + port + "/",
		"http://[::1]:" + port + "/",
		"http://localhost:" + port + "/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/",
		"http://10.0.0.1/",
		"file:///etc/passwd",
		"gopher://x",
		"http://user@127.0.0.1:" + port + "/",
		"http://user@93.184.216.34/",
	}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			settings := map[string]string{"url": u, "secret": hookSecret}
			err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "webhook", Settings: settings})
			wantKind(t, "CheckChannel", err, invalid)
			_, err = n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s", Settings: settings})
			wantKind(t, "Send", err, invalid)
		})
	}
	// The same receiver through the other channels' URL settings.
	https := "https://127.0.0.1:" + port
	for _, c := range []struct{ channel, what string }{
		{"slack", "webhook_url"}, {"slack", "api_url"}, {"telegram", "api_url"},
	} {
		settings := map[string]string{c.what: https + "/x"}
		switch {
		case c.channel == "slack" && c.what == "api_url":
			settings["bot_token"] = slackBotToken
		case c.channel == "telegram":
			settings["bot_token"] = telegramBotToken
		}
		err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: c.channel, Settings: settings})
		wantKind(t, c.channel+" "+c.what+" CheckChannel", err, invalid)
		_, err = n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: c.channel, Target: map[string]string{"slack": "#ops", "telegram": "-100123"}[c.channel], Subject: "s", Settings: settings})
		wantKind(t, c.channel+" "+c.what+" Send", err, invalid)
	}
	if got := r.Requests(); len(got) != 0 {
		t.Fatalf("the loopback receiver got %d requests: %+v", len(got), got[0])
	}
}

// TestSSRFAllowListed: an operator who names the receiver's address lets
// exactly that through; metadata stays refused.
func TestSSRFAllowListed(t *testing.T) {
	r := startPlainReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	n := startPlugin(t, pluginConfig{AllowPrivateTargets: loopbackOnly})
	settings := map[string]string{"url": r.URL + "/hook"}
	if err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "webhook", Settings: settings}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s", Settings: settings}); err != nil {
		t.Fatal(err)
	}
	if got := len(r.Requests()); got != 1 {
		t.Fatalf("receiver got %d requests, want 1", got)
	}
	u, _ := url.Parse(r.URL)
	for _, raw := range []string{"http://127.0.0.2:" + u.Port() + "/", "http://169.254.169.254/", "http://[::1]:" + u.Port() + "/"} {
		err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "webhook", Settings: map[string]string{"url": raw}})
		wantKind(t, raw+" beside the allow-list", err, invalid)
	}
}
