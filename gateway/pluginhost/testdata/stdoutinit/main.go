// Command stdoutinit prints to stdout in its init function, which would
// break go-plugin's handshake without the SDK's stdout guard.
package main

import (
	"context"
	"fmt"

	"github.com/berthgw/berth/sdk"
)

func init() {
	fmt.Println("stdoutinit: hello from init, on stdout")
}

type notifier struct{}

func (notifier) ListChannels(context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{{Type: "test", Name: "ok"}}, nil
}

func (notifier) Send(context.Context, sdk.Message) (sdk.Delivery, error) {
	fmt.Println("stdoutinit: a print during a call")
	return sdk.Delivery{ProviderMessageID: "stdoutinit"}, nil
}

func main() {
	fmt.Println("stdoutinit: hello from main, on stdout")
	sdk.Serve(sdk.Options{Name: "stdoutinit", Version: "0.1.0", Notifier: notifier{}})
}
