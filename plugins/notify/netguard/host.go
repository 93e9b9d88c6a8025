package netguard

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseHost reads a URL or dial host. If it spells an address in any
// notation that an HTTP client or resolver accepts, that address is
// returned; otherwise the host is a DNS name, returned lower-cased for
// resolution. Hosts that cannot be judged, and names that always mean the
// local host or a metadata server, are refused.
func parseHost(host string) (netip.Addr, string, error) {
	if host == "" {
		return netip.Addr{}, "", fmt.Errorf("%w: no host", ErrRefused)
	}
	if strings.Contains(host, "%") {
		// An IPv6 zone picks an interface, typically a link-local one.
		return netip.Addr{}, "", fmt.Errorf("%w: host %q has an IPv6 zone", ErrRefused, host)
	}
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil {
			return netip.Addr{}, "", fmt.Errorf("%w: host %q is a malformed IPv6 address", ErrRefused, host)
		}
		return ip, "", nil
	}

	name := strings.ToLower(host)
	bare := strings.TrimSuffix(name, ".") // "127.0.0.1." and "localhost." mean the same as without the dot
	labels := strings.Split(bare, ".")
	if numeric(labels[len(labels)-1]) {
		// Like browsers (the WHATWG URL standard), a host whose last label
		// is a number is an IPv4 address or nothing: never a DNS name.
		ip, ok := parseIPv4(labels)
		if !ok {
			return netip.Addr{}, "", fmt.Errorf("%w: host %q is a malformed IPv4 address", ErrRefused, host)
		}
		return ip, "", nil
	}
	if !validName(labels) {
		return netip.Addr{}, "", fmt.Errorf("%w: host %q is not an ASCII DNS name", ErrRefused, host)
	}
	switch {
	case bare == "localhost" || strings.HasSuffix(bare, ".localhost"):
		// RFC 6761: these names are the local host, whatever DNS says.
		return netip.Addr{}, "", fmt.Errorf("%w: host %q is loopback", ErrRefused, host)
	case bare == "metadata.google.internal":
		return netip.Addr{}, "", fmt.Errorf("%w: host %q is cloud metadata", ErrRefused, host)
	}
	return netip.Addr{}, name, nil
}

// numeric reports whether a label is a decimal or 0x-hexadecimal number.
func numeric(label string) bool {
	digits, base := label, 10
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		digits, base = label[2:], 16
		if digits == "" {
			return true
		}
	}
	if digits == "" {
		return false
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')) {
			return false
		}
	}
	return true
}

// parseIPv4 parses the BSD inet_aton spellings that curl, browsers and
// many resolvers accept and net.ParseIP does not: one to four parts, each
// decimal, octal (leading 0) or hexadecimal (0x); the last part fills the
// remaining bytes, so 127.1 is 127.0.0.1 and 2130706433 is too.
func parseIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		v, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		width := 8 // bits this part fills
		if i == len(parts)-1 {
			width = 8 * (5 - len(parts))
		}
		if v >= 1<<width {
			return netip.Addr{}, false
		}
		n = n<<width | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		p, base = p[2:], 16
		if p == "" {
			return 0, true // "0x" is zero to inet_aton and to browsers
		}
	case len(p) >= 2 && p[0] == '0':
		p, base = p[1:], 8
	}
	// An explicit base keeps ParseUint from accepting signs, prefixes
	// and underscores.
	v, err := strconv.ParseUint(p, base, 32)
	return v, err == nil
}

// validName reports whether labels form a DNS host name: ASCII letters,
// digits, hyphens and underscores, 1 to 63 bytes a label, 253 in all.
// Anything else (Unicode, spaces, empty labels) is left unresolved rather
// than handed to a resolver that might read it differently.
func validName(labels []string) bool {
	total := len(labels) - 1
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
		total += len(l)
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return total <= 253
}
