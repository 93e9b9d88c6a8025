package pluginhost

import (
	"context"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// BenchmarkCall measures one plugin call's round trip to a real plugin
// process (Unix socket, AutoMTLS), through the host's supervised client
// and, for comparison, through the SDK's client directly. Send on the
// "pid" channel is one round trip through the plugin's idempotency cache;
// on "ok" the plugin also calls back into the host (a Badger KV put and
// an event) during the call.
func BenchmarkCall(b *testing.B) {
	th := newHost(b, testSettings(declare(b, "tp", testplugin, nil)))
	th.start(b)
	hosted, err := th.Notifier("tp")
	if err != nil {
		b.Fatal(err)
	}
	in, _ := th.instance("tp")
	in.mu.Lock()
	direct, err := in.cur.p.Notifier()
	in.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		n    pluginclient.Notifier
	}{{"direct", direct}, {"host", hosted}} {
		b.Run(c.name+"/ListChannels", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.n.ListChannels(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/Send", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.n.Send(ctx, sdk.Message{Channel: "pid"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/SendWithCallbacks", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.n.Send(ctx, sdk.Message{Channel: "ok", Subject: "bench"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
