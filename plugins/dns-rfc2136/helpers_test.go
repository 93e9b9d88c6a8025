package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
	"github.com/berthgw/berth/sdk/testpeer"
)

const zone = "example.com."

// pluginConfig is the plugin's configuration as a test writes it.
type pluginConfig struct {
	Server         string   `json:"server"`
	TSIGKeyName    string   `json:"tsig_key_name"`
	TSIGAlgorithm  string   `json:"tsig_algorithm,omitempty"`
	TSIGSecretFile string   `json:"tsig_secret_file,omitempty"`
	Zones          []string `json:"zones,omitempty"`
	Timeout        string   `json:"timeout,omitempty"`
}

func (c pluginConfig) JSON() []byte {
	data, _ := json.Marshal(c)
	return data
}

// startKnot starts a knotd serving example.com. and other.example.
func startKnot(t *testing.T) *testpeer.Knot {
	return testpeer.StartKnot(t, testpeer.KnotOptions{Zones: []string{zone, "other.example."}})
}

// secretFile writes secret to a file of its own and returns its path.
func secretFile(t *testing.T, secret string) string {
	path := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// knotConfig configures the plugin for k, the secret in a file.
func knotConfig(t *testing.T, k *testpeer.Knot) pluginConfig {
	return pluginConfig{Server: k.Addr, TSIGKeyName: k.KeyName, TSIGSecretFile: secretFile(t, k.KeySecret)}
}

// startPlugin serves a fresh plugin in the test process, over real gRPC,
// configured with cfg.
func startPlugin(t *testing.T, cfg pluginConfig) pluginclient.DNSProvider {
	t.Helper()
	c := plugintest.StartInProcess(t, options(plugintest.TestLogger(t, "dns-rfc2136")))
	c.Configure(t, cfg.JSON())
	d, err := c.DNS()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ctx bounds one call of a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error = %v, want one matching %v", what, err, kind)
	}
}

// change is a RecordsChange of zone.
func change(recs ...sdk.Record) sdk.RecordsChange {
	return sdk.RecordsChange{Zone: zone, Records: recs}
}
