package kubeenv

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/berthgw/berth/sdk/controlplane"
)

// Version is the Kubernetes version of the pinned kube-apiserver and kubectl.
// It must equal the k8s.io/kubernetes version in deploy/e2e/k8s/go.mod (a
// unit test checks this); build-k8s.sh builds exactly that version.
const Version = controlplane.PinnedVersion

// Environment variables that override where the binaries are found.
const (
	// EnvEtcd names the etcd binary to run.
	EnvEtcd = "BERTH_ETCD"
	// EnvKubeAPIServer names the kube-apiserver binary to run.
	EnvKubeAPIServer = "BERTH_KUBE_APISERVER"
	// EnvKubectl names the kubectl binary to run.
	EnvKubectl = "BERTH_KUBECTL"
	// EnvCacheDir is the cache root build-k8s.sh writes to
	// (default $HOME/.cache/berth).
	EnvCacheDir = controlplane.EnvCacheDir
	// EnvE2E, when set to anything but "" or "0", makes missing binaries a
	// test failure instead of a skip.
	EnvE2E = "BERTH_E2E"
)

// Binaries holds the paths of the programs an environment runs.
type Binaries struct {
	// Etcd is the etcd server.
	Etcd string
	// KubeAPIServer is the pinned kube-apiserver.
	KubeAPIServer string
	// Kubectl is the pinned kubectl.
	Kubectl string
}

// FindBinaries locates etcd, kube-apiserver and kubectl. Each comes from its
// environment variable (BERTH_ETCD, BERTH_KUBE_APISERVER, BERTH_KUBECTL) when
// set, else from controlplane.CacheBinDir; etcd is also looked up on PATH.
// kubectl and kube-apiserver are never taken from PATH, because whatever is
// there is not the pinned version. The error lists every binary that is
// missing.
func FindBinaries() (Binaries, error) {
	var missing []string
	find := func(envName, name string, places ...controlplane.Place) string {
		if p := os.Getenv(envName); p != "" {
			if err := controlplane.CheckExecutable(p); err != nil {
				missing = append(missing, fmt.Sprintf("%s=%s: %v", envName, p, err))
				return ""
			}
			return p
		}
		p, err := controlplane.Find(name, places...)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%v; set %s", err, envName))
		}
		return p
	}
	b := Binaries{
		Etcd:          find(EnvEtcd, "etcd", controlplane.InCache, controlplane.InPATH),
		KubeAPIServer: find(EnvKubeAPIServer, "kube-apiserver", controlplane.InCache),
		Kubectl:       find(EnvKubectl, "kubectl", controlplane.InCache),
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("kubeenv: %s", strings.Join(missing, "; "))
	}
	return b, nil
}

// Available reports whether the binaries Start needs are present. When they
// are not, reason says which are missing and how to get them.
func Available() (reason string, ok bool) {
	if _, err := FindBinaries(); err != nil {
		return fmt.Sprintf("%v (run deploy/e2e/build-k8s.sh to build Kubernetes %s and install etcd)", err, Version), false
	}
	return "", true
}

// Required reports whether the environment asks for the real-Kubernetes
// tests to run: BERTH_E2E is set to anything but "" or "0".
func Required() bool {
	v := os.Getenv(EnvE2E)
	return v != "" && v != "0"
}

// MustBinaries makes a test depend on the binaries. When they are present it
// returns them. When they are missing it fails the test if BERTH_E2E is set
// (CI and `make e2e` set it, so a gap is never silently skipped), and only
// otherwise skips the test with a loud message naming the missing binaries.
func MustBinaries(t testing.TB) Binaries {
	t.Helper()
	b, err := FindBinaries()
	if err == nil {
		return b
	}
	reason, _ := Available()
	if Required() {
		t.Fatalf("kubeenv: %s=%s but the Kubernetes test binaries are missing: %s", EnvE2E, os.Getenv(EnvE2E), reason)
	}
	t.Skipf("SKIPPED, NOT PASSED: this test needs a real kube-apiserver and etcd: %s; set %s=1 to turn this skip into a failure", reason, EnvE2E)
	return b
}
