package pebbletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The version the cache is keyed by must be the one the tools module
// builds, or a stale binary would pass for the pinned one.
func TestVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ToolsDir(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "github.com/letsencrypt/pebble/v2 "+Version+"\n") {
		t.Fatalf("testdata/pebble/go.mod does not require pebble %s:\n%s", Version, data)
	}
}
