// doc:begin plugin

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
)

// Config is the plugin's configuration, decoded and checked by the SDK.
type Config struct {
	WebhookURL string `json:"webhook_url" berth:"required,description=Incoming webhook URL"`
	TimeoutSec int    `json:"timeout_sec" berth:"min=1,max=60,default=10,description=Seconds one post may take"`
}

type slack struct {
	mu  sync.Mutex
	cfg Config
}

func (s *slack) configure(ctx context.Context, cfg Config, host sdk.Host) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
	return nil
}

func (s *slack) ListChannels(ctx context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{{Type: "slack", Name: "slack"}}, nil
}

func (s *slack) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	if msg.Channel != "slack" {
		return sdk.Delivery{}, fmt.Errorf("channel %q: %w", msg.Channel, sdk.ErrNotFound)
	}
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	body, err := json.Marshal(map[string]string{"channel": msg.Target, "text": msg.Subject + "\n" + msg.TextBody})
	if err != nil {
		return sdk.Delivery{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.TimeoutSec)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("webhook_url: %v: %w", err, sdk.ErrInvalidArgument)
	}
	req.Header.Set("Content-Type", "application/json")
	// The provider drops a repeat of the same key, so a retry after a
	// plugin restart cannot post twice.
	req.Header.Set("Idempotency-Key", msg.IdempotencyKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("post: %v: %w", err, sdk.ErrRetryable)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return sdk.Delivery{}, fmt.Errorf("webhook answered %s: %w", resp.Status, sdk.ErrRetryable)
	case resp.StatusCode >= 300:
		return sdk.Delivery{}, fmt.Errorf("webhook answered %s: %w", resp.Status, sdk.ErrInvalidArgument)
	}
	// The message id must differ per idempotency key (and repeat for the
	// same key, which the SDK replays): here it is derived from the key.
	return sdk.Delivery{ProviderMessageID: "slack-" + msg.IdempotencyKey, AcceptedAt: time.Now()}, nil
}

func options() sdk.Options {
	s := &slack{}
	return sdk.Options{
		Name:     "notifier-slack",
		Version:  "1.0.0", // semantic version, reported to the gateway
		Config:   sdk.TypedConfig(s.configure),
		Notifier: s,
	}
}

func main() {
	sdk.Serve(options())
}

// doc:end plugin
