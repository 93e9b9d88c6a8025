package gateway

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthgw/berth/gateway/config"
)

// A first-party plugin is started with the gateway's trust (it gets every
// notification channel's secrets), found by name in plugins.dir or beside
// the berth executable. One that someone else could have put there, or
// could replace, is not started: the file and every directory above it
// must be owned by root or the gateway's user and writable by no one
// else (a sticky directory such as /tmp excepted).
func TestDiscoveryRefusesPluginsOthersCanReplace(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "shared", "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "berth-plugin-notify")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Plugins.Discover = true
	found := func(dir string) bool {
		cfg.Plugins.Dir = dir
		for _, p := range discoverPlugins(cfg, nil, nil, slog.New(slog.DiscardHandler)) {
			if p.Name == "notify" {
				return true
			}
		}
		return false
	}
	if !found(dir) {
		t.Fatal("a plugin in a private directory was not found")
	}
	// A group of others: as root the test can make one up.
	shared := -1
	if os.Geteuid() == 0 {
		shared = 4242
	}
	for _, tc := range []struct {
		what string
		path string
		mode os.FileMode
		gid  int
	}{
		{"a world-writable plugins.dir", dir, 0o777, -1},
		{"a plugins.dir writable by a shared group", dir, 0o775, shared},
		{"a world-writable parent", filepath.Join(base, "shared"), 0o777, -1},
		{"an executable writable by a shared group", exe, 0o775, shared},
		{"a world-writable executable", exe, 0o757, -1},
	} {
		if tc.mode&0o020 != 0 && tc.gid < 0 {
			continue // not root: no other group to give it to
		}
		st, _ := os.Stat(tc.path)
		if err := os.Chmod(tc.path, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(tc.path, -1, tc.gid); err != nil {
			t.Fatal(err)
		}
		if found(dir) {
			t.Errorf("found through %s", tc.what)
		}
		if err := os.Chmod(tc.path, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(tc.path, -1, os.Getegid()); err != nil {
			t.Fatal(err)
		}
	}
	// Writable by the gateway's own group (umask 002) is fine.
	if err := os.Chmod(exe, 0o775); err != nil {
		t.Fatal(err)
	}
	if !found(dir) {
		t.Error("an executable writable by the gateway's own group was refused")
	}
	// A symlink to an executable in a world-writable directory is judged
	// where it leads.
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe, filepath.Join(open, "berth-plugin-notify")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(open, "berth-plugin-notify"), exe); err != nil {
		t.Fatal(err)
	}
	if found(dir) {
		t.Error("found through a symlink into a world-writable directory")
	}
}

// A discovered plugin is pinned to the digest its executable had at
// start: an executable swapped later is refused when the plugin restarts,
// and also when an administrator reloads it (before, the reload found the
// new file and pinned that).
func TestDiscoveredPluginStaysPinnedAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "berth-plugin-notify")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	cfg.Plugins.Discover, cfg.Plugins.Dir = true, dir
	cfg.Plugins.Instances = []config.Plugin{{Name: "other", Path: "/opt/other", SHA256: "ab"}}
	log := slog.New(slog.DiscardHandler)
	start := pluginOptions(cfg, log, nil)
	pins := discoveredPins(cfg, start.Plugins)
	if len(start.Plugins) != 2 || len(pins) != 1 {
		t.Fatalf("at start: %+v, pins %v", start.Plugins, pins)
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho swapped\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	reload := pluginOptions(cfg, log, pins)
	if reload.Plugins[1].SHA256 != start.Plugins[1].SHA256 {
		t.Errorf("a reload pinned the swapped executable (%s, at start %s)", reload.Plugins[1].SHA256, start.Plugins[1].SHA256)
	}
}
