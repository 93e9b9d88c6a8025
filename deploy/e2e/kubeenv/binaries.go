package kubeenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Version is the Kubernetes version of the pinned kube-apiserver and kubectl.
// It must equal the k8s.io/kubernetes version in deploy/e2e/k8s/go.mod (a
// unit test checks this); build-k8s.sh builds exactly that version.
const Version = "v1.31.14"

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
	EnvCacheDir = "BERTH_CACHE_DIR"
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

// CacheBinDir returns the directory build-k8s.sh puts the pinned binaries in:
// ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/k8s/<Version>/bin.
func CacheBinDir() (string, error) {
	root := os.Getenv(EnvCacheDir)
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("kubeenv: locating the cache dir: %w", err)
		}
		root = filepath.Join(home, ".cache", "berth")
	}
	return filepath.Join(root, "k8s", Version, "bin"), nil
}

// FindBinaries locates etcd, kube-apiserver and kubectl. Each comes from its
// environment variable (BERTH_ETCD, BERTH_KUBE_APISERVER, BERTH_KUBECTL) when
// set, else from CacheBinDir; etcd is also looked up on PATH. kubectl and
// kube-apiserver are never taken from PATH, because whatever is there is not
// the pinned version. The error lists every binary that is missing.
func FindBinaries() (Binaries, error) {
	var b Binaries
	var missing []string
	binDir, cacheErr := CacheBinDir()

	find := func(envName, name string, allowPath bool) string {
		if p := os.Getenv(envName); p != "" {
			if err := checkExecutable(p); err != nil {
				missing = append(missing, fmt.Sprintf("%s=%s: %v", envName, p, err))
				return ""
			}
			return p
		}
		var tried []string
		if cacheErr == nil {
			p := filepath.Join(binDir, name)
			if checkExecutable(p) == nil {
				return p
			}
			tried = append(tried, p)
		}
		if allowPath {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
			tried = append(tried, "PATH")
		}
		missing = append(missing, fmt.Sprintf("%s not found (set %s; tried %s)", name, envName, strings.Join(tried, ", ")))
		return ""
	}
	b.Etcd = find(EnvEtcd, "etcd", true)
	b.KubeAPIServer = find(EnvKubeAPIServer, "kube-apiserver", false)
	b.Kubectl = find(EnvKubectl, "kubectl", false)
	if len(missing) > 0 {
		err := errors.New(strings.Join(missing, "; "))
		if cacheErr != nil {
			err = errors.Join(err, cacheErr)
		}
		return b, fmt.Errorf("kubeenv: %w", err)
	}
	return b, nil
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
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
