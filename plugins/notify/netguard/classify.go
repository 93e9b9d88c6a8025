package netguard

import (
	"fmt"
	"net/netip"
)

// verdict says why an address is not public. For the IPv6 forms that only
// carry an IPv4 address (IPv4-mapped, NAT64, 6to4, ...), the reason is the
// embedded address's, since that is where a connection ends up.
type verdict struct {
	reason   string     // "loopback", "private", ...; empty: public
	form     string     // "IPv4-mapped", "NAT64", ...; empty: the address itself
	embedded netip.Addr // the IPv4 address the form carries
	metadata bool       // a cloud metadata endpoint: only an exact allow-list entry opens it
}

// describe names the address and the reason it is refused.
func (v verdict) describe(ip netip.Addr) string {
	if v.form != "" {
		return fmt.Sprintf("%s is %s (%s form of %s)", ip, v.reason, v.form, v.embedded)
	}
	return fmt.Sprintf("%s is %s", ip, v.reason)
}

// cloudMetadata are the instance metadata endpoints, which hand out cloud
// credentials to whoever asks from inside the instance.
var cloudMetadata = map[netip.Addr]bool{
	netip.MustParseAddr("169.254.169.254"): true, // AWS, GCP, Azure, OCI, DigitalOcean, ...
	netip.MustParseAddr("168.63.129.16"):   true, // Azure wire server
	netip.MustParseAddr("100.100.100.200"): true, // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"):   true, // AWS over IPv6
	netip.MustParseAddr("fd20:ce::254"):    true, // GCP over IPv6
}

type special struct {
	prefix netip.Prefix
	reason string
}

// ipv4Special lists the IPv4 ranges that are not public, first match wins.
var ipv4Special = []special{
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	// "This network": Linux connects 0.0.0.0 to the local host.
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT shared address space"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF-reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// ipv6Special lists the IPv6 ranges that are not public and carry no IPv4
// address, first match wins. Anything else outside 2000::/3 is refused too.
var ipv6Special = []special{
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking"},
	{netip.MustParsePrefix("fc00::/7"), "unique-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
}

var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	ipv4Compat    = netip.MustParsePrefix("::/96")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	teredo        = netip.MustParsePrefix("2001::/32")
)

// classify returns why ip is not a public address, or a zero verdict.
func classify(ip netip.Addr) verdict {
	if cloudMetadata[ip] {
		return verdict{reason: "cloud metadata", metadata: true}
	}
	if ip.Is4() {
		for _, s := range ipv4Special {
			if s.prefix.Contains(ip) {
				return verdict{reason: s.reason}
			}
		}
		return verdict{}
	}

	b := ip.As16()
	switch {
	case ip.Is4In6():
		// The kernel connects ::ffff:a.b.c.d to a.b.c.d over IPv4.
		return embeds("IPv4-mapped", ip.Unmap())
	case ip == netip.IPv6Unspecified():
		return verdict{reason: "unspecified"}
	case ip == netip.IPv6Loopback():
		return verdict{reason: "loopback"}
	case ipv4Compat.Contains(ip):
		// Deprecated by RFC 4291 and never routed: refused even when the
		// IPv4 address it carries is public.
		v := embeds("IPv4-compatible", ipv4At(b, 12, 13, 14, 15))
		if v.reason == "" {
			v = verdict{reason: "IPv4-compatible (deprecated)"}
		}
		return v
	case nat64.Contains(ip):
		return embeds("NAT64", ipv4At(b, 12, 13, 14, 15))
	case nat64Local.Contains(ip):
		// RFC 8215 leaves the prefix length inside the /48, and with it
		// where the IPv4 address sits (RFC 6052 section 2.2), to the
		// operator, whose own translator makes the connection. No reading
		// of the address can be trusted, so all of it is refused unless
		// the allow-list names the IPv6 addresses themselves.
		return verdict{reason: "local-use NAT64"}
	case sixToFour.Contains(ip):
		return embeds("6to4", ipv4At(b, 2, 3, 4, 5))
	case teredo.Contains(ip):
		// The client's address is stored inverted (RFC 4380 section 4).
		client := ipv4At(b, 12, 13, 14, 15).As4()
		for i := range client {
			client[i] ^= 0xff
		}
		return embeds("Teredo", netip.AddrFrom4(client))
	}
	for _, s := range ipv6Special {
		if s.prefix.Contains(ip) {
			return verdict{reason: s.reason}
		}
	}
	if !globalUnicast.Contains(ip) {
		return verdict{reason: "reserved"}
	}
	return verdict{}
}

// embeds classifies the IPv4 address that an IPv6 form carries.
func embeds(form string, v4 netip.Addr) verdict {
	v := classify(v4)
	if v.reason == "" {
		return verdict{}
	}
	v.form, v.embedded = form, v4
	return v
}

// ipv4At reads an IPv4 address from the bytes at the given offsets of an
// IPv6 address.
func ipv4At(b [16]byte, i, j, k, l int) netip.Addr {
	return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]})
}
