package hostnames

import (
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/fault"
)

func TestCheckHostname(t *testing.T) {
	long := strings.Repeat("a", 63)
	tooLong := strings.Join([]string{long, long, long, long}, ".") + ".com" // 259
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"app.example.com", true},
		{"a-b.c1.apps.example.com", true},
		{"*.shop.example.com", true},
		{"xn--bcher-kva.example", true},
		{long + ".example.com", true},
		{"", false},
		{tooLong, false},
		{strings.Repeat("a", 64) + ".example.com", false},
		{"app..example.com", false},
		{".example.com", false},
		{"-app.example.com", false},
		{"app-.example.com", false},
		{"_acme.example.com", false},
		{"my_app.example.com", false},
		{"*", false},
		{"*.com", false},
		{"a.*.example.com", false},
		{"**.example.com", false},
		{"192.0.2.1", false},
		{"2001:db8::1", false},
		{"app.example.123", false},
		{"com", false},
		{"co.uk", false},
		{"github.io", false},
		{"app example.com", false},
		{"app.exämple.com", false},
		{"localhost", false},
	} {
		err := CheckHostname(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckHostname(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && fault.KindOf(err) != fault.Invalid {
			t.Errorf("CheckHostname(%q): kind %v, want invalid", tc.name, fault.KindOf(err))
		}
	}
}

func TestOwnerNameRoundTrip(t *testing.T) {
	for _, name := range []string{"c1.apps.example.com", "*.shop.apps.example.com"} {
		back, ok := ownedName(ownerName(name))
		if !ok || back != name {
			t.Errorf("ownedName(ownerName(%q)) = %q, %v", name, back, ok)
		}
	}
	if _, ok := ownedName("www.example.com"); ok {
		t.Error("a plain name read as an ownership record")
	}
}

func TestOwnedBy(t *testing.T) {
	for _, tc := range []struct {
		value, owner string
		want         bool
	}{
		{ownership("berth", "cluster/c1"), "berth", true},
		{`"` + ownership("berth", "cluster/c1") + `"`, "berth", true},
		{ownership("other", "cluster/c1"), "berth", false},
		{"heritage=external-dns,external-dns/owner=berth", "berth", false},
		{"berth/owner=berth", "berth", false},
		{"heritage=berth,berth/owner=berthx", "berth", false},
	} {
		if got := ownedBy(tc.value, tc.owner); got != tc.want {
			t.Errorf("ownedBy(%q, %q) = %v", tc.value, tc.owner, got)
		}
	}
}

func TestSettingsValidation(t *testing.T) {
	ok := Settings{BaseDomain: "apps.example.com", Plugin: "dns", TargetHostname: "edge.example.net"}
	for _, tc := range []struct {
		name string
		edit func(*Settings)
	}{
		{"public suffix", func(s *Settings) { s.BaseDomain = "co.uk" }},
		{"top-level domain", func(s *Settings) { s.BaseDomain = "com" }},
		{"wildcard", func(s *Settings) { s.BaseDomain = "*.example.com" }},
		{"no plugin", func(s *Settings) { s.Plugin = "" }},
		{"no target", func(s *Settings) { s.TargetHostname = "" }},
		{"both targets", func(s *Settings) { s.TargetAddresses = []string{"192.0.2.1"} }},
		{"target under the base", func(s *Settings) { s.TargetHostname = "edge.apps.example.com" }},
		{"zone not holding the base", func(s *Settings) { s.Zone = "example.org" }},
		{"bad address", func(s *Settings) { s.TargetHostname, s.TargetAddresses = "", []string{"edge"} }},
		{"unspecified address", func(s *Settings) { s.TargetHostname, s.TargetAddresses = "", []string{"0.0.0.0"} }},
		{"ttl", func(s *Settings) { s.TTL = 5 }},
		{"resolver by name", func(s *Settings) { s.Resolver = "dns.google:53" }},
		{"resolver without port", func(s *Settings) { s.Resolver = "8.8.8.8" }},
		{"owner id", func(s *Settings) { s.OwnerID = "Berth Prod" }},
		{"plugin without a base", func(s *Settings) { s.BaseDomain = "" }},
	} {
		s := ok
		s.TargetAddresses = nil
		tc.edit(&s)
		if err := s.normalize(); err == nil || fault.KindOf(err) != fault.Invalid {
			t.Errorf("%s: %+v accepted (%v)", tc.name, s, err)
		}
	}
	s := ok
	s.BaseDomain, s.Zone = "Apps.Example.COM.", "example.com."
	if err := s.normalize(); err != nil || s.BaseDomain != "apps.example.com" || s.ZoneName() != "example.com." || s.Target("c1") != "c1.apps.example.com" {
		t.Errorf("normalized: %+v %v", s, err)
	}
	off := Settings{}
	if err := off.normalize(); err != nil || off.Enabled() || off.Target("c1") != "" {
		t.Errorf("empty settings: %+v %v", off, err)
	}
}
