package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/berthgw/berth/plugins/notify/internal/mailpittest"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// conformanceSends counts the requests of the suite's SendIsIdempotent
// check (subject "Conformance"): keys conformance-1 twice and
// conformance-2 once must reach the peer twice, not three times.
func conformanceSends(reqs []request) int {
	n := 0
	for _, r := range reqs {
		if strings.Contains(string(r.Body), "Conformance") {
			n++
		}
	}
	return n
}

// TestConformance runs the SDK's notifier conformance suite on every
// channel, each against a real receiver, then checks that the repeated
// key did not reach the receiver twice.
func TestConformance(t *testing.T) {
	inProcess := func(cfg pluginConfig) plugintest.Factory {
		return plugintest.InProcess(func(*testing.T) sdk.Options { return options() }, func(*testing.T) []byte { return cfg.JSON() })
	}

	t.Run("email", func(t *testing.T) {
		mp := mailpittest.Start(t, mailpittest.Options{Username: smtpUser, Password: smtpPassword})
		plugintest.RunNotifierChannelConformance(t, inProcess(mailpitConfig(mp)), plugintest.NotifierChannel{
			Name: "email", Settings: mailpitSettings(mp, "starttls"), Target: "ops@example.com",
		})
		n := 0
		for _, m := range mp.Messages(t) {
			if m.Subject == "Conformance" {
				n++
			}
		}
		if n != 2 {
			t.Errorf("mailpit got %d conformance messages, want 2 (one per key)", n)
		}
	})
	t.Run("webhook", func(t *testing.T) {
		r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
		plugintest.RunNotifierChannelConformance(t, inProcess(r.Config()), plugintest.NotifierChannel{
			Name: "webhook", Settings: map[string]string{"url": r.URL + "/hook", "secret": hookSecret},
		})
		if got := conformanceSends(r.Requests()); got != 2 {
			t.Errorf("receiver got %d conformance deliveries, want 2 (one per key)", got)
		}
	})
	t.Run("slack", func(t *testing.T) {
		r, _ := startSlack(t)
		plugintest.RunNotifierChannelConformance(t, inProcess(r.Config()), plugintest.NotifierChannel{
			Name: "slack", Settings: botSettings(r), Target: "#ops",
		})
		if got := conformanceSends(r.Requests()); got != 2 {
			t.Errorf("Slack got %d conformance posts, want 2 (one per key)", got)
		}
	})
	t.Run("telegram", func(t *testing.T) {
		r, _ := startTelegram(t)
		plugintest.RunNotifierChannelConformance(t, inProcess(r.Config()), plugintest.NotifierChannel{
			Name: "telegram", Settings: telegramSettingsFor(r), Target: "-1001234567890",
		})
		if got := conformanceSends(r.Requests()); got != 2 {
			t.Errorf("Telegram got %d conformance messages, want 2 (one per key)", got)
		}
	})
}

// TestConformanceSubprocess runs the suite on the built binary, started
// the way the gateway starts it.
func TestConformanceSubprocess(t *testing.T) {
	r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	f := plugintest.Subprocess(plugintest.Build(t, "."), func(*testing.T) []byte { return r.Config().JSON() })
	plugintest.RunNotifierChannelConformance(t, f, plugintest.NotifierChannel{
		Name: "webhook", Settings: map[string]string{"url": r.URL, "secret": hookSecret},
	})
}

func TestListChannels(t *testing.T) {
	n := startPlugin(t, pluginConfig{})
	chans, err := n.ListChannels(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"email":    {"host", "port", "tls", "username", "password", "from"},
		"webhook":  {"url", "secret", "headers"},
		"slack":    {"webhook_url", "bot_token", "channel", "api_url"},
		"telegram": {"bot_token", "chat_id", "api_url"},
	}
	secret := map[string]bool{"email/password": true, "webhook/secret": true, "webhook/headers": true,
		"slack/webhook_url": true, "slack/bot_token": true, "telegram/bot_token": true}
	if len(chans) != len(want) {
		t.Fatalf("%d channels, want %d", len(chans), len(want))
	}
	for _, c := range chans {
		if c.Type != c.Name || want[c.Name] == nil || c.Description == "" {
			t.Errorf("channel %+v", c)
			continue
		}
		var names []string
		for _, s := range c.Settings {
			names = append(names, s.Name)
			if s.Secret != secret[c.Name+"/"+s.Name] {
				t.Errorf("%s setting %s: secret = %v", c.Name, s.Name, s.Secret)
			}
			if s.Description == "" {
				t.Errorf("%s setting %s has no description", c.Name, s.Name)
			}
		}
		if strings.Join(names, ",") != strings.Join(want[c.Name], ",") {
			t.Errorf("%s settings %v, want %v", c.Name, names, want[c.Name])
		}
	}
}

func TestConfig(t *testing.T) {
	c := plugintest.StartInProcess(t, options())
	bad := map[string]string{
		"bad CIDR":          `{"allow_private_targets": ["10.0.0.0/33"]}`,
		"host bits":         `{"allow_private_targets": ["10.0.0.5/8"]}`,
		"relative ca_file":  `{"ca_file": "ca.pem"}`,
		"bad timeout":       `{"timeout": "soon"}`,
		"negative timeout":  `{"timeout": "-1s"}`,
		"huge timeout":      `{"timeout": "1h"}`,
		"unknown field":     `{"allow_private": ["10.0.0.0/8"]}`,
		"list of non-texts": `{"allow_private_targets": [10]}`,
	}
	for name, raw := range bad {
		t.Run(name, func(t *testing.T) {
			err := c.Base().ValidateConfig(ctx(t), []byte(raw))
			wantKind(t, "ValidateConfig", err, sdk.ErrInvalidConfig)
		})
	}
	for _, raw := range []string{`{}`, `{"allow_private_targets": ["10.20.0.0/16", "192.168.1.7", "fd00::/8"], "timeout": "30s"}`} {
		if err := c.Base().ValidateConfig(ctx(t), []byte(raw)); err != nil {
			t.Errorf("ValidateConfig(%s): %v", raw, err)
		}
	}
	// A ca_file that is not PEM fails at Configure, naming the field.
	notPEM := t.TempDir() + "/ca.pem"
	if err := writeFile(notPEM, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	err := c.Base().Configure(ctx(t), []byte(`{"ca_file": "`+notPEM+`"}`))
	if !errors.Is(err, sdk.ErrInvalidConfig) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("Configure with a non-PEM ca_file: %v", err)
	}
}
