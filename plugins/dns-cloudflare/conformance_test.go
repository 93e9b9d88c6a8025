package main

import (
	"fmt"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// TestConformance runs the SDK's DNS conformance suite on the plugin in
// the test process, against a fresh fake Cloudflare (see helpers_test.go)
// for each check. The zone holds eleven other records and the plugin lists
// five a page, so every listing in the suite crosses three pages.
func TestConformance(t *testing.T) {
	f := plugintest.InProcess(func(*testing.T) sdk.Options { return options() }, func(t *testing.T) []byte {
		cf := startCF(t)
		for i := range 11 {
			cf.Seed(t, zone, map[string]any{"type": "A", "name": fmt.Sprintf("host%d", i), "content": fmt.Sprintf("192.0.2.%d", i+1), "ttl": 300})
		}
		cfg := configFor(t, cf, testToken)
		cfg.PerPage = 5
		return cfg.JSON()
	})
	plugintest.RunDNSConformance(t, f, zone)
}

// TestConformanceSubprocess runs the suite on the built binary, started
// the way the gateway starts it, with the token in the plugin's
// environment as an instance's env: list passes it.
func TestConformanceSubprocess(t *testing.T) {
	bin := plugintest.Build(t, ".")
	f := func(t *testing.T) *plugintest.Client {
		t.Helper()
		cf := startCF(t)
		c := plugintest.StartProcess(t, bin, EnvAPIToken+"="+testToken)
		c.Configure(t, pluginConfig{BaseURL: cf.BaseURL, CAFile: cf.CAFile, PerPage: 5}.JSON())
		return c
	}
	plugintest.RunDNSConformance(t, f, zone)
}
