package pluginclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
)

// The gateway starts each configured plugin, checks it, configures it and
// keeps its typed clients.
func ExampleStart() {
	ctx := context.Background()
	p, err := pluginclient.Start(ctx, pluginclient.Config{
		Name:   "notifier-file",
		Path:   "/usr/lib/berth/plugins/notifier-file",
		SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		Env:    []string{"TZ=UTC"},
		Host:   host.Services{KV: plugintest.NewMemoryKV(), Events: plugintest.NewMemoryEvents()},
	})
	var incompatible *sdk.IncompatibleProtocolError
	switch {
	case errors.As(err, &incompatible):
		log.Printf("refusing plugin: %v", err) // names both protocol versions
		return
	case err != nil:
		log.Printf("plugin failed to start: %v", err)
		return
	}
	defer p.Kill()

	if err := p.Base().Configure(ctx, []byte(`{"path": "/var/lib/berth/notifications.jsonl"}`)); err != nil {
		log.Printf("bad config: %v", err) // errors.Is(err, sdk.ErrInvalidConfig)
		return
	}
	n, err := p.Notifier()
	if err != nil {
		log.Printf("not a notifier: %v", err) // errors.Is(err, sdk.ErrUnimplemented)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := n.Send(ctx, sdk.Message{IdempotencyKey: "alert-42", Channel: "file", Target: "ops", Subject: "disk full"})
	fmt.Println(d.ProviderMessageID, err)
}
