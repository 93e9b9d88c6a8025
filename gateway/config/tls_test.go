package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSKeysValidated(t *testing.T) {
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pemFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	acme := map[string]string{
		"BERTH_TLS_MODE":               "acme",
		"BERTH_TLS_NAMES":              "edge.example.com",
		"BERTH_TLS_ACME_AGREE_TERMS":   "true",
		"BERTH_TLS_ACME_DIRECTORY_URL": "https://acme.example/dir",
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantKey string
		wantMsg string
		file    string
	}{
		{"files without cert", map[string]string{"BERTH_TLS_MODE": "files"}, "tls.files.cert_file", "must be set", ""},
		{"files cert missing", map[string]string{"BERTH_TLS_MODE": "files", "BERTH_TLS_FILES_CERT_FILE": filepath.Join(dir, "nope.pem"), "BERTH_TLS_FILES_KEY_FILE": pemFile}, "tls.files.cert_file", "does not exist", ""},
		{"files key is a dir", map[string]string{"BERTH_TLS_MODE": "files", "BERTH_TLS_FILES_CERT_FILE": pemFile, "BERTH_TLS_FILES_KEY_FILE": dir}, "tls.files.key_file", "directory", ""},
		{"files reload too fast", map[string]string{"BERTH_TLS_MODE": "files", "BERTH_TLS_FILES_CERT_FILE": pemFile, "BERTH_TLS_FILES_KEY_FILE": pemFile, "BERTH_TLS_FILES_RELOAD_INTERVAL": "10ms"}, "tls.files.reload_interval", "at least", ""},
		{"acme without agreement", with(acme, "BERTH_TLS_ACME_AGREE_TERMS", "false"), "tls.acme.agree_terms", "must be true", ""},
		{"acme plain http CA", with(acme, "BERTH_TLS_ACME_DIRECTORY_URL", "http://acme.example/dir"), "tls.acme.directory_url", "loopback", ""},
		{"acme bad URL", with(acme, "BERTH_TLS_ACME_DIRECTORY_URL", "acme.example"), "tls.acme.directory_url", "ACME directory", ""},
		{"acme only IPs", with(acme, "BERTH_TLS_NAMES", "10.0.0.5"), "tls.names", "DNS name", ""},
		{"acme bad email", with(acme, "BERTH_TLS_ACME_EMAIL", "ops"), "tls.acme.email", "invalid", ""},
		{"acme missing CA root", with(acme, "BERTH_TLS_ACME_CA_ROOT", filepath.Join(dir, "nope")), "tls.acme.ca_root", "does not exist", ""},
		{"acme unknown challenge", with(acme, "BERTH_TLS_ACME_CHALLENGES", "http-01,smoke"), "tls.acme.challenges[1]", "unknown challenge", ""},
		{"acme duplicate challenge", with(acme, "BERTH_TLS_ACME_CHALLENGES", "http-01,http-01"), "tls.acme.challenges[1]", "twice", ""},
		{"acme no challenges", with(acme, "BERTH_TLS_ACME_CHALLENGES", ""), "tls.acme.challenges", "at least one", ""},
		{"http-01 without http", acme, "tls.acme.challenges", "http.addr", "http:\n  addr: \"\"\n"},
		{"dns-01 without provider", with(acme, "BERTH_TLS_ACME_CHALLENGES", "dns-01"), "tls.acme.dns_provider", "DNS plugin", ""},
		{"bad resolver", with(acme, "BERTH_TLS_ACME_DNS_RESOLVERS", "ns1"), "tls.acme.dns_resolvers[0]", "host:port", ""},
		{"bad ratio", with(acme, "BERTH_TLS_ACME_RENEWAL_WINDOW_RATIO", "1.5"), "tls.acme.renewal_window_ratio", "between", ""},
		{"on_demand no issuances", with(acme, "BERTH_TLS_MODE", "on_demand", "BERTH_TLS_ON_DEMAND_ISSUANCES", "0"), "tls.on_demand.issuances", "at least 1", ""},
		{"acme without https", acme, "tls.mode", "https.addr", "https:\n  addr: \"\"\n"},
		{"redirect without https", map[string]string{"BERTH_TLS_REDIRECT_HTTP": "true"}, "tls.redirect_http", "both", "https:\n  addr: \"\"\n"},
		{"client CA missing", map[string]string{"BERTH_TLS_CLIENT_AUTH_CA_FILE": filepath.Join(dir, "ca.pem")}, "tls.client_auth.ca_file", "does not exist", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, err := Load(path, envMap(tt.env))
			ce, ok := err.(*Error)
			if !ok || ce.Key != tt.wantKey || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %v: want key %s with %q", err, tt.wantKey, tt.wantMsg)
			}
		})
	}

	// Valid ACME and on_demand configurations load; the defaults of the
	// sections of other modes never get in the way.
	for _, env := range []map[string]string{acme, with(acme, "BERTH_TLS_MODE", "on_demand", "BERTH_TLS_NAMES", "")} {
		c, err := Load("", envMap(env))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(c.TLS.ACME.Challenges, ",") != "http-01,tls-alpn-01" || c.TLS.ACME.RenewalWindowRatio != 0.33 {
			t.Fatalf("acme defaults: %+v", c.TLS.ACME)
		}
	}
}
