package testpeer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCachePathAndOverride(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BERTH_CACHE_DIR", dir)
	p := Peer{Name: "echo-peer", Version: "v1.2.3", Env: "BERTH_TESTPEER_ECHO"}
	got, err := p.CachePath()
	if err != nil || got != filepath.Join(dir, "echo-peer", "v1.2.3", "echo-peer") {
		t.Errorf("cache path %q %v", got, err)
	}
	t.Setenv("BERTH_TESTPEER_ECHO", "/opt/echo")
	if bin := p.Binary(t); bin != "/opt/echo" {
		t.Errorf("the override was not used: %q", bin)
	}
}

// Build compiles a tools module's package into the cache, and a binary
// that does not report the pinned version is refused.
func TestBuild(t *testing.T) {
	tools := t.TempDir()
	os.WriteFile(filepath.Join(tools, "go.mod"), []byte("module example.com/tools\n\ngo 1.25\n"), 0o644)
	os.WriteFile(filepath.Join(tools, "main.go"), []byte("package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n"), 0o644)
	t.Setenv("BERTH_CACHE_DIR", t.TempDir())
	reports := func(want string) func(string) bool {
		return func(path string) bool {
			st, err := os.Stat(path)
			return err == nil && st.Mode()&0o111 != 0 && strings.HasPrefix(want, "v")
		}
	}
	p := Peer{Name: "hello", Version: "v0.0.1", Package: ".", ToolsDir: tools, LDFlags: "-X main.version=v0.0.1", Reports: reports("v0.0.1")}
	bin := p.Binary(t)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("built nothing at %s: %v", bin, err)
	}
	bad := p
	bad.Version, bad.Reports = "v9", func(string) bool { return false }
	path, _ := bad.CachePath()
	if err := bad.Build(path); err == nil || !strings.Contains(err.Error(), "does not report v9") {
		t.Errorf("a build that reports another version: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a refused build was left in the cache")
	}
	broken := p
	broken.Package = "./nope"
	if err := broken.Build(filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("a package that does not exist built")
	}
}
