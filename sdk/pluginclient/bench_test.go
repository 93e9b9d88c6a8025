package pluginclient_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/internal/fakes"
	"github.com/berthgw/berth/sdk/internal/rpc"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// bufconnNotifier serves the fakes' notifier on an in-memory bufconn
// listener with the SDK's real server and client stacks (interceptors,
// size limits, conversions), without go-plugin: the floor of a call's cost.
func bufconnNotifier(b *testing.B) pluginclient.Notifier {
	cfg, err := sdk.NewServeConfig(fakes.New().Options())
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(rpc.ServerOptions(nil)...)
	if err := cfg.VersionedPlugins[sdk.ProtocolVersion][sdk.NotifierPluginName].(plugin.GRPCPlugin).GRPCServer(nil, srv); err != nil {
		b.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, rpc.DialOptions(0)...)
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	set := pluginclient.PluginSet(pluginclient.SetOptions{})
	n, err := set[sdk.NotifierPluginName].(plugin.GRPCPlugin).GRPCClient(context.Background(), nil, conn)
	if err != nil {
		b.Fatal(err)
	}
	return n.(pluginclient.Notifier)
}

func BenchmarkCall(b *testing.B) {
	transports := []struct {
		name  string
		start func(b *testing.B) pluginclient.Notifier
	}{
		{"bufconn", bufconnNotifier},
		{"in-process", func(b *testing.B) pluginclient.Notifier {
			c := plugintest.StartInProcess(b, fakes.New().Options())
			c.Configure(b, []byte(`{}`))
			n, _ := c.Notifier()
			return n
		}},
		{"subprocess", func(b *testing.B) pluginclient.Notifier {
			c := plugintest.StartProcess(b, plugintest.Build(b, "../internal/testplugin"))
			c.Configure(b, []byte(`{}`))
			n, _ := c.Notifier()
			return n
		}},
	}
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			n := tr.start(b)
			ctx := context.Background()
			b.Run("ListChannels", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := n.ListChannels(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Send", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					msg := sdk.Message{IdempotencyKey: strconv.Itoa(i), Channel: "memory", Target: "ops", Subject: "bench", TextBody: "hello"}
					if _, err := n.Send(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
