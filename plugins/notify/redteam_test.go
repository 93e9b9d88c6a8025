package main

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berthgw/berth/sdk"
)

// An SMTP server (or whoever sits on the path before STARTTLS) that sends
// an endless reply line must not make the plugin buffer it until the
// send's timeout: net/textproto reads a line of any length.
func TestEmailEndlessReplyIsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	const offered = 64 << 20
	var written atomic.Int64
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		chunk := append([]byte("220 "), bytes.Repeat([]byte("x"), 64<<10-4)...)
		for written.Load() < offered {
			n, err := conn.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			chunk = chunk[:cap(chunk)]
			copy(chunk, bytes.Repeat([]byte("x"), 4))
		}
		buf := make([]byte, 1)
		_, _ = conn.Read(buf) // hold the connection until the client gives up
	}()
	host, port, _ := net.SplitHostPort(l.Addr().String())
	n := startPlugin(t, pluginConfig{AllowPrivateTargets: loopbackOnly, Timeout: "5s"})
	_, err = n.Send(ctx(t), sdk.Message{Channel: "email", Target: "ops@example.com", Subject: "s", TextBody: "t",
		Settings: map[string]string{"host": host, "port": port, "tls": "none", "from": "berth@example.com"}})
	if err == nil {
		t.Fatal("an endless greeting was taken for one")
	}
	if w := written.Load(); w >= 16<<20 {
		t.Errorf("the plugin read %d MiB of one reply line before giving up", w>>20)
	}
}

// A receiver's answer goes into the error, and from there into the
// delivery's last_error that notification admins read; secrets are
// write-only to them. A receiver that names the credential it refused (a
// token without its "Bearer", or the value cut short by the error's length
// bound) must not show it there.
func TestReceiverEchoOfSecretsIsRedacted(t *testing.T) {
	const token = "tok-0123456789abcdefghij"
	for _, body := range []string{
		"invalid token " + token,
		strings.Repeat("a", 285) + " " + token,
	} {
		r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(body))
		})
		n := startPlugin(t, r.Config())
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s",
			Settings: map[string]string{"url": r.URL, "headers": `{"Authorization": "Bearer ` + token + `"}`}})
		if err == nil {
			t.Fatal("a 400 was taken for a delivery")
		}
		if strings.Contains(err.Error(), token[:10]) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
}

// Probes of the guard through every channel's host setting, in spellings
// the shared SSRF test does not use: none reaches the loopback listener.
func TestSSRFSpellingsThroughEveryChannel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var hits atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	hosts := []string{"0x7f.1", "0177.0.0.1", "127.0.0.1.", "localhost.", "LOCALHOST", "x.localhost", "0", "0.0.0.0",
		"[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[::]", "[fe80::1%25lo]", "metadata.google.internal."}
	n := startPlugin(t, pluginConfig{})
	for _, h := range hosts {
		bare := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		for _, c := range []struct {
			channel  string
			settings map[string]string
		}{
			{"email", map[string]string{"host": bare, "port": port, "tls": "none", "from": "b@example.com"}},
			{"webhook", map[string]string{"url": "http://" + h + ":" + port + "/"}},
			{"slack", map[string]string{"api_url": "https://" + h + ":" + port, "bot_token": slackBotToken}},
			{"telegram", map[string]string{"api_url": "https://" + h + ":" + port, "bot_token": telegramBotToken}},
		} {
			target := map[string]string{"email": "o@example.com", "slack": "#ops", "telegram": "-100123"}[c.channel]
			if err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: c.channel, Settings: c.settings}); err == nil {
				t.Errorf("%s %s: accepted when saved", c.channel, h)
			}
			if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: c.channel, Target: target, Subject: "s", Settings: c.settings}); err == nil {
				t.Errorf("%s %s: sent", c.channel, h)
			}
		}
	}
	if got := hits.Load(); got != 0 {
		t.Errorf("the loopback listener was reached %d times", got)
	}
}
