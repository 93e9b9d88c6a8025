package netguard

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddrRefusesNonPublic(t *testing.T) {
	tests := []struct {
		addr string
		want string // in the error message
	}{
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.254", "CGNAT"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fc00::1", "unique-local"},
		{"fd12:3456::1", "unique-local"},
		{"fec0::1", "site-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"2001:2::1", "benchmarking"},
		{"192.0.2.1", "documentation"},
		{"2001:db8::1", "documentation"},
		{"100::1", "discard-only"},
		{"4000::1", "reserved"},

		{"169.254.169.254", "cloud metadata"},
		{"168.63.129.16", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},

		// IPv6 forms that carry an IPv4 address are judged by that address.
		{"::ffff:127.0.0.1", "loopback (IPv4-mapped form of 127.0.0.1)"},
		{"::ffff:7f00:1", "loopback (IPv4-mapped form of 127.0.0.1)"},
		{"::ffff:169.254.169.254", "cloud metadata (IPv4-mapped form of 169.254.169.254)"},
		{"::ffff:10.0.0.1", "private"},
		{"::127.0.0.1", "loopback (IPv4-compatible form of 127.0.0.1)"},
		{"::93.184.216.34", "IPv4-compatible (deprecated)"},
		{"64:ff9b::7f00:1", "loopback (NAT64 form of 127.0.0.1)"},
		{"64:ff9b::a9fe:a9fe", "cloud metadata (NAT64 form of 169.254.169.254)"},
		{"64:ff9b::a00:1", "private (NAT64 form of 10.0.0.1)"},
		{"64:ff9b:1::7f00:1", "local-use NAT64"},        // 127.0.0.1 in the /96 layout
		{"64:ff9b:1:7f00:0:100::", "local-use NAT64"},   // 127.0.0.1 in the /48 layout
		{"64:ff9b:1:5db8:d8:2200::", "local-use NAT64"}, // 93.184.216.34 in the /48 layout
		{"64:ff9b:1::5db8:d822", "local-use NAT64"},     // 93.184.216.34 in the /96 layout
		{"2002:7f00:1::1", "loopback (6to4 form of 127.0.0.1)"},
		{"2002:a9fe:a9fe::", "cloud metadata (6to4 form of 169.254.169.254)"},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (Teredo form of 127.0.0.1)"},
		{"64:ff9b::1:0:0:1", "reserved"}, // in 64:ff9b::/32 but neither NAT64 prefix
	}
	var g Guard
	for _, tt := range tests {
		err := g.CheckAddr(netip.MustParseAddr(tt.addr))
		if !errors.Is(err, ErrRefused) {
			t.Errorf("CheckAddr(%s) = %v, want refused", tt.addr, err)
			continue
		}
		ip := netip.MustParseAddr(tt.addr).String()
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), ip) {
			t.Errorf("CheckAddr(%s) = %q, want it to name the address and %q", tt.addr, err, tt.want)
		}
	}
}

func TestCheckAddrPassesPublic(t *testing.T) {
	for _, addr := range []string{
		"93.184.216.34",
		"1.1.1.1",
		"8.8.8.8",
		"100.63.255.255",  // just below CGNAT
		"100.128.0.0",     // just above CGNAT
		"172.32.0.1",      // just above 172.16/12
		"169.255.0.1",     // just above link-local
		"168.63.129.17",   // beside the Azure wire server
		"223.255.255.255", // just below multicast
		"2606:4700::1111",
		"2a00:1450:4001:80b::200e",
		"::ffff:93.184.216.34",
		"64:ff9b::5db8:d822",          // NAT64 of 93.184.216.34: what NAT64 is for
		"2002:5db8:d822::1",           // 6to4 of 93.184.216.34
		"2001:0:4136:e378::a247:27dd", // Teredo client 93.184.216.34
	} {
		var g Guard
		if err := g.CheckAddr(netip.MustParseAddr(addr)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want nil", addr, err)
		}
	}
}

func TestCheckAddrRefusesZonesAndZeroAddr(t *testing.T) {
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("::/0")}}
	for _, ip := range []netip.Addr{{}, netip.MustParseAddr("fe80::1%eth0")} {
		if err := g.CheckAddr(ip); !errors.Is(err, ErrRefused) {
			t.Errorf("CheckAddr(%v) = %v, want refused even with ::/0 allowed", ip, err)
		}
	}
}

func TestAllowListOpensOnlyWhatItNames(t *testing.T) {
	allow, err := ParseAllowList([]string{"127.0.0.1", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "168.63.129.16/32", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	g := Guard{Allow: allow}
	tests := []struct {
		addr    string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"64:ff9b::7f00:1", true},
		{"127.0.0.2", false},
		{"::1", false},
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"172.16.0.1", false},
		{"192.168.0.1", false},
		{"100.64.0.1", true},
		{"100.100.100.200", false}, // metadata inside an allowed range
		{"169.254.1.1", true},
		{"169.254.169.254", false}, // metadata inside an allowed range
		{"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b:1::7f00:1", false}, // local-use NAT64: no reading of it can be trusted
		{"168.63.129.16", true},      // metadata named exactly
		{"fd12::1", true},
		{"fd00:ec2::254", false}, // metadata inside an allowed range
		{"fe80::1", false},
		{"93.184.216.34", true}, // public needs no allowing
	}
	for _, tt := range tests {
		err := g.CheckAddr(netip.MustParseAddr(tt.addr))
		if tt.allowed && err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", tt.addr, err)
		}
		if !tt.allowed && !errors.Is(err, ErrRefused) {
			t.Errorf("CheckAddr(%s) = %v, want refused", tt.addr, err)
		}
	}
}

func TestParseAllowList(t *testing.T) {
	good := map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		" 192.168.1.5 ":       "192.168.1.5/32",
		"::1":                 "::1/128",
		"fd00::/8":            "fd00::/8",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:10.0.0.1":     "10.0.0.1/32",
		"0.0.0.0/0":           "0.0.0.0/0",
	}
	for in, want := range good {
		got, err := ParseAllowList([]string{in})
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("ParseAllowList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0.5/8", "fe80::1%eth0", "127.1", "0x7f000001", "example.com", "10.0.0.0/"} {
		got, err := ParseAllowList([]string{"10.0.0.0/8", bad})
		if err == nil || got != nil {
			t.Errorf("ParseAllowList(%q) = %v, %v; want an error", bad, got, err)
			continue
		}
		if !strings.Contains(err.Error(), "allow-list entry") {
			t.Errorf("ParseAllowList(%q) error %q does not say which entry", bad, err)
		}
	}
	if got, err := ParseAllowList(nil); err != nil || len(got) != 0 {
		t.Errorf("ParseAllowList(nil) = %v, %v; want empty", got, err)
	}
}
