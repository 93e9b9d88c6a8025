package pebbletest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthgw/berth/internal/freeport"
)

// DNS is a tiny authoritative-and-recursive-at-once DNS server for tests:
// every name has A 127.0.0.1 (and no AAAA), zones added with AddZone answer
// SOA, and TXT records come from AppendTXT. It speaks UDP and TCP on one
// loopback port.
type DNS struct {
	Addr string

	mu    sync.Mutex
	txt   map[string][]string // fqdn → values
	zones map[string]bool     // fqdn of zones
	srvs  []*dns.Server
}

// StartDNS serves until the test ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{txt: map[string][]string{}, zones: map[string]bool{}}
	pc, ln, err := listenUDPAndTCP()
	if err != nil {
		t.Fatal(err)
	}
	d.Addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		d.srvs = append(d.srvs, s)
	}
	t.Cleanup(func() {
		for _, s := range d.srvs {
			_ = s.Shutdown()
		}
	})
	return d
}

// listenUDPAndTCP binds UDP and TCP on one loopback port. The port comes
// from freeport, not from 127.0.0.1:0: a UDP port the kernel picks is in
// the ephemeral range, where a closing outgoing TCP connection may hold the
// same number; and another test may bind the TCP side first, so a few
// ports are tried.
func listenUDPAndTCP() (net.PacketConn, net.Listener, error) {
	var last error
	for range 10 {
		ports, err := freeport.Pick(1)
		if err != nil {
			return nil, nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			last = err
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			last = err
			continue
		}
		return pc, ln, nil
	}
	return nil, nil, fmt.Errorf("pebbletest: no loopback port for DNS on both UDP and TCP: %w", last)
}

// AddZone makes name (e.g. "berth.test") a zone: it answers SOA, which is
// how ACME clients find where to put dns-01 records.
func (d *DNS) AddZone(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.zones[dns.Fqdn(strings.ToLower(name))] = true
}

// AppendTXT adds a TXT record for the fully qualified name.
func (d *DNS) AppendTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dns.Fqdn(strings.ToLower(name))
	d.txt[k] = append(d.txt[k], value)
}

// DeleteTXT removes one TXT value of name.
func (d *DNS) DeleteTXT(name, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dns.Fqdn(strings.ToLower(name))
	vals := d.txt[k][:0]
	for _, v := range d.txt[k] {
		if v != value {
			vals = append(vals, v)
		}
	}
	d.txt[k] = vals
}

// TXTCount is how many TXT records name has now.
func (d *DNS) TXTCount(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.txt[dns.Fqdn(strings.ToLower(name))])
}

// ServeDNS answers one query.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	for _, q := range req.Question {
		name := strings.ToLower(q.Name)
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			for _, v := range d.txt[name] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
		case dns.TypeSOA:
			if d.zones[name] {
				hdr.Rrtype = dns.TypeSOA
				m.Answer = append(m.Answer, &dns.SOA{Hdr: hdr, Ns: "ns." + name, Mbox: "hostmaster." + name,
					Serial: uint32(time.Now().Unix()), Refresh: 60, Retry: 60, Expire: 60, Minttl: 1})
			}
		case dns.TypeNS:
			if d.zones[name] {
				hdr.Rrtype = dns.TypeNS
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr, Ns: "ns." + name})
			}
		}
	}
	d.mu.Unlock()
	_ = w.WriteMsg(m)
}

// Records adapts the server to edgetls.DNSRecords, as a DNS plugin would.
type Records struct{ D *DNS }

// AppendTXT sets name.zone TXT value.
func (r Records) AppendTXT(_ context.Context, zone, name, value string, _ time.Duration) error {
	r.D.AppendTXT(name+"."+zone, value)
	return nil
}

// DeleteTXT removes name.zone TXT value.
func (r Records) DeleteTXT(_ context.Context, zone, name, value string) error {
	r.D.DeleteTXT(name+"."+zone, value)
	return nil
}
