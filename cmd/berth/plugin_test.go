package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginHash: berth plugin hash prints the digest a plugins.instances
// entry pins, and refuses what the gateway could not start.
func TestPluginHash(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "notifier")
	body := []byte("#!/bin/sh\nexit 0\n")
	if err := os.WriteFile(exe, body, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	out, stderr, code := run(t, nil, "plugin", "hash", exe)
	if code != 0 || strings.TrimSpace(out) != hex.EncodeToString(sum[:]) {
		t.Errorf("plugin hash = %d %q %q, want %x", code, out, stderr, sum)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, body, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing"), plain, dir} {
		out, stderr, code := run(t, nil, "plugin", "hash", path)
		if code == 0 || out != "" || !strings.Contains(stderr, "plugin executable") {
			t.Errorf("plugin hash %s = %d %q %q, want a refusal", path, code, out, stderr)
		}
	}
}

// TestConfigCheckPlugins: config check refuses a plugin whose executable
// is missing, relative or not the pinned file — naming the key, and for a
// checksum both digests — and accepts the right one.
func TestConfigCheckPlugins(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "notifier")
	body := []byte("#!/bin/sh\nexit 0\n")
	if err := os.WriteFile(exe, body, 0o755); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(body)
	sum := hex.EncodeToString(s[:])
	other := strings.Repeat("ab", 32)
	tests := []struct {
		name, path, sha string
		want            []string // in stderr; none means OK
	}{
		{"right", exe, sum, nil},
		{"missing", filepath.Join(dir, "gone"), sum, []string{"plugins.instances[0].path", "no such file"}},
		{"relative", "notifier", sum, []string{"plugins.instances[0].path", `"notifier" is not an absolute path`}},
		{"checksum", exe, other, []string{"plugins.instances[0].sha256", "expects " + other, "has " + sum}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "berth.yaml")
			yaml := fmt.Sprintf("plugins:\n  discover: false\n  instances:\n    - name: n\n      path: %s\n      sha256: %s\n", tt.path, tt.sha)
			if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := run(t, baseEnv(filepath.Join(dir, "data")), "config", "check", "--config", cfg)
			if tt.want == nil {
				if code != 0 || !strings.Contains(out, "configuration OK") {
					t.Fatalf("config check = %d %q %q", code, out, stderr)
				}
				return
			}
			if code != exitConfig {
				t.Errorf("exit %d, want %d (stderr %q)", code, exitConfig, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}
