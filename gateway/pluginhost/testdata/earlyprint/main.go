// Command earlyprint prints to stdout before the SDK's stdout guard runs
// (from a package that does not import the SDK), breaking go-plugin's
// handshake: the host must refuse it with a clear message.
package main

import (
	"context"

	_ "github.com/berthgw/berth/gateway/pluginhost/testdata/earlyprint/noise"
	"github.com/berthgw/berth/sdk"
)

type notifier struct{}

func (notifier) ListChannels(context.Context) ([]sdk.Channel, error) { return nil, nil }

func (notifier) Send(context.Context, sdk.Message) (sdk.Delivery, error) {
	return sdk.Delivery{}, nil
}

func main() {
	sdk.Serve(sdk.Options{Name: "earlyprint", Version: "0.1.0", Notifier: notifier{}})
}
