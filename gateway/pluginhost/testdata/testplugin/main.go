// Command testplugin is the plugin host's test plugin: a notifier and a
// billing plugin (one secret setting, secret_key, that also signs its
// webhooks) that misbehaves on request. Channels of its notifier:
//
//	ok     delivers: puts the subject in host KV "last", emits "sent"
//	pid    answers with its process id as the provider message id
//	block  emits "blocking", then waits until the call is cancelled
//	hang   never answers, whatever the deadline
//	fail   answers sdk.ErrRetryable
//
// Environment: TESTPLUGIN_CRASH_FILE names a file whose existence makes
// the plugin exit with status 3 before its handshake; TESTPLUGIN_HANG_FILE
// one whose existence makes Health hang; TESTPLUGIN_HANG_CONFIGURE_FILE one
// whose existence makes Configure never answer.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/berthgw/berth/sdk"
)

// Config is the plugin's configuration.
type Config struct {
	Label string `json:"label" berth:"description=Free text"`
	Port  int    `json:"port" berth:"min=1,max=65535,default=80"`
	Token string `json:"token" berth:"description=A secret"`
}

// Validate holds a rule the schema does not: the plugin's own check.
func (c Config) Validate() error {
	if c.Label == "forbidden" {
		return fmt.Errorf("field \"label\": this label is refused by the plugin: %w", sdk.ErrInvalidConfig)
	}
	return nil
}

// schema is given explicitly so that it can hold a pattern rule, which
// the host must report without echoing the value.
const schema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "label": {"type": "string"},
    "port":  {"type": "integer", "minimum": 1, "maximum": 65535},
    "token": {"type": "string", "pattern": "^tok-[a-z]+$"}
  }
}`

type plugin struct {
	mu   sync.Mutex
	cfg  Config
	host sdk.Host
}

func (p *plugin) configure(_ context.Context, cfg Config, h sdk.Host) error {
	if exists("TESTPLUGIN_HANG_CONFIGURE_FILE") {
		select {}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg, p.host = cfg, h
	return nil
}

func (p *plugin) ListChannels(context.Context) ([]sdk.Channel, error) {
	var out []sdk.Channel
	for _, c := range []string{"ok", "pid", "block", "hang", "fail"} {
		out = append(out, sdk.Channel{Type: "test", Name: c})
	}
	return out, nil
}

func (p *plugin) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	p.mu.Lock()
	h, label := p.host, p.cfg.Label
	p.mu.Unlock()
	switch msg.Channel {
	case "ok":
		if err := h.KV.Put(ctx, "last", []byte(msg.Subject), 0); err != nil {
			return sdk.Delivery{}, err
		}
		if err := h.Events.Emit(ctx, sdk.Event{Type: "sent", Subject: msg.IdempotencyKey, Attributes: map[string]string{"label": label}}); err != nil {
			return sdk.Delivery{}, err
		}
		return sdk.Delivery{ProviderMessageID: "ok-" + label}, nil
	case "pid":
		return sdk.Delivery{ProviderMessageID: strconv.Itoa(os.Getpid())}, nil
	case "block":
		if err := h.Events.Emit(ctx, sdk.Event{Type: "blocking", Subject: msg.Subject}); err != nil {
			return sdk.Delivery{}, err
		}
		<-ctx.Done()
		return sdk.Delivery{}, ctx.Err()
	case "hang":
		select {}
	case "fail":
		return sdk.Delivery{}, fmt.Errorf("provider down: %w", sdk.ErrRetryable)
	}
	return sdk.Delivery{}, fmt.Errorf("channel %q: %w", msg.Channel, sdk.ErrNotFound)
}

func (p *plugin) Settings(context.Context) ([]sdk.Setting, error) {
	return []sdk.Setting{{Name: "secret_key", Description: "API key", Required: true, Secret: true}}, nil
}

func (p *plugin) CheckSettings(_ context.Context, settings map[string]string) error {
	if settings["secret_key"] == "" {
		return fmt.Errorf("setting \"secret_key\" is required: %w", sdk.ErrInvalidArgument)
	}
	return nil
}

func (p *plugin) CreateCheckout(_ context.Context, req sdk.CheckoutRequest) (sdk.Checkout, error) {
	return sdk.Checkout{SessionID: "cs-" + req.IdempotencyKey, URL: "https://pay.example/" + req.Plan.ID}, nil
}

func (p *plugin) CreatePortal(_ context.Context, req sdk.PortalRequest) (sdk.Portal, error) {
	return sdk.Portal{URL: "https://pay.example/portal/" + req.CustomerID}, nil
}

func (p *plugin) ListInvoices(_ context.Context, req sdk.InvoicesRequest) ([]sdk.Invoice, error) {
	return []sdk.Invoice{{ID: "in-" + req.CustomerID, Status: "paid", Currency: "eur", AmountPaidMinor: 100}}, nil
}

// HandleWebhook takes a webhook whose X-Test-Signature equals the
// secret_key setting, and makes its body an invoice.paid event's id.
func (p *plugin) HandleWebhook(_ context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	if sig := req.Header.Get("X-Test-Signature"); sig == "" || sig != req.Settings["secret_key"] {
		return nil, fmt.Errorf("webhook signature does not verify: %w", sdk.ErrPermissionDenied)
	}
	return []sdk.BillingEvent{{ID: string(req.Body), Type: sdk.EventInvoicePaid, AmountMinor: 100, Currency: "eur"}}, nil
}

func (p *plugin) CancelSubscription(context.Context, sdk.CancelRequest) error { return nil }

func exists(env string) bool {
	name := os.Getenv(env)
	if name == "" {
		return false
	}
	_, err := os.Stat(name)
	return err == nil
}

func main() {
	if exists("TESTPLUGIN_CRASH_FILE") {
		fmt.Fprintln(os.Stderr, "testplugin: crash file present; exiting")
		os.Exit(3)
	}
	p := &plugin{}
	sdk.Serve(sdk.Options{
		Name:         "testplugin",
		Version:      "1.2.3",
		Config:       sdk.TypedConfig(p.configure),
		ConfigSchema: []byte(schema),
		Notifier:     p,
		Billing:      p,
		Health: func(ctx context.Context) sdk.Health {
			if exists("TESTPLUGIN_HANG_FILE") {
				<-ctx.Done()
			}
			return sdk.Health{Status: sdk.HealthServing}
		},
	})
}
