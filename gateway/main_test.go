package gateway

import (
	"fmt"
	"os"
	"testing"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// kube is the one Kubernetes control plane of this package's end-to-end
// tests. Each test gets it reset to the objects it started with (see
// kubeenv.Shared) and its own Berth; starting a control plane per test cost
// this package more than half its run time.
var kube kubeenv.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := kube.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the shared Kubernetes test environment:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
