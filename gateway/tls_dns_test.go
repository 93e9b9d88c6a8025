package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/config"
)

// DNS-01 records go through a real DNS plugin process (the SDK's zone-file
// example) started by the plugin host: the TXT record is appended to the
// zone and removed again. TestACMEDNS01ThroughProvider covers the other
// half, certmagic driving edgetls.DNSRecords against pebble.
func TestDNS01RecordsThroughPlugin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dns-zonefile")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/berthgw/berth/sdk/examples/dns-zonefile").CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(bin)
	sum := sha256.Sum256(data)
	zones := filepath.Join(dir, "zones")
	os.MkdirAll(zones, 0o700)
	// The plugin serves the zones whose files exist.
	os.WriteFile(filepath.Join(zones, "berth.test.zone"), nil, 0o600)

	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.Plugins.Instances = []config.Plugin{{
		Name: "zonefile", Path: bin, SHA256: hex.EncodeToString(sum[:]), Required: true,
		Capabilities: []string{"dns"}, Config: map[string]any{"dir": zones},
	}}
	tg := start(t, cfg, nil)

	dns := pluginDNS{plugins: tg.plugins, name: "zonefile"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const zone, name, value = "berth.test.", "_acme-challenge.edge", "token-digest-value"
	if err := dns.AppendTXT(ctx, zone, name, value, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The same step again (a retried challenge) adds nothing.
	if err := dns.AppendTXT(ctx, zone, name, value, time.Minute); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(zones, zone+"zone"))
	if err != nil || strings.Count(string(file), value) != 1 || !strings.Contains(string(file), "TXT") {
		t.Fatalf("zone after append: %v\n%s", err, file)
	}
	if err := dns.DeleteTXT(ctx, zone, name, value); err != nil {
		t.Fatal(err)
	}
	if file, _ := os.ReadFile(filepath.Join(zones, zone+"zone")); strings.Contains(string(file), value) {
		t.Fatalf("TXT record left after delete:\n%s", file)
	}
	// An unknown plugin is a clear error, not a panic.
	if err := (pluginDNS{plugins: tg.plugins, name: "nope"}).AppendTXT(ctx, zone, name, value, time.Minute); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown plugin: %v", err)
	}
}
