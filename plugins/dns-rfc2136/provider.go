package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"
)

// provider is the plugin's DNSProvider. Its client is replaced whole on
// reconfiguration, never modified.
type provider struct {
	log hclog.Logger

	mu         sync.Mutex
	c          *client
	zones      []string // allow-list, fully qualified, lower case; empty allows all
	defaultTTL time.Duration
}

func (p *provider) configure(_ context.Context, cfg Config, _ sdk.Host) error {
	secret, err := readSecret(cfg)
	if err != nil {
		return err
	}
	timeout, err := time.ParseDuration(cfg.Timeout)
	if err != nil {
		return fmt.Errorf("field \"timeout\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	var zones []string
	for _, z := range cfg.Zones {
		zones = append(zones, dns.CanonicalName(z))
	}
	c := &client{
		server:  cfg.Server,
		keyName: dns.CanonicalName(cfg.TSIGKeyName),
		alg:     algorithms[cfg.TSIGAlgorithm],
		secret:  secret,
		timeout: timeout,
	}
	p.mu.Lock()
	p.c, p.zones, p.defaultTTL = c, zones, time.Duration(cfg.DefaultTTL)*time.Second
	p.mu.Unlock()
	if p.log != nil {
		p.log.Info("configured", "server", c.server, "tsig_key_name", c.keyName, "tsig_algorithm", cfg.TSIGAlgorithm, "zones", zones)
	}
	return nil
}

// setup checks the zone's name and the allow-list, and returns the client
// and the zone's canonical name.
func (p *provider) setup(zone string) (*client, string, time.Duration, error) {
	p.mu.Lock()
	c, allowed, ttl := p.c, p.zones, p.defaultTTL
	p.mu.Unlock()
	if c == nil {
		return nil, "", 0, fmt.Errorf("not configured: %w", sdk.ErrFailedPrecondition)
	}
	if zone == "" || zone == "." || strings.HasPrefix(zone, "*") {
		return nil, "", 0, fmt.Errorf("zone %q is not a zone name: %w", zone, sdk.ErrInvalidArgument)
	}
	z := dns.CanonicalName(zone)
	if err := checkDomain(z); err != nil {
		return nil, "", 0, fmt.Errorf("zone %q: %v: %w", zone, err, sdk.ErrInvalidArgument)
	}
	if len(allowed) > 0 && !slices.Contains(allowed, z) {
		return nil, "", 0, fmt.Errorf("zone %s is not in the plugin's \"zones\" list: %w", z, sdk.ErrPermissionDenied)
	}
	return c, z, ttl, nil
}

// GetRecords returns the zone's records, read by a zone transfer, without
// the SOA and the DNSSEC records the server keeps itself.
func (p *provider) GetRecords(ctx context.Context, zone string) ([]sdk.Record, error) {
	c, z, _, err := p.setup(zone)
	if err != nil {
		return nil, err
	}
	if err := c.soa(ctx, z); err != nil {
		return nil, err
	}
	rrs, err := c.transfer(ctx, z)
	if err != nil {
		return nil, err
	}
	var out []sdk.Record
	for _, rr := range rrs {
		if !serverOwned[rr.Header().Rrtype] {
			out = append(out, fromRR(z, rr))
		}
	}
	return out, nil
}

// transfer reads zone with AXFR.
func (c *client) transfer(ctx context.Context, zone string) ([]dns.RR, error) {
	q := new(dns.Msg)
	q.SetAxfr(zone)
	var rrs []dns.RR
	soas := 0
	err := c.exchange(ctx, q, func(m *dns.Msg) (bool, error) {
		for _, rr := range m.Answer {
			if rr.Header().Rrtype == dns.TypeSOA {
				// The transfer starts and ends with the SOA.
				if soas++; soas == 2 {
					return true, nil
				}
				rrs = append(rrs, rr)
				continue
			}
			if soas == 0 {
				return true, fmt.Errorf("zone transfer of %s from %s does not start with the SOA: %w", zone, c.server, sdk.ErrRetryable)
			}
			rrs = append(rrs, rr)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return rrs, nil
}

// query asks for the records of name and type, as the server has them.
func (c *client) query(ctx context.Context, name string, rrtype uint16) ([]dns.RR, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, rrtype)
	q.RecursionDesired = false
	var rrs []dns.RR
	err := c.exchange(ctx, q, func(m *dns.Msg) (bool, error) {
		// A delegation's NS records come back as a referral, in the
		// authority section.
		for _, rr := range slices.Concat(m.Answer, m.Ns) {
			if rr.Header().Rrtype == rrtype && dns.CanonicalName(rr.Header().Name) == name {
				rrs = append(rrs, rr)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return rrs, nil
}

// update sends one UPDATE message for zone, built by build.
func (c *client) update(ctx context.Context, zone string, build func(m *dns.Msg)) error {
	m := new(dns.Msg)
	m.SetUpdate(zone)
	build(m)
	return c.exchange(ctx, m, func(*dns.Msg) (bool, error) { return true, nil })
}

// records checks a request's records and builds their resource records.
func records(zone string, in []sdk.Record, ttl time.Duration) ([]dns.RR, []sdk.Record, error) {
	if len(in) == 0 {
		return nil, nil, fmt.Errorf("no records: %w", sdk.ErrInvalidArgument)
	}
	rrs := make([]dns.RR, 0, len(in))
	out := make([]sdk.Record, 0, len(in))
	for _, r := range in {
		rr, err := toRR(zone, r, ttl)
		if err != nil {
			return nil, nil, err
		}
		rrs = append(rrs, rr)
		out = append(out, fromRR(zone, rr))
	}
	return rrs, out, nil
}

// AppendRecords adds the records with one UPDATE. Adding a record that
// exists changes nothing (RFC 2136, 3.4.2.2), so the call is idempotent.
// A server ignores an addition that clashes with a CNAME; the records
// are read back to catch that.
func (p *provider) AppendRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	c, z, ttl, err := p.setup(req.Zone)
	if err != nil {
		return nil, err
	}
	rrs, out, err := records(z, req.Records, ttl)
	if err != nil {
		return nil, err
	}
	if err := c.soa(ctx, z); err != nil {
		return nil, err
	}
	if err := c.update(ctx, z, func(m *dns.Msg) { m.Insert(rrs) }); err != nil {
		return nil, err
	}
	p.logChange("append", z, len(rrs), 0)
	if err := c.verify(ctx, rrs); err != nil {
		return nil, err
	}
	return out, nil
}

// SetRecords replaces the RRsets of the records' (name, type) pairs with
// them, in one UPDATE message, which the server applies atomically.
func (p *provider) SetRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	c, z, ttl, err := p.setup(req.Zone)
	if err != nil {
		return nil, err
	}
	rrs, out, err := records(z, req.Records, ttl)
	if err != nil {
		return nil, err
	}
	if err := c.soa(ctx, z); err != nil {
		return nil, err
	}
	type key struct {
		name   string
		rrtype uint16
	}
	var sets []dns.RR
	seen := map[key]bool{}
	for _, rr := range rrs {
		k := key{rr.Header().Name, rr.Header().Rrtype}
		if !seen[k] {
			seen[k] = true
			sets = append(sets, &dns.ANY{Hdr: dns.RR_Header{Name: k.name, Rrtype: k.rrtype}})
		}
	}
	if err := c.update(ctx, z, func(m *dns.Msg) {
		m.RemoveRRset(sets)
		m.Insert(rrs)
	}); err != nil {
		return nil, err
	}
	p.logChange("set", z, len(rrs), len(sets))
	if err := c.verify(ctx, rrs); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRecords deletes the records that match, with one UPDATE. A record
// of the request matches those of its name and type whose value, TTL and
// priority equal its own, an empty or zero one matching any.
func (p *provider) DeleteRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	c, z, _, err := p.setup(req.Zone)
	if err != nil {
		return nil, err
	}
	if len(req.Records) == 0 {
		return nil, fmt.Errorf("no records: %w", sdk.ErrInvalidArgument)
	}
	// Each pattern is checked as a record would be, with a value that
	// passes the checks when it is empty.
	type pattern struct {
		owner  string
		rrtype uint16
		want   sdk.Record // in fromRR's form
		value  bool
	}
	var pats []pattern
	for _, r := range req.Records {
		probe := r
		if probe.Value == "" {
			probe.Value = placeholder[strings.ToUpper(r.Type)]
		}
		rr, err := toRR(z, probe, time.Hour)
		if err != nil {
			return nil, err
		}
		pats = append(pats, pattern{rr.Header().Name, rr.Header().Rrtype, fromRR(z, rr), r.Value != ""})
	}
	if err := c.soa(ctx, z); err != nil {
		return nil, err
	}
	var gone []dns.RR
	var deleted []sdk.Record
	for i, pat := range pats {
		r := req.Records[i]
		have, err := c.query(ctx, pat.owner, pat.rrtype)
		if err != nil {
			return nil, err
		}
		for _, rr := range have {
			got := fromRR(z, rr)
			if pat.value && got.Value != pat.want.Value || r.TTL != 0 && got.TTL != r.TTL.Truncate(time.Second) ||
				r.Priority != 0 && got.Priority != r.Priority || slices.ContainsFunc(gone, func(g dns.RR) bool { return dns.IsDuplicate(g, rr) }) {
				continue
			}
			gone = append(gone, rr)
			deleted = append(deleted, got)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := c.update(ctx, z, func(m *dns.Msg) { m.Remove(gone) }); err != nil {
		return nil, err
	}
	p.logChange("delete", z, 0, len(gone))
	return deleted, nil
}

// placeholder is a valid value of each type, to check a delete pattern
// that matches any value.
var placeholder = map[string]string{
	"A": "192.0.2.1", "AAAA": "2001:db8::1", "CNAME": "x", "TXT": "", "MX": "x",
	"SRV": "1 x", "NS": "x", "CAA": "0 issue x",
}

// verify reads back the RRsets of rrs and fails if one of rrs is not
// there: a server silently skips an addition that would put a CNAME
// beside other data (RFC 2136, 3.4.2.2).
func (c *client) verify(ctx context.Context, rrs []dns.RR) error {
	have := map[string][]dns.RR{}
	for _, rr := range rrs {
		h := rr.Header()
		k := h.Name + "/" + dns.TypeToString[h.Rrtype]
		if _, ok := have[k]; !ok {
			got, err := c.query(ctx, h.Name, h.Rrtype)
			if err != nil {
				return fmt.Errorf("read back %s %s: %w", h.Name, dns.TypeToString[h.Rrtype], err)
			}
			have[k] = got
		}
		if !slices.ContainsFunc(have[k], func(g dns.RR) bool { return dns.IsDuplicate(g, rr) }) {
			return fmt.Errorf("server %s accepted the update but did not add %s %s (a CNAME and other data cannot share a name): %w",
				c.server, h.Name, dns.TypeToString[h.Rrtype], sdk.ErrFailedPrecondition)
		}
	}
	return nil
}

func (p *provider) logChange(op, zone string, added, removed int) {
	if p.log != nil {
		p.log.Debug("update sent", "op", op, "zone", zone, "added", added, "removed", removed)
	}
}
