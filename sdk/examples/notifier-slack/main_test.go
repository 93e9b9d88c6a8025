// doc:begin test

package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// config points each fresh plugin at a stand-in for Slack's webhook.
func config(t *testing.T) []byte {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(hook.Close)
	return []byte(fmt.Sprintf(`{"webhook_url": %q}`, hook.URL))
}

// In the test process: fast, debuggable, a real gRPC connection.
func TestConformanceInProcess(t *testing.T) {
	f := plugintest.InProcess(func(*testing.T) sdk.Options { return options() }, config)
	plugintest.RunNotifierConformance(t, f, "#ops")
}

// As a real process, started exactly as the gateway starts it.
func TestConformanceSubprocess(t *testing.T) {
	f := plugintest.Subprocess(plugintest.Build(t, "."), config)
	plugintest.RunNotifierConformance(t, f, "#ops")
}

// doc:end test
