package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/miekg/dns"
)

// Limits on what a record may carry.
const (
	// maxName is the longest domain name in presentation format, without
	// the final dot (RFC 1035 allows 255 octets on the wire).
	maxName = 253
	// maxTXT bounds a TXT value: it is sent as strings of up to 255 bytes
	// and must fit one UPDATE message with everything else.
	maxTXT = 4000
	// maxTTL is the largest TTL RFC 2181 allows.
	maxTTL = 1<<31 - 1
)

// managed are the types the plugin writes. It reads every type but SOA
// and the DNSSEC ones the server maintains itself.
var managed = map[string]uint16{
	"A": dns.TypeA, "AAAA": dns.TypeAAAA, "CNAME": dns.TypeCNAME, "TXT": dns.TypeTXT,
	"MX": dns.TypeMX, "SRV": dns.TypeSRV, "NS": dns.TypeNS, "CAA": dns.TypeCAA,
}

// serverOwned are types a zone transfer returns that are not the
// operator's records.
var serverOwned = map[uint16]bool{
	dns.TypeSOA: true, dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true,
	dns.TypeNSEC3PARAM: true, dns.TypeDNSKEY: true, dns.TypeCDS: true, dns.TypeCDNSKEY: true,
	dns.TypeZONEMD: true,
}

// checkLabel reports whether label is a usable label of a host or service
// name: letters, digits, '-' and '_' (for _acme-challenge, _tcp, ...), 1
// to 63 of them, not starting or ending with '-'.
func checkLabel(label string) bool {
	if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkDomain checks a fully qualified name: labels as checkLabel says,
// except that the first may be the wildcard "*", and at most maxName
// characters. The root "." passes.
func checkDomain(fqdn string) error {
	if fqdn == "." {
		return nil
	}
	if !strings.HasSuffix(fqdn, ".") {
		return fmt.Errorf("%q is not fully qualified: %w", fqdn, errNoDomain)
	}
	if len(fqdn)-1 > maxName {
		return fmt.Errorf("name of %d characters is longer than %d: %w", len(fqdn)-1, maxName, errNoDomain)
	}
	for i, label := range strings.Split(strings.TrimSuffix(fqdn, "."), ".") {
		if i == 0 && label == "*" {
			continue
		}
		if !checkLabel(label) {
			return fmt.Errorf("%q has a bad label %q (empty, too long, or not letters, digits, '-' and '_'): %w", fqdn, label, errNoDomain)
		}
	}
	return nil
}

// ownerName turns a record's name, relative to zone ("@" for the apex) or
// fully qualified within zone, into its lower-case fully qualified name.
func ownerName(zone, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("record has no name: %w", sdk.ErrInvalidArgument)
	}
	var fqdn string
	switch {
	case name == "@":
		fqdn = zone
	case strings.HasSuffix(name, "."):
		fqdn = strings.ToLower(name)
		if !dns.IsSubDomain(zone, fqdn) {
			return "", fmt.Errorf("name %q is not in zone %s: %w", name, zone, sdk.ErrInvalidArgument)
		}
	default:
		fqdn = strings.ToLower(name) + "." + zone
	}
	if err := checkDomain(fqdn); err != nil {
		return "", fmt.Errorf("name %q: %v: %w", name, err, sdk.ErrInvalidArgument)
	}
	return fqdn, nil
}

// relativeName is the record name of fqdn in zone.
func relativeName(zone, fqdn string) string {
	fqdn = strings.ToLower(fqdn)
	if fqdn == zone {
		return "@"
	}
	return strings.TrimSuffix(fqdn, "."+zone)
}

// targetName turns a host name in a value (a CNAME's target, an MX's
// exchange) into a fully qualified one: as in a zone file, a name without
// the final dot is relative to the zone.
func targetName(zone, name string, rootOK bool) (string, error) {
	if name == "" {
		return "", fmt.Errorf("no target name: %w", sdk.ErrInvalidArgument)
	}
	if name == "." {
		if rootOK {
			return ".", nil
		}
		return "", fmt.Errorf("target \".\" is not allowed here: %w", sdk.ErrInvalidArgument)
	}
	fqdn := strings.ToLower(name)
	if !strings.HasSuffix(fqdn, ".") {
		fqdn += "." + zone
	}
	if err := checkDomain(fqdn); err != nil || strings.HasPrefix(fqdn, "*.") {
		return "", fmt.Errorf("target %q is not a host name: %w", name, sdk.ErrInvalidArgument)
	}
	return fqdn, nil
}

// checkText refuses control characters, which have no place in the
// values the plugin writes and would let a value smuggle line breaks into
// logs and zone files.
func checkText(what, s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return fmt.Errorf("%s has a control character at byte %d: %w", what, i, sdk.ErrInvalidArgument)
		}
	}
	return nil
}

// toRR checks r and builds its resource record in zone, filling in the
// default TTL. It parses nothing as DNS presentation format: every field is
// set from a checked value, so a value cannot add records of its own.
func toRR(zone string, r sdk.Record, defaultTTL time.Duration) (dns.RR, error) {
	owner, err := ownerName(zone, r.Name)
	if err != nil {
		return nil, err
	}
	typ := strings.ToUpper(r.Type)
	rrtype, ok := managed[typ]
	if !ok {
		return nil, fmt.Errorf("record %q: type %q is not one of A, AAAA, CNAME, TXT, MX, SRV, NS, CAA: %w", r.Name, r.Type, sdk.ErrInvalidArgument)
	}
	if typ != "MX" && typ != "SRV" && r.Priority != 0 {
		return nil, fmt.Errorf("record %q %s: only MX and SRV records have a priority: %w", r.Name, typ, sdk.ErrInvalidArgument)
	}
	if typ != "SRV" && r.Weight != 0 {
		return nil, fmt.Errorf("record %q %s: only SRV records have a weight: %w", r.Name, typ, sdk.ErrInvalidArgument)
	}
	if r.Priority > 65535 || r.Weight > 65535 {
		return nil, fmt.Errorf("record %q %s: priority and weight must be at most 65535: %w", r.Name, typ, sdk.ErrInvalidArgument)
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	if ttl < time.Second || ttl/time.Second > maxTTL {
		return nil, fmt.Errorf("record %q %s: TTL %s is not between 1s and %ds: %w", r.Name, typ, r.TTL, maxTTL, sdk.ErrInvalidArgument)
	}
	hdr := dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: uint32(ttl / time.Second)}
	what := fmt.Sprintf("record %q %s", r.Name, typ)
	if err := checkText(what+" value", r.Value); err != nil {
		return nil, err
	}
	switch rrtype {
	case dns.TypeA, dns.TypeAAAA:
		ip, err := netip.ParseAddr(r.Value)
		if err != nil || ip.Zone() != "" || (rrtype == dns.TypeA) != ip.Is4() {
			return nil, fmt.Errorf("%s: %q is not an IPv%s address: %w", what, r.Value, map[bool]string{true: "4", false: "6"}[rrtype == dns.TypeA], sdk.ErrInvalidArgument)
		}
		if rrtype == dns.TypeA {
			return &dns.A{Hdr: hdr, A: ip.AsSlice()}, nil
		}
		return &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}, nil
	case dns.TypeCNAME:
		if owner == zone {
			return nil, fmt.Errorf("%s: a CNAME cannot be at the zone's apex: %w", what, sdk.ErrInvalidArgument)
		}
		target, err := targetName(zone, r.Value, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &dns.CNAME{Hdr: hdr, Target: target}, nil
	case dns.TypeNS:
		target, err := targetName(zone, r.Value, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &dns.NS{Hdr: hdr, Ns: target}, nil
	case dns.TypeMX:
		target, err := targetName(zone, r.Value, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &dns.MX{Hdr: hdr, Preference: uint16(r.Priority), Mx: target}, nil
	case dns.TypeSRV:
		port, host, ok := strings.Cut(r.Value, " ")
		n, err := strconv.ParseUint(port, 10, 16)
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: value %q is not \"<port> <target>\": %w", what, r.Value, sdk.ErrInvalidArgument)
		}
		target, err := targetName(zone, host, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &dns.SRV{Hdr: hdr, Priority: uint16(r.Priority), Weight: uint16(r.Weight), Port: uint16(n), Target: target}, nil
	case dns.TypeTXT:
		if len(r.Value) > maxTXT {
			return nil, fmt.Errorf("%s: value of %d bytes is longer than %d: %w", what, len(r.Value), maxTXT, sdk.ErrInvalidArgument)
		}
		return &dns.TXT{Hdr: hdr, Txt: splitTXT(r.Value)}, nil
	case dns.TypeCAA:
		caa, err := parseCAA(r.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		caa.Hdr = hdr
		return caa, nil
	}
	return nil, fmt.Errorf("%s: unsupported type: %w", what, sdk.ErrInvalidArgument)
}

// parseCAA reads a CAA value as a zone file writes it: `0 issue
// "letsencrypt.org"` (the quotes are optional).
func parseCAA(v string) (*dns.CAA, error) {
	flag, rest, ok1 := strings.Cut(v, " ")
	tag, value, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseUint(flag, 10, 8)
	if !ok1 || !ok2 || err != nil || tag == "" {
		return nil, fmt.Errorf("value %q is not \"<flags> <tag> <value>\": %w", v, sdk.ErrInvalidArgument)
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return nil, fmt.Errorf("tag %q is not letters and digits: %w", tag, sdk.ErrInvalidArgument)
		}
	}
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	if strings.ContainsAny(value, "\"\\") {
		return nil, fmt.Errorf("value %q may not contain quotes or backslashes: %w", v, sdk.ErrInvalidArgument)
	}
	return &dns.CAA{Flag: uint8(n), Tag: strings.ToLower(tag), Value: value}, nil
}

// fromRR is the record of rr in zone; values are in the form toRR takes.
func fromRR(zone string, rr dns.RR) sdk.Record {
	h := rr.Header()
	r := sdk.Record{
		Name: relativeName(zone, h.Name),
		Type: dns.TypeToString[h.Rrtype],
		TTL:  time.Duration(h.Ttl) * time.Second,
	}
	if r.Type == "" {
		r.Type = fmt.Sprintf("TYPE%d", h.Rrtype)
	}
	switch v := rr.(type) {
	case *dns.A:
		r.Value = v.A.String()
	case *dns.AAAA:
		r.Value = v.AAAA.String()
	case *dns.CNAME:
		r.Value = strings.ToLower(v.Target)
	case *dns.NS:
		r.Value = strings.ToLower(v.Ns)
	case *dns.MX:
		r.Value, r.Priority = strings.ToLower(v.Mx), uint(v.Preference)
	case *dns.SRV:
		r.Value = strconv.Itoa(int(v.Port)) + " " + strings.ToLower(v.Target)
		r.Priority, r.Weight = uint(v.Priority), uint(v.Weight)
	case *dns.TXT:
		r.Value = joinTXT(v.Txt)
	case *dns.CAA:
		r.Value = fmt.Sprintf("%d %s %q", v.Flag, v.Tag, unescapeTXT(v.Value))
	default:
		r.Value = strings.TrimPrefix(rr.String(), h.String())
	}
	r.ID = recordID(r)
	return r
}

// recordID is a stable id of a record: its name, type and value.
func recordID(r sdk.Record) string {
	sum := sha256.Sum256([]byte(r.Name + "\x00" + r.Type + "\x00" + strconv.FormatUint(uint64(r.Priority), 10) + "\x00" + r.Value))
	return hex.EncodeToString(sum[:8])
}

// splitTXT cuts a TXT value into character-strings of at most 255 bytes,
// escaped as miekg/dns keeps them in memory.
func splitTXT(v string) []string {
	if v == "" {
		return []string{""}
	}
	var out []string
	for len(v) > 0 {
		n := min(len(v), 255)
		out = append(out, escapeTXT(v[:n]))
		v = v[n:]
	}
	return out
}

// joinTXT is the value of a TXT record's strings, the inverse of splitTXT.
func joinTXT(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(unescapeTXT(p))
	}
	return b.String()
}

// escapeTXT escapes raw bytes the way miekg/dns's unpacking does: '"' and
// '\' with a backslash, bytes outside printable ASCII as \DDD.
func escapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeTXT undoes escapeTXT.
func unescapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n <= 255 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
