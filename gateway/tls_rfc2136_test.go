package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/edgetls/pebbletest"
	"github.com/berthgw/berth/sdk/testpeer"
)

// buildDNSPlugin builds the first-party RFC 2136 plugin from its module
// and returns its path and SHA-256.
func buildDNSPlugin(t *testing.T) (string, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dns-rfc2136")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../plugins/dns-rfc2136"
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build dns-rfc2136: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return bin, hex.EncodeToString(sum[:])
}

// A wildcard certificate for the managed DNS base domain, issued by pebble
// through DNS-01 whose records the RFC 2136 plugin writes into a real
// authoritative server (knot), which is also the server pebble asks.
func TestWildcardCertificateThroughRFC2136(t *testing.T) {
	knot := testpeer.StartKnot(t, testpeer.KnotOptions{Zones: []string{"berth.test."}})
	plugin, sum := buildDNSPlugin(t)
	s := newACMESetup(t, pebbletest.Options{DNSServer: knot.Addr})
	const wildcard, host = "*.apps.berth.test", "c1.apps.berth.test"
	cfg := s.config(t, t.TempDir(), map[string]string{
		"BERTH_TLS_NAMES":              wildcard,
		"BERTH_TLS_ACME_DNS_RESOLVERS": knot.Addr,
	})
	// Set after loading, which wants dns_provider to name a plugin the
	// file declares: the instance is added here.
	cfg.TLS.ACME.Challenges = []string{"dns-01"}
	cfg.Plugins.Instances = []config.Plugin{{
		Name: "rfc2136", Path: plugin, SHA256: sum, Required: true, Capabilities: []string{"dns"},
		Env:    []string{"BERTH_DNS_TSIG_SECRET=" + knot.KeySecret},
		Config: map[string]any{"server": knot.Addr, "tsig_key_name": knot.KeyName, "tsig_algorithm": knot.KeyAlgorithm},
	}}
	cfg.TLS.ACME.DNSProvider = "rfc2136"
	tg := start(t, cfg, nil)
	leaf := waitForCert(t, tg.HTTPSAddr(), host, s.pebble.Roots(t), "", 120*time.Second)
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != wildcard {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, wildcard)
	}
	if !strings.Contains(s.pebble.Output(), "_acme-challenge.apps.berth.test") && strings.Contains(s.pebble.Output(), "validate w/ HTTP") {
		t.Errorf("not validated over dns-01")
	}
	// The challenge record is removed from the zone afterwards.
	deadline := time.Now().Add(30 * time.Second)
	for len(knot.Values(t, "_acme-challenge.apps.berth.test.", "TXT")) != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if v := knot.Values(t, "_acme-challenge.apps.berth.test.", "TXT"); len(v) != 0 {
		t.Errorf("challenge records left in the zone: %v", v)
	}
}
