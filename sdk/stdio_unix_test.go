//go:build unix

package sdk

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the test binary run as a child that only prints to
// stdout, so the guard is tested where it acts: in a fresh process's
// package initialization.
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_SDK_TEST_PRINT") != "" {
		os.Stdout.WriteString("printed to stdout\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Only a process Berth starts has its stdout guarded: started by another
// go-plugin host (its own cookie, PLUGIN_PROTOCOL_VERSIONS set), a program
// that imports the SDK keeps its stdout, where that host reads the
// handshake.
func TestStdoutGuardOnlyUnderBerth(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		wantStdout bool
	}{
		{"started by Berth", []string{Handshake.MagicCookieKey + "=" + Handshake.MagicCookieValue, "PLUGIN_PROTOCOL_VERSIONS=1"}, false},
		{"started by another go-plugin host", []string{"OTHER_PLUGIN_COOKIE=x", "PLUGIN_PROTOCOL_VERSIONS=1"}, true},
		{"started by hand", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "BERTH_SDK_TEST_PRINT=1")
			cmd.Env = append(cmd.Env, tt.env...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("child: %v; stderr %s", err, stderr.String())
			}
			onStdout := strings.Contains(stdout.String(), "printed to stdout")
			onStderr := strings.Contains(stderr.String(), "printed to stdout")
			if onStdout != tt.wantStdout || onStderr == tt.wantStdout {
				t.Errorf("the print went to stdout %v, stderr %v; want stdout %v", onStdout, onStderr, tt.wantStdout)
			}
		})
	}
}
