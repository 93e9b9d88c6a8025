package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/berthgw/berth/sdk"
)

// SlackConfig is a plugin's configuration: its JSON Schema and its checks
// come from the tags.
type SlackConfig struct {
	WebhookURL string `json:"webhook_url" berth:"required,description=Incoming webhook URL of the Slack app"`
	Channel    string `json:"channel" berth:"default=#ops"`
	TimeoutSec int    `json:"timeout_sec" berth:"min=1,max=60,default=10"`
}

type slack struct{ cfg SlackConfig }

func (s *slack) configure(_ context.Context, cfg SlackConfig, _ sdk.Host) error {
	s.cfg = cfg
	return nil
}

func (s *slack) ListChannels(context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{{Type: "slack", Name: "slack"}}, nil
}

func (s *slack) Send(_ context.Context, msg sdk.Message) (sdk.Delivery, error) {
	if msg.Channel != "slack" {
		return sdk.Delivery{}, fmt.Errorf("channel %q: %w", msg.Channel, sdk.ErrNotFound)
	}
	// ... post to s.cfg.WebhookURL, passing msg.IdempotencyKey along ...
	return sdk.Delivery{ProviderMessageID: "ts-1", AcceptedAt: time.Now()}, nil
}

// A plugin's main is one call to Serve. Options name the plugin and give
// it its capabilities; a binary may offer several.
func ExampleServe() {
	s := &slack{}
	sdk.Serve(sdk.Options{
		Name:     "notifier-slack",
		Version:  "1.0.0",
		Config:   sdk.TypedConfig(s.configure),
		Notifier: s,
	})
}

func ExampleDecodeConfig() {
	cfg, err := sdk.DecodeConfig[SlackConfig]([]byte(`{"webhook_url": "https://hooks.slack.example/T1"}`))
	fmt.Println(cfg.Channel, cfg.TimeoutSec, err)

	_, err = sdk.DecodeConfig[SlackConfig]([]byte(`{"webhook_url": "https://hooks.slack.example/T1", "chanel": "#dev"}`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, sdk.ErrInvalidConfig))
	// Output:
	// #ops 10 <nil>
	// invalid config: unknown field "chanel"
	// true
}

func ExampleSchemaFor() {
	os.Stdout.Write(sdk.SchemaFor[SlackConfig]())
	fmt.Println()
	// Output:
	// {"$schema":"https://json-schema.org/draft/2020-12/schema","additionalProperties":false,"properties":{"channel":{"default":"#ops","type":"string"},"timeout_sec":{"default":10,"maximum":60,"minimum":1,"type":"integer"},"webhook_url":{"description":"Incoming webhook URL of the Slack app","minLength":1,"type":"string"}},"required":["webhook_url"],"type":"object"}
}

// Plugins wrap the error kinds with context; the gateway sees the kind
// (errors.Is) and the whole message.
func ExampleErrNotFound() {
	err := fmt.Errorf("zone %q: %w", "example.com.", sdk.ErrNotFound)
	fmt.Println(err, errors.Is(err, sdk.ErrNotFound))
	// Output: zone "example.com.": not found true
}

// Plugins reach the gateway's services through the Host they receive in
// Configure: a key-value store of their own and an event sink.
func ExampleHost() {
	configure := func(ctx context.Context, cfg SlackConfig, host sdk.Host) error {
		if err := host.KV.Put(ctx, "webhook/last-configured", []byte(time.Now().Format(time.RFC3339)), 24*time.Hour); err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
			return err
		}
		return host.Events.Emit(ctx, sdk.Event{Type: "plugin.configured", Message: "slack notifier ready"})
	}
	_ = sdk.TypedConfig(configure)
}
