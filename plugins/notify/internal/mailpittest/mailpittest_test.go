package mailpittest

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
	if !strings.Contains(string(data), "github.com/axllent/mailpit "+Version+"\n") {
		t.Fatalf("testdata/mailpit/go.mod does not require mailpit %s:\n%s", Version, data)
	}
}

// TestStart runs the pinned mailpit and reads its empty mailbox.
func TestStart(t *testing.T) {
	s := Start(t, Options{Username: "u", Password: "p"})
	if got := s.Messages(t); len(got) != 0 {
		t.Fatalf("a new mailpit holds %d messages", len(got))
	}
	if _, err := os.Stat(s.CAFile); err != nil {
		t.Fatal(err)
	}
}
