package ratelimit

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzResolveClientIP feeds arbitrary forwarding headers from a trusted and
// an untrusted peer. The answer must always be a valid address that is
// either the peer or one written in the headers, and an untrusted peer
// must always get its own address back.
func FuzzResolveClientIP(f *testing.F) {
	f.Add("10.0.0.2", "198.51.100.4, 10.0.0.3", "")
	f.Add("203.0.113.9", "1.1.1.1", "2.2.2.2")
	f.Add("10.0.0.2", "", "198.51.100.8")
	f.Add("10.0.0.2", "[2001:db8::5]:443,,, fe80::1%eth0", "")
	f.Add("2001:db8:ffff::1", "::ffff:1.2.3.4", "")
	trusted, _ := ParseTrusted([]string{"10.0.0.0/8", "2001:db8:ffff::/48"})
	f.Fuzz(func(t *testing.T, peerText, xff, xreal string) {
		peer, err := netip.ParseAddr(peerText)
		if err != nil {
			return
		}
		got := ResolveClientIP(peer, [][]byte{[]byte(xff)}, []byte(xreal), trusted)
		if !got.IsValid() {
			t.Fatalf("invalid result for peer %s", peer)
		}
		if !trusted.Contains(peer) && got != peer.Unmap() {
			t.Fatalf("untrusted peer %s resolved to %s", peer, got)
		}
		if got != peer.Unmap() && !bytes.Contains([]byte(xff+xreal), []byte(got.Unmap().String())) && !containsAddr(xff+","+xreal, got) {
			t.Fatalf("result %s is neither the peer nor in the headers", got)
		}
		if k := Key(got); k == "" {
			t.Fatal("empty key")
		}
	})
}

// containsAddr reports whether any comma-separated entry parses to a.
func containsAddr(list string, a netip.Addr) bool {
	for _, part := range bytes.Split([]byte(list), []byte(",")) {
		if p, ok := parseHop(bytes.TrimSpace(part)); ok && p == a {
			return true
		}
	}
	return false
}

// FuzzParseTrusted checks the CIDR list parser never panics and that what
// it accepts contains its own network address.
func FuzzParseTrusted(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "192.168.1.1", "::1", "::ffff:10.0.0.0/104", "2001:db8::/32", "1.2.3.4/0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseTrusted([]string{s})
		if err != nil {
			return
		}
		for _, p := range tr.prefixes {
			if !tr.Contains(p.Addr()) {
				t.Fatalf("%q: prefix %s does not contain its own address", s, p)
			}
		}
	})
}
