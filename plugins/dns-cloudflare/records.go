package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berthgw/berth/sdk"
)

// Limits of DNS and of Cloudflare that the plugin checks before sending.
const (
	maxNameLen  = 253
	maxLabelLen = 63
	// maxValueLen bounds a record's value. Cloudflare's own limits are
	// lower for most types (it answers what it refuses); this keeps an
	// absurd value from being sent at all.
	maxValueLen = 4096
	// minTTL is Cloudflare's shortest TTL (Enterprise zones; other plans
	// start at 60s, which Cloudflare enforces itself).
	minTTL = 30 * time.Second
	// maxTTL is Cloudflare's longest TTL.
	maxTTL = 86400 * time.Second
	// autoTTL is Cloudflare's ttl value for "automatic".
	autoTTL = 1
)

// writableTypes are the record types the plugin can create and update.
// Others are listed by GetRecords and may be deleted, but not written.
var writableTypes = map[string]bool{
	"A": true, "AAAA": true, "CNAME": true, "TXT": true, "MX": true,
	"NS": true, "PTR": true, "SRV": true, "CAA": true,
}

// proxiable lists the types Cloudflare can proxy.
var proxiable = map[string]bool{"A": true, "AAAA": true, "CNAME": true}

// cfRecord is a DNS record as Cloudflare's API reads and writes it.
type cfRecord struct {
	ID       string  `json:"id,omitempty"`
	Type     string  `json:"type"`
	Name     string  `json:"name"`
	Content  string  `json:"content,omitempty"`
	TTL      int     `json:"ttl"`
	Priority *uint16 `json:"priority,omitempty"`
	Proxied  *bool   `json:"proxied,omitempty"`
	Data     *cfData `json:"data,omitempty"`
	Comment  string  `json:"comment,omitempty"`
}

// cfData is the structured content of SRV and CAA records.
type cfData struct {
	// SRV
	Priority *uint16 `json:"priority,omitempty"`
	Weight   *uint16 `json:"weight,omitempty"`
	Port     *uint16 `json:"port,omitempty"`
	Target   string  `json:"target,omitempty"`
	// CAA
	Flags *uint8 `json:"flags,omitempty"`
	Tag   string `json:"tag,omitempty"`
	Value string `json:"value,omitempty"`
}

// invalidf returns an ErrInvalidArgument error.
func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, sdk.ErrInvalidArgument)...)
}

// normalizeZone checks a zone name and returns it in Cloudflare's form:
// lower case, without the trailing dot.
func normalizeZone(zone string) (string, error) {
	z := strings.ToLower(strings.TrimSuffix(zone, "."))
	if z == "" {
		return "", invalidf("no zone")
	}
	if err := checkHost(z, false); err != nil {
		return "", invalidf("zone %q: %v", clip(zone), err)
	}
	if !strings.Contains(z, ".") {
		return "", invalidf("zone %q: a Cloudflare zone has at least two labels", clip(zone))
	}
	return z, nil
}

// toFQDN turns a record name relative to zone ("@" is the apex; a name
// ending in "." is already fully qualified and must be in the zone) into
// Cloudflare's form: fully qualified, lower case, no trailing dot. zone is
// in the form normalizeZone returns.
func toFQDN(name, zone string) (string, error) {
	if name == "" {
		return "", invalidf("record without a name (the zone apex is \"@\")")
	}
	n := strings.ToLower(name)
	var fqdn string
	switch {
	case n == "@":
		fqdn = zone
	case strings.HasSuffix(n, "."):
		fqdn = strings.TrimSuffix(n, ".")
		if fqdn != zone && !strings.HasSuffix(fqdn, "."+zone) {
			return "", invalidf("record name %q is not in zone %s", clip(name), zone)
		}
	default:
		fqdn = n + "." + zone
	}
	if err := checkHost(fqdn, true); err != nil {
		return "", invalidf("record name %q: %v", clip(name), err)
	}
	return fqdn, nil
}

// toRelative turns Cloudflare's fully qualified name into the SDK's name
// relative to zone: "@" for the apex. A name outside the zone, which
// Cloudflare should never return, stays fully qualified with a trailing dot.
func toRelative(fqdn, zone string) string {
	n := strings.ToLower(strings.TrimSuffix(fqdn, "."))
	switch {
	case n == zone:
		return "@"
	case strings.HasSuffix(n, "."+zone):
		return strings.TrimSuffix(n, "."+zone)
	}
	return n + "."
}

// checkHost checks a DNS name without its trailing dot: at most 253
// characters, labels of 1 to 63 letters, digits, hyphens and underscores,
// and, when wildcard is true, "*" as the whole first label.
func checkHost(name string, wildcard bool) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("longer than %d characters", maxNameLen)
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "" {
			return fmt.Errorf("empty label (\"..\", or a leading or trailing dot)")
		}
		if len(l) > maxLabelLen {
			return fmt.Errorf("label longer than %d characters", maxLabelLen)
		}
		if l == "*" {
			if !wildcard || i != 0 {
				return fmt.Errorf("\"*\" is allowed only as the first label of a record name")
			}
			continue
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				if c >= utf8.RuneSelf {
					return fmt.Errorf("not ASCII (write internationalized names in punycode, xn--…)")
				}
				return fmt.Errorf("character %q is not allowed in a DNS name", c)
			}
		}
	}
	return nil
}

// clip shortens s for an error message: a hostile 10 kB name is not
// echoed whole.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// want is a record of a request, checked and in Cloudflare's terms.
type want struct {
	sdk.Record        // Name is relative and lower case, Type upper case
	fqdn       string // Cloudflare's name
}

// checkType checks a record type's spelling and returns it in upper case.
func checkType(typ string) (string, error) {
	t := strings.ToUpper(typ)
	if t == "" {
		return "", invalidf("record without a type")
	}
	if len(t) > 10 {
		return "", invalidf("record type %q is not a DNS type", clip(typ))
	}
	for i := 0; i < len(t); i++ {
		if !(t[i] >= 'A' && t[i] <= 'Z' || t[i] >= '0' && t[i] <= '9') {
			return "", invalidf("record type %q is not a DNS type", clip(typ))
		}
	}
	return t, nil
}

// checkWrite checks a record to create or update and returns it normalized.
func checkWrite(r sdk.Record, zone string) (want, error) {
	typ, err := checkType(r.Type)
	if err != nil {
		return want{}, err
	}
	fqdn, err := toFQDN(r.Name, zone)
	if err != nil {
		return want{}, err
	}
	if !writableTypes[typ] {
		return want{}, fmt.Errorf("record type %s: this plugin writes only A, AAAA, CNAME, TXT, MX, NS, PTR, SRV and CAA records: %w", typ, sdk.ErrUnimplemented)
	}
	w := want{Record: r, fqdn: fqdn}
	w.Type, w.Name, w.ID = typ, toRelative(fqdn, zone), ""
	where := fmt.Sprintf("%s record %q", typ, w.Name)
	if err := checkTTL(r.TTL); err != nil {
		return want{}, invalidf("%s: %v", where, err)
	}
	w.TTL = r.TTL.Truncate(time.Second)
	if r.Priority > 65535 || r.Weight > 65535 {
		return want{}, invalidf("%s: priority and weight are at most 65535", where)
	}
	if r.Priority != 0 && typ != "MX" && typ != "SRV" {
		return want{}, invalidf("%s: only MX and SRV records have a priority", where)
	}
	if r.Weight != 0 && typ != "SRV" {
		return want{}, invalidf("%s: only SRV records have a weight", where)
	}
	if err := checkText(r.Value); err != nil {
		return want{}, invalidf("%s: value %v", where, err)
	}
	if r.Value == "" {
		return want{}, invalidf("%s: no value", where)
	}
	if err := checkValue(typ, r.Value); err != nil {
		return want{}, invalidf("%s: value %q: %v", where, clip(r.Value), err)
	}
	if typ == "SRV" {
		labels := strings.Split(fqdn, ".")
		if len(labels) < 3 || !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return want{}, invalidf("%s: an SRV record's name starts with _service._proto", where)
		}
	}
	return w, nil
}

// checkMatch checks a record of DeleteRecords, where an empty value, zero
// TTL or zero priority match any.
func checkMatch(r sdk.Record, zone string) (want, error) {
	typ, err := checkType(r.Type)
	if err != nil {
		return want{}, err
	}
	fqdn, err := toFQDN(r.Name, zone)
	if err != nil {
		return want{}, err
	}
	if err := checkText(r.Value); err != nil {
		return want{}, invalidf("%s record %q: value %v", typ, r.Name, err)
	}
	if r.TTL < 0 {
		return want{}, invalidf("%s record %q: negative TTL", typ, r.Name)
	}
	w := want{Record: r, fqdn: fqdn}
	w.Type, w.Name, w.ID = typ, toRelative(fqdn, zone), ""
	w.TTL = r.TTL.Truncate(time.Second)
	return w, nil
}

// checkTTL checks a TTL against what Cloudflare can store. Zero means
// Cloudflare's automatic TTL.
func checkTTL(ttl time.Duration) error {
	switch {
	case ttl < 0:
		return fmt.Errorf("negative TTL")
	case ttl == 0:
		return nil
	case ttl < minTTL:
		return fmt.Errorf("TTL %s is shorter than Cloudflare's shortest (%s, or 60s outside Enterprise zones); 0 is Cloudflare's automatic TTL", ttl, minTTL)
	case ttl > maxTTL:
		return fmt.Errorf("TTL %s is longer than Cloudflare's longest (%s)", ttl, maxTTL)
	}
	return nil
}

// checkText refuses values that are not one line of printable UTF-8.
func checkText(v string) error {
	if len(v) > maxValueLen {
		return fmt.Errorf("longer than %d bytes", maxValueLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("has a control character (line break, NUL, …)")
		}
	}
	return nil
}

// checkValue checks a value's form for its type.
func checkValue(typ, v string) error {
	switch typ {
	case "A":
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return fmt.Errorf("not an IPv4 address")
		}
	case "AAAA":
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("not an IPv6 address")
		}
	case "CNAME", "NS", "PTR", "MX":
		if err := checkHost(strings.TrimSuffix(v, "."), false); err != nil {
			return fmt.Errorf("not a host name: %v", err)
		}
	case "SRV":
		if _, _, err := parseSRV(v); err != nil {
			return err
		}
	case "CAA":
		if _, _, _, err := parseCAA(v); err != nil {
			return err
		}
	}
	return nil
}

// parseSRV splits an SRV value, "<port> <target>" (priority and weight are
// the record's fields).
func parseSRV(v string) (uint16, string, error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return 0, "", fmt.Errorf("an SRV value is \"<port> <target>\"")
	}
	port, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil {
		return 0, "", fmt.Errorf("SRV port %q is not a number from 0 to 65535", f[0])
	}
	target := strings.ToLower(strings.TrimSuffix(f[1], "."))
	if f[1] != "." {
		if err := checkHost(target, false); err != nil {
			return 0, "", fmt.Errorf("SRV target: %v", err)
		}
	}
	return uint16(port), target, nil
}

// parseCAA splits a CAA value, `<flags> <tag> <value>`, the value quoted
// or not.
func parseCAA(v string) (uint8, string, string, error) {
	f := strings.SplitN(strings.TrimSpace(v), " ", 3)
	if len(f) != 3 {
		return 0, "", "", fmt.Errorf("a CAA value is `<flags> <tag> \"<value>\"`")
	}
	flags, err := strconv.ParseUint(f[0], 10, 8)
	if err != nil {
		return 0, "", "", fmt.Errorf("CAA flags %q are not a number from 0 to 255", f[0])
	}
	tag := strings.ToLower(f[1])
	if tag == "" {
		return 0, "", "", fmt.Errorf("CAA tag is empty")
	}
	for i := 0; i < len(tag); i++ {
		if !(tag[i] >= 'a' && tag[i] <= 'z' || tag[i] >= '0' && tag[i] <= '9') {
			return 0, "", "", fmt.Errorf("CAA tag %q is not letters and digits", f[1])
		}
	}
	value := strings.TrimSpace(f[2])
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	return uint8(flags), tag, value, nil
}

// canonValue is a value in the form in which two spellings of the same
// data compare equal: host names in lower case without the trailing dot,
// IPv6 addresses in their canonical form, a TXT value without the quotes
// that Cloudflare may add, CAA and SRV values re-spelled.
func canonValue(typ, v string) string {
	switch typ {
	case "AAAA":
		if a, err := netip.ParseAddr(v); err == nil {
			return a.String()
		}
	case "CNAME", "NS", "PTR", "MX":
		return strings.ToLower(strings.TrimSuffix(v, "."))
	case "TXT":
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' && !strings.Contains(v[1:len(v)-1], `"`) {
			return v[1 : len(v)-1]
		}
	case "SRV":
		if port, target, err := parseSRV(v); err == nil {
			return fmt.Sprintf("%d %s", port, target)
		}
	case "CAA":
		if flags, tag, value, err := parseCAA(v); err == nil {
			return fmt.Sprintf("%d %s %q", flags, tag, value)
		}
	}
	return v
}

// sameData reports whether two records of one name and type hold the same
// data: the value and, for MX and SRV, priority and weight. TTL is not
// data: Cloudflare refuses a second record that differs only in TTL.
func sameData(a, b sdk.Record) bool {
	return a.Type == b.Type && canonValue(a.Type, a.Value) == canonValue(b.Type, b.Value) &&
		a.Priority == b.Priority && a.Weight == b.Weight
}

// matches reports whether record r (from Cloudflare) matches m of
// DeleteRecords: same name and type, and the same value, TTL and priority
// where m gives them.
func matches(r sdk.Record, m want) bool {
	return r.Name == m.Name && r.Type == m.Type &&
		(m.Value == "" || canonValue(r.Type, r.Value) == canonValue(m.Type, m.Value)) &&
		(m.TTL == 0 || r.TTL == m.TTL) &&
		(m.Priority == 0 || r.Priority == m.Priority)
}

// cfTTL is a TTL in Cloudflare's terms: 1 for automatic.
func cfTTL(ttl time.Duration) int {
	if ttl == 0 {
		return autoTTL
	}
	return int(ttl / time.Second)
}

// toCloudflare builds the body that creates or updates w. proxied applies
// to the types Cloudflare can proxy and is left out for the others.
func toCloudflare(w want, proxied bool, comment string) cfRecord {
	r := cfRecord{Type: w.Type, Name: w.fqdn, TTL: cfTTL(w.TTL), Comment: comment}
	if proxiable[w.Type] {
		r.Proxied = &proxied
	}
	switch w.Type {
	case "SRV":
		port, target, _ := parseSRV(w.Value)
		prio, weight := uint16(w.Priority), uint16(w.Weight)
		if target == "" {
			target = "."
		}
		r.Data = &cfData{Priority: &prio, Weight: &weight, Port: &port, Target: target}
	case "CAA":
		flags, tag, value, _ := parseCAA(w.Value)
		r.Data = &cfData{Flags: &flags, Tag: tag, Value: value}
	case "MX":
		prio := uint16(w.Priority)
		r.Priority = &prio
		r.Content = strings.TrimSuffix(w.Value, ".")
	case "CNAME", "NS", "PTR":
		r.Content = strings.TrimSuffix(w.Value, ".")
	default:
		r.Content = w.Value
	}
	return r
}

// fromCloudflare turns a Cloudflare record into the SDK's, with the name
// relative to zone and Cloudflare's automatic TTL as 0.
func fromCloudflare(c cfRecord, zone string) sdk.Record {
	r := sdk.Record{ID: c.ID, Name: toRelative(c.Name, zone), Type: strings.ToUpper(c.Type), Value: c.Content}
	if c.TTL > autoTTL {
		r.TTL = time.Duration(c.TTL) * time.Second
	}
	if c.Priority != nil {
		r.Priority = uint(*c.Priority)
	}
	switch r.Type {
	case "TXT":
		// Cloudflare may store a TXT value in DNS's quoted form;
		// the quotes are syntax, not data.
		r.Value = canonValue("TXT", c.Content)
	case "SRV":
		if d := c.Data; d != nil && d.Port != nil {
			r.Value = fmt.Sprintf("%d %s", *d.Port, d.Target)
			if d.Priority != nil {
				r.Priority = uint(*d.Priority)
			}
			if d.Weight != nil {
				r.Weight = uint(*d.Weight)
			}
		} else if f := strings.Fields(c.Content); len(f) == 3 {
			// Content is "<weight> <port> <target>", priority apart.
			if w, err := strconv.ParseUint(f[0], 10, 16); err == nil {
				r.Weight = uint(w)
				r.Value = f[1] + " " + f[2]
			}
		}
	case "CAA":
		if d := c.Data; d != nil && d.Tag != "" {
			var flags uint8
			if d.Flags != nil {
				flags = *d.Flags
			}
			r.Value = fmt.Sprintf("%d %s %q", flags, d.Tag, d.Value)
		}
	}
	return r
}
