package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/configs"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.HTTP.Addr != "127.0.0.1:8080" || c.HTTPS.Addr != "127.0.0.1:8443" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Limits.MaxBodyBytes != 4<<20 || c.Limits.ReadTimeout.D() != 30*time.Second || !c.Store.SyncWrites {
		t.Fatalf("limits/store defaults: %+v %+v", c.Limits, c.Store)
	}
	if c.Proxy.ImpersonatePrefix != "berth:" || !c.Proxy.ImpersonateExtras {
		t.Fatalf("proxy defaults: %+v", c.Proxy)
	}
}

func TestFileAndEnvOverride(t *testing.T) {
	p := writeFile(t, "http:\n  addr: 0.0.0.0:9000\nlimits:\n  read_timeout: 5s\n")
	c, err := Load(p, envMap(map[string]string{
		"BERTH_DATA_DIR":              "/var/lib/berth",
		"BERTH_HTTPS_ADDR":            "127.0.0.1:9443",
		"BERTH_ADMIN_PASSWORD":        "12345678",
		"BERTH_TLS_NAMES":             "edge.example.com, 10.0.0.5",
		"BERTH_LIMITS_IDLE_TIMEOUT":   "1m",
		"BERTH_STORE_SYNC_WRITES":     "false",
		"BERTH_LIMITS_MAX_BODY_BYTES": "2048",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "0.0.0.0:9000" || c.Limits.ReadTimeout.D() != 5*time.Second {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.DataDir != "/var/lib/berth" || c.HTTPS.Addr != "127.0.0.1:9443" || c.AdminPassword != "12345678" {
		t.Errorf("env values not applied: %+v", c)
	}
	if strings.Join(c.TLS.Names, "|") != "edge.example.com|10.0.0.5" {
		t.Errorf("list from env: %q", c.TLS.Names)
	}
	if c.Limits.IdleTimeout.D() != time.Minute || c.Store.SyncWrites || c.Limits.MaxBodyBytes != 2048 {
		t.Errorf("typed env values: %+v %+v", c.Limits, c.Store)
	}
	if c.HTTPS.Addr == "" || c.Log.Level != "info" {
		t.Errorf("untouched keys lost their defaults: %+v", c)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		wantKey string
		wantMsg string
	}{
		{"unknown top key", "colour: blue\n", nil, "colour", "unknown key"},
		{"unknown nested key", "http:\n  adr: x\n", nil, "http.adr", "unknown key"},
		{"bad duration", "limits:\n  read_timeout: soon\n", nil, "limits.read_timeout", "invalid duration"},
		{"bare number duration", "limits:\n  idle_timeout: 30\n", nil, "limits.idle_timeout", "invalid duration"},
		{"negative duration", "limits:\n  idle_timeout: -5s\n", nil, "limits.idle_timeout", "negative"},
		{"bad address", "http:\n  addr: localhost\n", nil, "http.addr", "invalid address"},
		{"bad port", "https:\n  addr: 127.0.0.1:99999\n", nil, "https.addr", "invalid port"},
		{"int as text", "limits:\n  max_body_bytes: lots\n", nil, "limits.max_body_bytes", "cannot unmarshal"},
		{"mapping expected", "http: 8080\n", nil, "http", "want a mapping"},
		{"bad level", "log:\n  level: loud\n", nil, "log.level", "unknown level"},
		{"log flush interval too long", "log:\n  flush_interval: 1m\n", nil, "log.flush_interval", "at most 10s"},
		{"bad tls mode", "tls:\n  mode: magic\n", nil, "tls.mode", "unsupported mode"},
		{"no listeners", "http:\n  addr: \"\"\nhttps:\n  addr: \"\"\n", nil, "http.addr", "at least one"},
		{"env bad duration", "", map[string]string{"BERTH_LIMITS_READ_TIMEOUT": "abc"}, "limits.read_timeout", "BERTH_LIMITS_READ_TIMEOUT"},
		{"env bad address", "", map[string]string{"BERTH_HTTP_ADDR": "nope"}, "http.addr", "invalid address"},
		{"env bad bool", "", map[string]string{"BERTH_STORE_SYNC_WRITES": "maybe"}, "store.sync_writes", "BERTH_STORE_SYNC_WRITES"},
		{"broken yaml", "http: [\n", nil, "", "berth.yaml"},
		{"small body limit", "limits:\n  max_body_bytes: 10\n", nil, "limits.max_body_bytes", "at least"},
		{"no body bytes", "limits:\n  body_min_bytes: 0\n", nil, "limits.body_min_bytes", "from 1"},
		{"body window too short", "limits:\n  body_read_window: 10ms\n", nil, "limits.body_read_window", "at least 1s"},
		{"no ordinary connections", "proxy:\n  max_conns_per_cluster: 0\n", nil, "proxy.max_conns_per_cluster", "from 1"},
		{"no streams", "proxy:\n  max_streams_per_cluster: 0\n", nil, "proxy.max_streams_per_cluster", "from 1"},
		{"user streams over the cluster's", "", map[string]string{"BERTH_PROXY_MAX_STREAMS_PER_CLUSTER": "10", "BERTH_PROXY_MAX_STREAMS_PER_USER": "11"}, "proxy.max_streams_per_user", "max_streams_per_cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.file), envMap(tt.env))
			if err == nil {
				t.Fatal("want an error")
			}
			ce, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %T %v is not *config.Error", err, err)
			}
			if ce.Key != tt.wantKey {
				t.Errorf("key = %q, want %q (%v)", ce.Key, tt.wantKey, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("want error naming the file, got %v", err)
	}
}

// Every key must be documented in configs/berth.yaml and map to its own
// environment variable; the env names in docs/operating.md are fixed contracts.
func TestEveryKeyDocumentedAndDistinct(t *testing.T) {
	doc := string(configs.Default)
	seen := map[string]string{}
	for _, k := range Keys() {
		last := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(doc, last+":") {
			t.Errorf("key %s is not in configs/berth.yaml", k)
		}
		env := EnvName(k)
		if other, dup := seen[env]; dup {
			t.Errorf("keys %s and %s share %s", k, other, env)
		}
		seen[env] = k
	}
	for _, fixed := range []string{"BERTH_DATA_DIR", "BERTH_HTTP_ADDR", "BERTH_HTTPS_ADDR", "BERTH_ADMIN_PASSWORD", "BERTH_SECRET_KEY"} {
		if _, ok := seen[fixed]; !ok {
			t.Errorf("contract env var %s maps to no key", fixed)
		}
	}
}

func TestDNSProviderMustNameAPlugin(t *testing.T) {
	p := writeFile(t, "tls:\n  mode: acme\n  names: [edge.example.com]\n  acme:\n    email: ops@example.com\n    agree_terms: true\n    challenges: [dns-01]\n    dns_provider: route53\n")
	_, err := Load(p, nil)
	ce, ok := err.(*Error)
	if !ok || ce.Key != "tls.acme.dns_provider" || !strings.Contains(err.Error(), "route53") {
		t.Fatalf("got %v, want an error naming tls.acme.dns_provider", err)
	}
}
