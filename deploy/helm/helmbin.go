// Package helm tests Berth's Helm chart (deploy/helm/berth): helm lint,
// helm template in each mode with assertions on the objects, the values
// schema, and kubectl apply --dry-run=server against the e2e kube-apiserver.
//
// Helm is used as a Go module at a pinned version. It needs newer k8s.io
// modules than the gateway, so it is built from its own module in tool/
// into ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/helm/<Version>/helm, on first
// use (or by `make helm`), and reused while it reports that version.
package helm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Version is the Helm the chart is tested with; it must equal the version
// tool/go.mod requires (TestVersionMatchesToolsModule).
const Version = "v4.3.2"

// EnvHelm names a helm binary to use instead of the cached build.
const EnvHelm = "BERTH_HELM"

var buildMu sync.Mutex

// ToolsDir is the module Helm is built from.
func ToolsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "tool")
}

// ChartDir is the chart under test.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "berth")
}

// CachePath is where the pinned helm is built.
func CachePath() (string, error) {
	root := os.Getenv("BERTH_CACHE_DIR")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no cache dir: %w", err)
		}
		root = filepath.Join(home, ".cache", "berth")
	}
	return filepath.Join(root, "helm", Version, "helm"), nil
}

// Binary returns the helm binary, building it into the cache when it is
// missing or reports another version. If the build fails the test fails
// when BERTH_E2E is set and is skipped, loudly, otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvHelm); p != "" {
		return p
	}
	bin, err := CachePath()
	if err == nil {
		buildMu.Lock()
		defer buildMu.Unlock()
		if reportsVersion(bin) {
			return bin
		}
		t.Logf("building helm %s into %s (minutes on a cold Go build cache)", Version, bin)
		err = Build(bin)
	}
	if err != nil {
		if v := os.Getenv("BERTH_E2E"); v != "" && v != "0" {
			t.Fatalf("BERTH_E2E=%s but helm %s is unavailable: %v", v, Version, err)
		}
		t.Skipf("SKIPPED, NOT PASSED: helm %s is unavailable: %v; set BERTH_E2E=1 to turn this skip into a failure", Version, err)
	}
	return bin
}

// Build compiles helm.sh/helm/v4/cmd/helm from ToolsDir into bin. It writes
// a temporary file and renames it into place, so a concurrent test process
// never runs a torn binary.
func Build(bin string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	// The version is stamped as Helm's own Makefile does, so that
	// `helm version` tells a cached binary's version.
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-s -w -X helm.sh/helm/v4/internal/version.version="+Version,
		"-o", tmp, "helm.sh/helm/v4/cmd/helm")
	cmd.Dir = ToolsDir()
	// GOWORK=off and -mod=readonly: exactly what tool/go.mod and go.sum pin.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build helm %s in %s: %v\n%s", Version, cmd.Dir, err, out)
	}
	if !reportsVersion(tmp) {
		os.Remove(tmp)
		return fmt.Errorf("the helm just built does not report %s", Version)
	}
	return os.Rename(tmp, bin)
}

func reportsVersion(bin string) bool {
	out, err := exec.Command(bin, "version", "--template", "{{.Version}}").Output()
	return err == nil && string(bytes.TrimSpace(out)) == Version
}
