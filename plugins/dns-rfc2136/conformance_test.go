package main

import (
	"slices"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// TestConformance runs the SDK's DNS conformance suite against a real
// knotd, with the plugin in the test process and the secret in a file,
// then checks with a plain DNS query what the suite left in the zone.
func TestConformance(t *testing.T) {
	k := startKnot(t)
	f := plugintest.InProcess(func(t *testing.T) sdk.Options { return options(plugintest.TestLogger(t, "dns-rfc2136")) },
		func(t *testing.T) []byte { return knotConfig(t, k).JSON() })
	plugintest.RunDNSConformance(t, f, zone)
	if got := k.Values(t, "_berth-conformance-a."+zone, "A"); !slices.Equal(got, []string{"192.0.2.2", "192.0.2.3"}) {
		t.Errorf("after the suite knotd has _berth-conformance-a A %v", got)
	}
}

// TestConformanceSubprocess runs the suite on the built binary, started
// the way the gateway starts it, with the secret in the environment.
func TestConformanceSubprocess(t *testing.T) {
	k := startKnot(t)
	bin := plugintest.Build(t, ".")
	f := func(t *testing.T) *plugintest.Client {
		c := plugintest.StartProcess(t, bin, EnvSecret+"="+k.KeySecret)
		c.Configure(t, pluginConfig{Server: k.Addr, TSIGKeyName: k.KeyName}.JSON())
		return c
	}
	plugintest.RunDNSConformance(t, f, zone)
	if got := k.Values(t, "_berth-conformance."+zone, "TXT"); len(got) != 0 {
		t.Errorf("after the suite's delete knotd still has %v", got)
	}
}
