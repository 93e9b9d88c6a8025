package ratelimit

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// Trusted is the set of proxy networks whose forwarding headers Berth
// believes. The zero value (and nil) trusts no one.
type Trusted struct {
	prefixes []netip.Prefix
}

// ParseTrusted reads CIDRs ("10.0.0.0/8") and single addresses ("10.1.2.3",
// taken as /32 or /128).
func ParseTrusted(entries []string) (*Trusted, error) {
	t := &Trusted{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(e, "/") {
			p, err = netip.ParsePrefix(e)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(e)
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR", e)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-96))
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	return t, nil
}

// Contains reports whether a is in a trusted network.
func (t *Trusted) Contains(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client that made the request: the
// socket peer, unless the peer is a trusted proxy, in which case the
// forwarding headers say who is behind it.
func ClientIP(ctx *fasthttp.RequestCtx, trusted *Trusted) netip.Addr {
	peer := peerAddr(ctx)
	if !trusted.Contains(peer) {
		// The common case, and the one that must not be fooled: headers
		// from an untrusted peer are ignored without being parsed.
		return peer
	}
	return ResolveClientIP(peer, ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor),
		ctx.Request.Header.Peek("X-Real-Ip"), trusted)
}

func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if ta, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}

// maxForwardedHops bounds how far back X-Forwarded-For is walked, so a
// header of thousands of entries costs no more than a short one.
const maxForwardedHops = 32

// ResolveClientIP is the rule behind ClientIP, free of fasthttp so it can be
// fuzzed. If peer is not trusted it is the answer. Otherwise X-Forwarded-For
// (all its header lines, in order) is read from the right, skipping trusted
// hops; the first untrusted address is the client, because every hop to its
// right was appended by a proxy Berth trusts while anything to its left was
// written by the client and may be forged. An unparsable entry ends the
// walk: what lies left of it cannot be trusted, so the last trusted hop is
// the answer. Without X-Forwarded-For a valid X-Real-IP is used.
func ResolveClientIP(peer netip.Addr, xff [][]byte, xRealIP []byte, trusted *Trusted) netip.Addr {
	peer = peer.Unmap()
	if !trusted.Contains(peer) {
		return peer
	}
	client := peer
	hops := 0
	sawXFF := false
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for len(line) > 0 {
			var part []byte
			if j := bytes.LastIndexByte(line, ','); j >= 0 {
				part, line = line[j+1:], line[:j]
			} else {
				part, line = line, nil
			}
			part = bytes.TrimSpace(part)
			if len(part) == 0 {
				continue
			}
			sawXFF = true
			a, ok := parseHop(part)
			if !ok {
				return client
			}
			client = a
			if !trusted.Contains(a) {
				return a
			}
			if hops++; hops >= maxForwardedHops {
				return client
			}
		}
	}
	if !sawXFF {
		if a, ok := parseHop(bytes.TrimSpace(xRealIP)); ok {
			return a
		}
	}
	return client
}

// parseHop reads one forwarded address: a bare IPv4 or IPv6 address, or one
// with a port ("1.2.3.4:5678", "[2001:db8::1]:443"), which some proxies
// write. Zones are refused: they mean nothing off the host.
func parseHop(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	s := string(b)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// Key returns the rate-limit key for a client address. IPv6 clients are
// keyed by their /64, the block one subscriber usually holds, so one host
// cannot mint itself fresh buckets by rotating its interface id.
func Key(a netip.Addr) string {
	a = a.Unmap()
	if !a.IsValid() {
		return "invalid"
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
