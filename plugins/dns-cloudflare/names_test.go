package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
)

// TestNameConversion: the SDK's names (relative, "@" the apex) become
// Cloudflare's (fully qualified, no trailing dot) and back.
func TestNameConversion(t *testing.T) {
	const z = "example.com"
	for _, tc := range []struct {
		name, fqdn, back string
	}{
		{"@", "example.com", "@"},
		{"www", "www.example.com", "www"},
		{"*.x", "*.x.example.com", "*.x"},
		{"*", "*.example.com", "*"},
		{"_acme-challenge", "_acme-challenge.example.com", "_acme-challenge"},
		{"_acme-challenge.www", "_acme-challenge.www.example.com", "_acme-challenge.www"},
		{"_sip._tcp", "_sip._tcp.example.com", "_sip._tcp"},
		{"WWW.Sub", "www.sub.example.com", "www.sub"},
		{"example.com.", "example.com", "@"},
		{"www.example.com.", "www.example.com", "www"},
		{"Deep.A.B.Example.COM.", "deep.a.b.example.com", "deep.a.b"},
	} {
		fqdn, err := toFQDN(tc.name, z)
		if err != nil {
			t.Errorf("toFQDN(%q): %v", tc.name, err)
			continue
		}
		if fqdn != tc.fqdn {
			t.Errorf("toFQDN(%q) = %q, want %q", tc.name, fqdn, tc.fqdn)
		}
		if back := toRelative(fqdn, z); back != tc.back {
			t.Errorf("toRelative(%q) = %q, want %q", fqdn, back, tc.back)
		}
	}
	// A name Cloudflare should never return stays absolute.
	if got := toRelative("other.org", z); got != "other.org." {
		t.Errorf("toRelative of a name outside the zone = %q", got)
	}
	// A zone's suffix is a label boundary: notexample.com is not in it.
	if got := toRelative("notexample.com", z); got != "notexample.com." {
		t.Errorf("toRelative(notexample.com) = %q", got)
	}
}

// hostile are record names the plugin refuses before sending anything.
var hostile = []struct{ what, name string }{
	{"empty", ""},
	{"a space", "bad name"},
	{"a tab", "bad\tname"},
	{"a line break", "bad\nname"},
	{"..", "a..b"},
	{"a leading dot", ".a"},
	{"a slash", "a/b"},
	{"a path", "../../etc/passwd"},
	{"a quote", `a"b`},
	{"a NUL", "a\x00b"},
	{"a wildcard inside", "a.*.b"},
	{"a partial wildcard", "*a"},
	{"not ASCII", "bücher"},
	{"a label of 64", strings.Repeat("a", 64)},
	{"more than 253 characters", strings.Repeat("abcdefghi.", 25) + "x"},
	{"another zone, absolute", "www.example.org."},
	{"a zone suffix that is not a label", "www.notexample.com."},
}

func TestHostileNamesRefused(t *testing.T) {
	for _, tc := range hostile {
		if _, err := toFQDN(tc.name, "example.com"); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("name with %s (%q): error = %v, want ErrInvalidArgument", tc.what, tc.name, err)
		}
	}
	for _, z := range []string{"", ".", "exa mple.com.", "a..b.", "../etc.", "com.", strings.Repeat("a", 250) + ".com.", "*.example.com."} {
		if _, err := normalizeZone(z); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("zone %q: error = %v, want ErrInvalidArgument", z, err)
		}
	}
}

// TestNamesThroughCloudflare writes records with each kind of name
// through the plugin, checks the names the fake received and stored, and
// reads them back relative.
func TestNamesThroughCloudflare(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	names := map[string]string{
		"@":                   "example.com",
		"www":                 "www.example.com",
		"*.x":                 "*.x.example.com",
		"_acme-challenge":     "_acme-challenge.example.com",
		"_acme-challenge.www": "_acme-challenge.www.example.com",
	}
	var in []sdk.Record
	for n := range names {
		in = append(in, sdk.Record{Name: n, Type: "TXT", Value: "v=" + n, TTL: time.Minute})
	}
	if _, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: in}); err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, r := range cf.Records(zone) {
		sent = append(sent, r.Name)
	}
	for _, fqdn := range names {
		if !slices.Contains(sent, fqdn) {
			t.Errorf("Cloudflare has no record named %q; it has %v", fqdn, sent)
		}
	}
	recs, err := d.GetRecords(ctx(t), zone)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[r.Name] = r.Value
	}
	for n := range names {
		if got[n] != "v="+n {
			t.Errorf("record %q read back as %q (all: %v)", n, got[n], got)
		}
	}
}

// TestHostileInputSendsNothing: names, types, values and TTLs that
// Cloudflare would refuse, or that are not DNS at all, are refused as
// ErrInvalidArgument (or ErrUnimplemented for a type the plugin does not
// write) before any request is made.
func TestHostileInputSendsNothing(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	type change struct {
		what string
		rec  sdk.Record
		kind error
	}
	cases := []change{
		{"no type", sdk.Record{Name: "a", Value: "x"}, sdk.ErrInvalidArgument},
		{"a type with a space", sdk.Record{Name: "a", Type: "T XT", Value: "x"}, sdk.ErrInvalidArgument},
		{"a type not written", sdk.Record{Name: "a", Type: "HTTPS", Value: "1 . alpn=h2"}, sdk.ErrUnimplemented},
		{"no value", sdk.Record{Name: "a", Type: "TXT"}, sdk.ErrInvalidArgument},
		{"a TXT value with a line break", sdk.Record{Name: "a", Type: "TXT", Value: "x\ny"}, sdk.ErrInvalidArgument},
		{"a value of 5000 bytes", sdk.Record{Name: "a", Type: "TXT", Value: strings.Repeat("x", 5000)}, sdk.ErrInvalidArgument},
		{"an A value that is no address", sdk.Record{Name: "a", Type: "A", Value: "example.org"}, sdk.ErrInvalidArgument},
		{"an IPv6 A value", sdk.Record{Name: "a", Type: "A", Value: "2001:db8::1"}, sdk.ErrInvalidArgument},
		{"an AAAA value that is IPv4", sdk.Record{Name: "a", Type: "AAAA", Value: "192.0.2.1"}, sdk.ErrInvalidArgument},
		{"a CNAME to a name with a space", sdk.Record{Name: "a", Type: "CNAME", Value: "b c.example."}, sdk.ErrInvalidArgument},
		{"a TTL of 10s", sdk.Record{Name: "a", Type: "TXT", Value: "x", TTL: 10 * time.Second}, sdk.ErrInvalidArgument},
		{"a TTL of 1s (Cloudflare's automatic)", sdk.Record{Name: "a", Type: "TXT", Value: "x", TTL: time.Second}, sdk.ErrInvalidArgument},
		{"a TTL of two days", sdk.Record{Name: "a", Type: "TXT", Value: "x", TTL: 48 * time.Hour}, sdk.ErrInvalidArgument},
		{"a priority on TXT", sdk.Record{Name: "a", Type: "TXT", Value: "x", Priority: 10}, sdk.ErrInvalidArgument},
		{"a priority above 65535", sdk.Record{Name: "a", Type: "MX", Value: "mx.example.com", Priority: 70000}, sdk.ErrInvalidArgument},
		{"an SRV without _service._proto", sdk.Record{Name: "sip", Type: "SRV", Value: "5060 sip.example.com"}, sdk.ErrInvalidArgument},
		{"an SRV value without a port", sdk.Record{Name: "_sip._tcp", Type: "SRV", Value: "sip.example.com"}, sdk.ErrInvalidArgument},
		{"a CAA value without a tag", sdk.Record{Name: "@", Type: "CAA", Value: "0"}, sdk.ErrInvalidArgument},
	}
	for _, h := range hostile {
		cases = append(cases, change{"a name with " + h.what, sdk.Record{Name: h.name, Type: "TXT", Value: "x"}, sdk.ErrInvalidArgument})
	}
	for _, tc := range cases {
		// A valid record first: the bad one must stop the whole call.
		recs := []sdk.Record{{Name: "ok", Type: "TXT", Value: "fine"}, tc.rec}
		_, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: recs})
		wantKind(t, "AppendRecords with "+tc.what, err, tc.kind)
		_, err = d.SetRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: recs})
		wantKind(t, "SetRecords with "+tc.what, err, tc.kind)
	}
	for _, h := range hostile {
		_, err := d.DeleteRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: h.name, Type: "TXT"}}})
		wantKind(t, "DeleteRecords of a name with "+h.what, err, sdk.ErrInvalidArgument)
	}
	for _, z := range []string{"exa mple.com.", "a..b.", "../../etc."} {
		_, err := d.GetRecords(ctx(t), z)
		wantKind(t, "GetRecords of zone "+z, err, sdk.ErrInvalidArgument)
		_, err = d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: z, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}})
		wantKind(t, "AppendRecords in zone "+z, err, sdk.ErrInvalidArgument)
	}
	if reqs := cf.Requests(); len(reqs) != 0 {
		t.Errorf("refused input reached Cloudflare in %d requests, first %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
	}
}

// TestValueSpellings: two spellings of the same data compare equal, so an
// append or set of a record Cloudflare holds in its own spelling is a
// no-op.
func TestValueSpellings(t *testing.T) {
	for _, tc := range []struct{ typ, a, b string }{
		{"CNAME", "Target.Example.com.", "target.example.com"},
		{"MX", "mail.example.com.", "MAIL.example.com"},
		{"AAAA", "2001:DB8:0::1", "2001:db8::1"},
		{"TXT", `"quoted token"`, "quoted token"},
		{"SRV", "5060 SIP.example.com.", "5060 sip.example.com"},
		{"CAA", `0 ISSUE "letsencrypt.org"`, "0 issue letsencrypt.org"},
	} {
		if canonValue(tc.typ, tc.a) != canonValue(tc.typ, tc.b) {
			t.Errorf("%s %q and %q differ: %q, %q", tc.typ, tc.a, tc.b, canonValue(tc.typ, tc.a), canonValue(tc.typ, tc.b))
		}
	}
	for _, tc := range []struct{ typ, a, b string }{
		{"TXT", "Token", "token"},
		{"TXT", `"a" "b"`, `a" "b`},
		{"A", "192.0.2.1", "192.0.2.10"},
	} {
		if canonValue(tc.typ, tc.a) == canonValue(tc.typ, tc.b) {
			t.Errorf("%s %q and %q compare equal", tc.typ, tc.a, tc.b)
		}
	}
	// Cloudflare's automatic TTL reads as 0 and 0 writes as automatic.
	if r := fromCloudflare(cfRecord{Name: "a.example.com", Type: "TXT", Content: "x", TTL: 1}, "example.com"); r.TTL != 0 || r.Name != "a" {
		t.Errorf("automatic TTL read as %+v", r)
	}
	if cfTTL(0) != 1 || cfTTL(5*time.Minute) != 300 {
		t.Errorf("cfTTL(0) = %d, cfTTL(5m) = %d", cfTTL(0), cfTTL(5*time.Minute))
	}
}
