// Package netguard keeps a notifier's outbound connections off private
// networks, so that a webhook URL entered by a tenant cannot reach the
// gateway's loopback services, the cluster network or a cloud metadata
// endpoint (server-side request forgery).
//
// The check that counts is made at dial time: Guard.DialContext resolves
// the host itself, checks every address and connects to a checked address
// by IP, so a DNS name that answers with a public address when the URL is
// saved and a private one when it is used (DNS rebinding) is still refused.
// Guard.CheckURL makes the same checks early, to reject a bad URL when it
// is configured.
package netguard

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrRefused is wrapped by every refusal (test with errors.Is). The
// refusal's message names the host or address and the reason.
var ErrRefused = errors.New("netguard: refused")

// Guard decides which addresses a plugin may connect to. The zero Guard
// refuses every address that is not public. A Guard is safe for concurrent
// use once it is no longer modified.
type Guard struct {
	// Allow is the operator's explicit allow-list, for receivers on
	// private networks; empty by default. A prefix opens the addresses it
	// contains, also in their IPv4-mapped and 64:ff9b::/96 NAT64 forms.
	// Cloud metadata addresses open only to an entry naming exactly that
	// address, so that allowing, say, 100.64.0.0/10 does not open
	// Alibaba's 100.100.100.200.
	Allow []netip.Prefix

	// Resolver looks up DNS names; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// ParseAllowList parses an operator's allow-list: CIDRs, or single
// addresses meaning /32 or /128. An entry with host bits set (10.0.0.5/8)
// is refused, since it is more likely a typo for a /32 than a wish to open
// the whole network.
func ParseAllowList(cidrs []string) ([]netip.Prefix, error) {
	var allow []netip.Prefix
	for _, s := range cidrs {
		entry := strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(entry, "/") {
			var err error
			if p, err = netip.ParsePrefix(entry); err != nil {
				return nil, fmt.Errorf("netguard: allow-list entry %q is not a CIDR: %w", s, err)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("netguard: allow-list entry %q has host bits set: write %s, or %s/%d for the one address",
					s, p.Masked(), p.Addr(), p.Addr().BitLen())
			}
		} else {
			ip, err := netip.ParseAddr(entry)
			if err != nil {
				return nil, fmt.Errorf("netguard: allow-list entry %q is not an address or CIDR: %w", s, err)
			}
			if ip.Zone() != "" {
				return nil, fmt.Errorf("netguard: allow-list entry %q has an IPv6 zone", s)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		// Connections to ::ffff:a.b.c.d go to a.b.c.d: store the IPv4 form.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		allow = append(allow, p)
	}
	return allow, nil
}

// CheckAddr returns nil if ip is public or on the allow-list, and an error
// wrapping ErrRefused otherwise. IPv4-mapped, IPv4-compatible, NAT64
// (64:ff9b::/96), 6to4 and Teredo addresses are judged by the IPv4 address
// they carry; local-use NAT64 addresses (64:ff9b:1::/48), whose IPv4
// address cannot be located reliably, are refused unless allowed.
func (g *Guard) CheckAddr(ip netip.Addr) error {
	if why := g.refusal(ip); why != "" {
		return fmt.Errorf("%w: %s", ErrRefused, why)
	}
	return nil
}

// refusal returns why ip is refused, or "" if it is allowed.
func (g *Guard) refusal(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	if ip.Zone() != "" {
		return fmt.Sprintf("%s has an IPv6 zone", ip)
	}
	v := classify(ip)
	if v.reason == "" || g.allows(ip, v) {
		return ""
	}
	return v.describe(ip)
}

func (g *Guard) allows(ip netip.Addr, v verdict) bool {
	for _, p := range g.Allow {
		if v.metadata {
			if p.IsSingleIP() && (p.Addr() == ip.Unmap() || p.Addr() == v.embedded) {
				return true
			}
			continue
		}
		if p.Contains(ip) || p.Contains(ip.Unmap()) || v.embedded.IsValid() && p.Contains(v.embedded) {
			return true
		}
	}
	return false
}

// CheckURL parses raw and refuses it unless it is an http or https URL
// without user info, with a host and, if given, a port from 1 to 65535,
// whose host is an allowed address or a DNS name every address of which
// is allowed. Refusals wrap ErrRefused; a failed DNS lookup does not.
// Errors name the host, never the whole URL: webhook URLs carry secrets.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, secrets and all: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%w: malformed URL: %v", ErrRefused, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q: only http and https are allowed", ErrRefused, u.Scheme)
	}
	if u.User != nil {
		// user@host URLs send credentials to, or disguise, the real host.
		return nil, fmt.Errorf("%w: URL for host %q has user info", ErrRefused, u.Hostname())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: URL has no host", ErrRefused)
	}
	if p := u.Port(); p != "" {
		if _, err := parsePort(p); err != nil {
			return nil, err
		}
	}
	if _, err := g.addrs(ctx, "ip", u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: port %q is not a number from 1 to 65535", ErrRefused, s)
	}
	return uint16(n), nil
}

// addrs returns the addresses host stands for: the address it spells, or
// the addresses a name resolves to, each unmapped, all of them allowed.
// network is "ip", "ip4" or "ip6".
func (g *Guard) addrs(ctx context.Context, network, host string) ([]netip.Addr, error) {
	ip, name, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	if ip.IsValid() {
		if why := g.refusal(ip); why != "" {
			if host == ip.String() {
				return nil, fmt.Errorf("%w: %s", ErrRefused, why)
			}
			return nil, fmt.Errorf("%w: host %q: %s", ErrRefused, host, why)
		}
		return []netip.Addr{ip.Unmap()}, nil
	}

	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, network, name)
	if err != nil {
		return nil, fmt.Errorf("netguard: resolve %q: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("netguard: resolve %q: no addresses", host)
	}
	// One private address refuses the name, even beside public ones: a
	// name that points inside is not a receiver on the internet.
	for i, ip := range ips {
		if why := g.refusal(ip); why != "" {
			return nil, fmt.Errorf("%w: host %q: DNS answer %s", ErrRefused, host, why)
		}
		ips[i] = ip.Unmap()
	}
	return ips, nil
}

// connectTimeout bounds each connection attempt, so that one unreachable
// address leaves time to try the next.
const connectTimeout = 10 * time.Second

// DialContext connects like net.Dialer.DialContext, for
// http.Transport.DialContext and SMTP clients, but only over TCP and only
// to allowed addresses. It resolves the host itself, refuses it unless
// every address is allowed, and then dials the checked addresses by IP in
// turn until one connects, so no second lookup can substitute another.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var family string
	switch network {
	case "tcp":
		family = "ip"
	case "tcp4":
		family = "ip4"
	case "tcp6":
		family = "ip6"
	default:
		return nil, fmt.Errorf("netguard: network %q: only tcp is supported", network)
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %v", ErrRefused, address, err)
	}
	port, err := parsePort(portText)
	if err != nil {
		return nil, err
	}
	ips, err := g.addrs(ctx, family, host)
	if err != nil {
		return nil, err
	}

	d := net.Dialer{Timeout: connectTimeout}
	var first error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(ip, port).String())
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("netguard: connect to %q: %w", host, first)
}

// DefaultTimeout bounds a request of an HTTPClient made with no timeout:
// a notification must not wait forever on a receiver.
const DefaultTimeout = 30 * time.Second

// HTTPClient returns an http.Client that connects only through
// g.DialContext. It ignores proxy settings in the environment (a proxy
// would connect for us, past the guard), follows no redirects (a receiver
// must not send the notification, and its headers, somewhere the operator
// did not configure; the 3xx response is returned instead), and requires
// TLS 1.2 or later. timeout bounds each whole request; zero or less means
// DefaultTimeout.
func (g *Guard) HTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:       nil,
			DialContext: g.DialContext,
			// A custom DialContext turns HTTP/2 off unless asked for.
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    10 * time.Second,
			ResponseHeaderTimeout:  timeout,
			ExpectContinueTimeout:  time.Second,
			IdleConnTimeout:        90 * time.Second,
			MaxIdleConns:           16,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
