package main

// The tests talk to internal/cftest, a local HTTPS server that implements
// the Cloudflare v4 API endpoints the plugin uses as Cloudflare documents
// them. It is a fake, not Cloudflare: Cloudflare cannot be reached from
// the machines these tests run on.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/plugins/dns-cloudflare/internal/cftest"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
)

// testToken is shaped like a Cloudflare API token (40 characters).
const testToken = "cfTestToken_0123456789abcdefghijklmnopq"

// zone is the zone the tests work in; cftest holds it as "example.com".
const zone = "example.com."

// pluginConfig is the plugin's configuration as a test writes it.
type pluginConfig struct {
	APITokenFile string `json:"api_token_file,omitempty"`
	BaseURL      string `json:"base_url,omitempty"`
	CAFile       string `json:"ca_file,omitempty"`
	PerPage      int    `json:"per_page,omitempty"`
	Timeout      string `json:"timeout,omitempty"`
	Proxied      bool   `json:"proxied,omitempty"`
}

func (c pluginConfig) JSON() []byte {
	data, _ := json.Marshal(c)
	return data
}

// startCF starts a fake Cloudflare holding the test zone.
func startCF(t *testing.T) *cftest.Server {
	t.Helper()
	cf := cftest.Start(t, testToken)
	cf.AddZone(zone)
	return cf
}

// writeToken writes token to a file and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cloudflare-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// configFor is a configuration reaching cf with token from a file.
func configFor(t *testing.T, cf *cftest.Server, token string) pluginConfig {
	return pluginConfig{APITokenFile: writeToken(t, token), BaseURL: cf.BaseURL, CAFile: cf.CAFile}
}

// startPlugin serves a fresh plugin in the test process, over real gRPC,
// configured with cfg.
func startPlugin(t *testing.T, cfg pluginConfig) pluginclient.DNSProvider {
	t.Helper()
	c := plugintest.StartInProcess(t, options())
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

// writes returns the requests that change records.
func writes(reqs []cftest.Request) []cftest.Request {
	var out []cftest.Request
	for _, r := range reqs {
		if r.Method != "GET" {
			out = append(out, r)
		}
	}
	return out
}

// methods counts requests by method.
func methods(reqs []cftest.Request) map[string]int {
	n := map[string]int{}
	for _, r := range reqs {
		n[r.Method]++
	}
	return n
}

// recordsNamed returns the records of the fake's zone with a name
// starting with prefix.
func recordsNamed(cf *cftest.Server, prefix string) []cftest.Record {
	var out []cftest.Record
	for _, r := range cf.Records(zone) {
		if strings.HasPrefix(r.Name, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// get returns the plugin's records with name and type.
func get(t *testing.T, d pluginclient.DNSProvider, name, typ string) []sdk.Record {
	t.Helper()
	recs, err := d.GetRecords(ctx(t), zone)
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	var out []sdk.Record
	for _, r := range recs {
		if r.Name == name && r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}
