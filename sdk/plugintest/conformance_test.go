package plugintest_test

import (
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/internal/fakes"
	"github.com/berthgw/berth/sdk/plugintest"
)

// The fakes keep every contract, so every suite must pass against them, in
// process and as a real process. This tests the suites as much as the fakes.
func TestConformanceOfFakes(t *testing.T) {
	config := func(*testing.T) []byte { return []byte(`{"zones": ["example.com."]}`) }
	factories := map[string]plugintest.Factory{
		"in-process": plugintest.InProcess(func(*testing.T) sdk.Options { return fakes.New().Options() }, config),
		"subprocess": plugintest.Subprocess(plugintest.Build(t, "../internal/testplugin"), config),
	}
	for name, f := range factories {
		t.Run(name, func(t *testing.T) {
			t.Run("Notifier", func(t *testing.T) { plugintest.RunNotifierConformance(t, f, "ops@example.com") })
			t.Run("DNS", func(t *testing.T) { plugintest.RunDNSConformance(t, f, "example.com.") })
			t.Run("Provisioner", func(t *testing.T) {
				plugintest.RunProvisionerConformance(t, f, sdk.ClusterSpec{Name: "conformance", KubernetesVersion: "1.31.2",
					ControlPlane: sdk.Resources{CPUMillicores: 2000, MemoryBytes: 4 << 30}, Workers: sdk.Resources{CPUMillicores: 4000, MemoryBytes: 8 << 30}})
			})
			t.Run("Billing", func(t *testing.T) { plugintest.RunBillingConformance(t, f, plugintest.MemoryBillingCase()) })
		})
	}
}
