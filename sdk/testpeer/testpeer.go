// Package testpeer builds the real peers a plugin's tests run against —
// a mail server, a payment provider's mock, an ACME server — from their Go
// modules at pinned versions, once, into a cache shared by every test run
// on the machine (${BERTH_CACHE_DIR:-$HOME/.cache/berth}/<name>/<version>/).
//
// A peer is pinned by a tools module: a directory with a go.mod that
// requires the peer at its version (and a go.sum), so the build is exactly
// what is pinned, with no network once the module cache is warm. With
// BERTH_E2E set, a peer that cannot be built fails the test; without it,
// the test is skipped and says so.
package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Peer is one pinned test peer.
type Peer struct {
	// Name names the binary and its cache directory ("mailpit").
	Name string
	// Version is the pinned version (the tools module requires it).
	Version string
	// Package is the main package to build ("github.com/axllent/mailpit").
	Package string
	// ToolsDir is the tools module's directory.
	ToolsDir string
	// LDFlags are added to the build's -ldflags, e.g. to stamp the version
	// the way the peer's own release build does.
	LDFlags string
	// Env names a variable that, when set, is the path of a binary to use
	// instead of the cached build.
	Env string
	// Reports says whether the binary at path is this Version (a cached
	// build from another pin is rebuilt). Nil: any binary there is taken.
	Reports func(path string) bool
}

var buildMu sync.Mutex

// CachePath is where the pinned peer is built.
func (p Peer) CachePath() (string, error) {
	root := os.Getenv("BERTH_CACHE_DIR")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no cache dir: %w", err)
		}
		root = filepath.Join(home, ".cache", "berth")
	}
	return filepath.Join(root, p.Name, p.Version, p.Name), nil
}

func (p Peer) ok(path string) bool {
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		return false
	}
	return p.Reports == nil || p.Reports(path)
}

// Binary returns the peer's binary, building it into the cache when it is
// missing or reports another version.
func (p Peer) Binary(t testing.TB) string {
	t.Helper()
	if p.Env != "" {
		if path := os.Getenv(p.Env); path != "" {
			return path
		}
	}
	bin, err := p.CachePath()
	if err == nil {
		buildMu.Lock()
		defer buildMu.Unlock()
		if p.ok(bin) {
			return bin
		}
		t.Logf("building %s %s into %s (a minute or more on a cold Go build cache)", p.Name, p.Version, bin)
		err = p.Build(bin)
	}
	if err != nil {
		if v := os.Getenv("BERTH_E2E"); v != "" && v != "0" {
			t.Fatalf("BERTH_E2E=%s but %s %s is unavailable: %v", v, p.Name, p.Version, err)
		}
		t.Skipf("SKIPPED, NOT PASSED: %s %s is unavailable: %v; set BERTH_E2E=1 to turn this skip into a failure", p.Name, p.Version, err)
	}
	return bin
}

// Build compiles the peer from ToolsDir into bin, through a temporary file
// renamed into place, so a concurrent test process never runs a torn
// binary.
func (p Peer) Build(bin string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w "+p.LDFlags, "-o", tmp, p.Package)
	cmd.Dir = p.ToolsDir
	// Exactly what the tools module's go.mod and go.sum pin.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build %s %s in %s: %v\n%s", p.Name, p.Version, cmd.Dir, err, out)
	}
	if !p.ok(tmp) {
		os.Remove(tmp)
		return fmt.Errorf("the %s just built does not report %s", p.Name, p.Version)
	}
	return os.Rename(tmp, bin)
}
