package testpeer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestKnot starts a server with two zones, changes one by hand and with a
// TSIG-signed UPDATE, reads the changes back with plain queries, and
// checks that an unsigned UPDATE is refused.
func TestKnot(t *testing.T) {
	k := StartKnot(t, KnotOptions{Zones: []string{"example.com.", "Example.NET"}})
	if !slices.Equal(k.Zones, []string{"example.com.", "example.net."}) {
		t.Fatalf("zones %v", k.Zones)
	}
	if got := k.Values(t, "ns.example.net.", "A"); !slices.Equal(got, []string{"192.0.2.53"}) {
		t.Errorf("ns.example.net. A = %v", got)
	}

	serial := k.Serial(t, "example.com.")
	k.AddRecord(t, "example.com.", "www", 60, "TXT", `"hand made" "second string"`)
	k.AddRecord(t, "example.com.", "www", 60, "A", "192.0.2.7")
	if got := k.Values(t, "www.example.com.", "TXT"); !slices.Equal(got, []string{`"hand made" "second string"`}) {
		t.Errorf("www TXT after AddRecord = %v", got)
	}
	if k.Serial(t, "example.com.") <= serial {
		t.Error("the serial did not increase")
	}
	k.RemoveRecord(t, "example.com.", "www", "TXT", "")
	if got := k.Values(t, "www.example.com.", "TXT"); len(got) != 0 {
		t.Errorf("www TXT after RemoveRecord = %v", got)
	}
	if got := k.Values(t, "www.example.com.", "A"); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Errorf("www A after removing the TXT = %v", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rr, err := dns.NewRR("signed.example.com. 60 IN A 192.0.2.8")
	if err != nil {
		t.Fatal(err)
	}
	up := new(dns.Msg)
	up.SetUpdate("example.com.")
	up.Insert([]dns.RR{rr})
	r, err := k.Exchange(ctx, up.Copy())
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode == dns.RcodeSuccess {
		t.Error("an unsigned UPDATE was accepted")
	}
	up.SetTsig(k.KeyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{k.KeyName: k.KeySecret}}
	r, _, err = c.ExchangeContext(ctx, up, k.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("a signed UPDATE: %s", dns.RcodeToString[r.Rcode])
	}
	if got := k.Values(t, "signed.example.com.", "A"); !slices.Equal(got, []string{"192.0.2.8"}) {
		t.Errorf("signed A = %v", got)
	}

	k.Stop()
	k.Stop()
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeSOA)
	if _, err := k.Exchange(ctx, m); err == nil {
		t.Error("a stopped server answered")
	}
}
