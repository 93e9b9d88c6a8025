package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseHostSpellings(t *testing.T) {
	tests := []struct {
		host string
		want string // the address meant
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0177.0.0.01", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0x7f.0.0.0x1", "127.0.0.1"},
		{"127.0.0.1.", "127.0.0.1"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"0251.0376.0251.0376", "169.254.169.254"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"[::ffff:7f00:1]", "::ffff:127.0.0.1"},
		{"::1", "::1"},
	}
	for _, tt := range tests {
		ip, name, err := parseHost(tt.host)
		if err != nil || name != "" || ip != netip.MustParseAddr(tt.want) {
			t.Errorf("parseHost(%q) = %v, %q, %v; want %s", tt.host, ip, name, err, tt.want)
		}
	}
}

func TestParseHostNames(t *testing.T) {
	for host, want := range map[string]string{
		"example.com":      "example.com",
		"Example.COM.":     "example.com.",
		"hooks.slack.com":  "hooks.slack.com",
		"1.2.3.4.nip.io":   "1.2.3.4.nip.io", // a name: its addresses are judged after lookup
		"_srv.example.com": "_srv.example.com",
		"0x7g":             "0x7g",
	} {
		ip, name, err := parseHost(host)
		if err != nil || ip.IsValid() || name != want {
			t.Errorf("parseHost(%q) = %v, %q, %v; want name %q", host, ip, name, err, want)
		}
	}
}

func TestParseHostRefuses(t *testing.T) {
	for _, host := range []string{
		"",
		".",
		"256.0.0.1",      // a number too large for its byte
		"1.2.3.4.5",      // five parts
		"4294967296",     // 2^32
		"127.0.0.65536",  // last part wider than a byte
		"08.0.0.1",       // 8 is not an octal digit
		"0x7f.0x100.0.1", // 0x100 wider than a byte
		"127..1",
		"+1",
		"fe80::1%eth0",
		"[fe80::1%25eth0]",
		"::gg",
		"localhost",
		"LOCALHOST.",
		"foo.localhost",
		"metadata.google.internal",
		"Metadata.Google.Internal.",
		"exa mple.com",
		"bücher.example",
		"a..b",
	} {
		ip, name, err := parseHost(host)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("parseHost(%q) = %v, %q, %v; want refused", host, ip, name, err)
		}
	}
}
