// Command protov2 is a go-plugin plugin with Berth's handshake cookie that
// serves only protocol version 2, which this gateway does not speak.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// The handshake of Berth's SDK, copied: importing the SDK would install its
// stdout guard, which only sdk.Serve lets the handshake line through.
const (
	cookieKey   = "BERTH_PLUGIN_MAGIC_COOKIE"
	cookieValue = "7d0c5a1e-berth-plugin-3f9b2c64e8a1"
)

type nothing struct{ plugin.NetRPCUnsupportedPlugin }

func (nothing) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (nothing) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugin.HandshakeConfig{MagicCookieKey: cookieKey, MagicCookieValue: cookieValue},
		VersionedPlugins: map[int]plugin.PluginSet{2: {"plugin": nothing{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
