package dextest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tools module pins the commit Version names.
func TestToolsModulePinsVersion(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ToolsDir(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "require github.com/dexidp/dex v0.0.0-") || !strings.Contains(string(data), "-"+Commit+"\n") {
		t.Fatalf("testdata/dex/go.mod does not require dex at %s (%s):\n%s", Commit, Version, data)
	}
	if !strings.Contains(string(data), Version+" is "+Commit) {
		t.Errorf("testdata/dex/go.mod's comment does not say %s is %s", Version, Commit)
	}
}
