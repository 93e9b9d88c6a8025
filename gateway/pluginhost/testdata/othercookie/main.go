// Command othercookie is a go-plugin plugin of some other product: it
// expects another handshake cookie and refuses Berth's.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

type nothing struct{ plugin.NetRPCUnsupportedPlugin }

func (nothing) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (nothing) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  1,
			MagicCookieKey:   "OTHER_PRODUCT_PLUGIN",
			MagicCookieValue: "not-berth",
		},
		Plugins:    plugin.PluginSet{"thing": nothing{}},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
