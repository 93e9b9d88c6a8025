package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
)

// TestPaging: GetRecords follows every page. 13 records at 5 a page are
// three pages, each asked for once.
func TestPaging(t *testing.T) {
	cf := startCF(t)
	for i := range 13 {
		cf.Seed(t, zone, map[string]any{"type": "TXT", "name": fmt.Sprintf("r%02d", i), "content": strconv.Itoa(i)})
	}
	cfg := configFor(t, cf, testToken)
	cfg.PerPage = 5
	d := startPlugin(t, cfg)
	recs, err := d.GetRecords(ctx(t), zone)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if len(names) != 13 || names[0] != "r00" || names[12] != "r12" {
		t.Errorf("GetRecords returned %d records: %v", len(names), names)
	}
	var pages []string
	for _, r := range cf.Requests() {
		if strings.HasSuffix(r.Path, "/dns_records") {
			pages = append(pages, r.Query.Get("page")+"/"+r.Query.Get("per_page"))
		}
	}
	if !slices.Equal(pages, []string{"1/5", "2/5", "3/5"}) {
		t.Errorf("pages asked for: %v, want 1/5 2/5 3/5", pages)
	}
}

// TestAppendIdempotent: a repeated append, with the same idempotency key
// or another, sends no second POST; two identical records in one request
// make one record.
func TestAppendIdempotent(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	rec := sdk.Record{Name: "_acme-challenge", Type: "TXT", Value: "abc123", TTL: 2 * time.Minute}
	for _, key := range []string{"acme-append-1", "acme-append-1", "another-key"} {
		added, err := d.AppendRecords(ctx(t), sdk.RecordsChange{IdempotencyKey: key, Zone: zone, Records: []sdk.Record{rec, rec}})
		if err != nil {
			t.Fatal(err)
		}
		if len(added) != 2 || added[0].ID == "" || added[0].ID != added[1].ID || added[0].Value != rec.Value || added[0].TTL != rec.TTL {
			t.Errorf("key %s: AppendRecords returned %+v", key, added)
		}
	}
	if got := methods(cf.Requests()); got["POST"] != 1 {
		t.Errorf("requests %v, want one POST", got)
	}
	stored := recordsNamed(cf, "_acme-challenge")
	if len(stored) != 1 {
		t.Fatalf("Cloudflare holds %+v", stored)
	}
	if c := stored[0].Comment; c == nil || !strings.Contains(*c, "Berth") || !strings.Contains(*c, "acme-append-1") {
		t.Errorf("comment %v does not name Berth and the idempotency key", c)
	}
	// Only the data makes a record the same: another value is appended.
	rec.Value = "def456"
	if _, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	if n := len(recordsNamed(cf, "_acme-challenge")); n != 2 {
		t.Errorf("%d records after appending another value, want 2", n)
	}
}

// TestAppendRace: a record created by someone else between the plugin's
// list and its POST (Cloudflare answers 81058) is the record asked for;
// the append succeeds and returns it.
func TestAppendRace(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	// Simulate the race directly on the runtime: list (empty), then the
	// record appears, then the plugin's POST.
	rt, err := newRuntime(Config{APITokenFile: writeToken(t, testToken), BaseURL: cf.BaseURL, CAFile: cf.CAFile, PerPage: 100, Timeout: "30s"})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := rt.api.zoneID(ctx(t), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	w, err := checkWrite(sdk.Record{Name: "race", Type: "TXT", Value: "v"}, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	g := groups{}
	if recs, err := g.get(ctx(t), rt, "example.com", id, w); err != nil || len(recs) != 0 {
		t.Fatalf("list: %v, %v", recs, err)
	}
	cf.Seed(t, zone, map[string]any{"type": "TXT", "name": "race", "content": "v"})
	_, err = rt.api.createRecord(ctx(t), id, toCloudflare(w, false, ""))
	wantKind(t, "creating a record that appeared meanwhile", err, sdk.ErrAlreadyExists)
	// Through the plugin, the same append is a no-op that succeeds.
	added, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "race", Type: "TXT", Value: "v"}}})
	if err != nil || len(added) != 1 {
		t.Fatalf("AppendRecords: %+v, %v", added, err)
	}
}

// TestSetRecordsMinimalCalls: SetRecords converges each case with the
// fewest writes: nothing for what is already so, a PATCH per record that
// changes in place, a POST per record missing, a DELETE per record left
// over.
func TestSetRecordsMinimalCalls(t *testing.T) {
	a := func(ip string, ttl int) map[string]any {
		return map[string]any{"type": "A", "name": "web", "content": ip, "ttl": ttl}
	}
	want := func(ttl time.Duration, ips ...string) []sdk.Record {
		var out []sdk.Record
		for _, ip := range ips {
			out = append(out, sdk.Record{Name: "web", Type: "A", Value: ip, TTL: ttl})
		}
		return out
	}
	for _, tc := range []struct {
		what     string
		existing []map[string]any
		desired  []sdk.Record
		calls    map[string]int // writes by method
	}{
		{"already so", []map[string]any{a("192.0.2.1", 300), a("192.0.2.2", 300)}, want(5*time.Minute, "192.0.2.2", "192.0.2.1"), map[string]int{}},
		{"nothing yet", nil, want(time.Minute, "192.0.2.1", "192.0.2.2"), map[string]int{"POST": 2}},
		{"a new TTL", []map[string]any{a("192.0.2.1", 300)}, want(time.Hour, "192.0.2.1"), map[string]int{"PATCH": 1}},
		{"automatic TTL", []map[string]any{a("192.0.2.1", 300)}, want(0, "192.0.2.1"), map[string]int{"PATCH": 1}},
		{"one more", []map[string]any{a("192.0.2.1", 300)}, want(5*time.Minute, "192.0.2.1", "192.0.2.2"), map[string]int{"POST": 1}},
		{"one less", []map[string]any{a("192.0.2.1", 300), a("192.0.2.2", 300)}, want(5*time.Minute, "192.0.2.2"), map[string]int{"DELETE": 1}},
		{"three become one other", []map[string]any{a("192.0.2.1", 300), a("192.0.2.2", 300), a("192.0.2.3", 300)}, want(5*time.Minute, "192.0.2.9"), map[string]int{"PATCH": 1, "DELETE": 2}},
		{"one kept, one changed", []map[string]any{a("192.0.2.1", 300), a("192.0.2.2", 300)}, want(5*time.Minute, "192.0.2.1", "192.0.2.7"), map[string]int{"PATCH": 1}},
		{"proxied becomes DNS only", []map[string]any{{"type": "A", "name": "web", "content": "192.0.2.1", "ttl": 300, "proxied": true}}, want(5*time.Minute, "192.0.2.1"), map[string]int{"PATCH": 1}},
		{"a repeated record counts once", nil, want(time.Minute, "192.0.2.1", "192.0.2.1"), map[string]int{"POST": 1}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			cf := startCF(t)
			for _, e := range tc.existing {
				cf.Seed(t, zone, e)
			}
			// A record of another type at the name, and one of the
			// same type at another name, are not touched.
			cf.Seed(t, zone, map[string]any{"type": "TXT", "name": "web", "content": "keep me"})
			cf.Seed(t, zone, map[string]any{"type": "A", "name": "other", "content": "198.51.100.1"})
			d := startPlugin(t, configFor(t, cf, testToken))
			got, err := d.SetRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: tc.desired})
			if err != nil {
				t.Fatal(err)
			}
			calls := methods(writes(cf.Requests()))
			if fmt.Sprint(calls) != fmt.Sprint(tc.calls) {
				t.Errorf("writes %v, want %v", calls, tc.calls)
			}
			var wantIPs, gotIPs, storedIPs []string
			for _, r := range tc.desired {
				if !slices.Contains(wantIPs, r.Value) {
					wantIPs = append(wantIPs, r.Value)
				}
			}
			for _, r := range got {
				gotIPs = append(gotIPs, r.Value)
				if r.TTL != tc.desired[0].TTL {
					t.Errorf("returned %+v, want TTL %s", r, tc.desired[0].TTL)
				}
			}
			for _, r := range cf.Records(zone) {
				if r.Name == "web.example.com" && r.Type == "A" {
					storedIPs = append(storedIPs, r.Content)
					if r.Proxied {
						t.Errorf("record %s is proxied", r.Content)
					}
				}
			}
			slices.Sort(wantIPs)
			slices.Sort(gotIPs)
			slices.Sort(storedIPs)
			if !slices.Equal(gotIPs, wantIPs) || !slices.Equal(storedIPs, wantIPs) {
				t.Errorf("returned %v, Cloudflare holds %v, want %v", gotIPs, storedIPs, wantIPs)
			}
			if len(cf.Records(zone)) != len(wantIPs)+2 {
				t.Errorf("other records changed: %+v", cf.Records(zone))
			}
		})
	}
}

// TestSetRecordsCNAMEInPlace: a CNAME's new target is one PATCH, never a
// delete and create (which would leave the name without an answer).
func TestSetRecordsCNAMEInPlace(t *testing.T) {
	cf := startCF(t)
	old := cf.Seed(t, zone, map[string]any{"type": "CNAME", "name": "app", "content": "old.example.net"})
	d := startPlugin(t, configFor(t, cf, testToken))
	got, err := d.SetRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "app", Type: "CNAME", Value: "New.Example.net."}}})
	if err != nil {
		t.Fatal(err)
	}
	if calls := methods(writes(cf.Requests())); fmt.Sprint(calls) != "map[PATCH:1]" {
		t.Errorf("writes %v, want one PATCH", calls)
	}
	if len(got) != 1 || got[0].ID != old.ID || got[0].Value != "new.example.net" {
		t.Errorf("SetRecords returned %+v", got)
	}
	// Setting it again, spelled differently, changes nothing.
	cf.ResetRequests()
	if _, err := d.SetRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "app", Type: "CNAME", Value: "new.example.net"}}}); err != nil {
		t.Fatal(err)
	}
	if w := writes(cf.Requests()); len(w) != 0 {
		t.Errorf("%d writes for a CNAME already so", len(w))
	}
}

// TestDeleteMatching: an empty value, zero TTL or zero priority match
// any; what does not match stays.
func TestDeleteMatching(t *testing.T) {
	cf := startCF(t)
	for _, v := range []string{"one", "two"} {
		cf.Seed(t, zone, map[string]any{"type": "TXT", "name": "t", "content": v, "ttl": 120})
	}
	cf.Seed(t, zone, map[string]any{"type": "TXT", "name": "u", "content": "three", "ttl": 120})
	cf.Seed(t, zone, map[string]any{"type": "MX", "name": "@", "content": "mx1.example.com", "priority": 10})
	cf.Seed(t, zone, map[string]any{"type": "MX", "name": "@", "content": "mx2.example.com", "priority": 20})
	d := startPlugin(t, configFor(t, cf, testToken))
	del := func(r sdk.Record) []sdk.Record {
		t.Helper()
		out, err := d.DeleteRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{r}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := del(sdk.Record{Name: "t", Type: "TXT", Value: "one", TTL: time.Hour}); len(got) != 0 {
		t.Errorf("a TTL that differs matched: %+v", got)
	}
	if got := del(sdk.Record{Name: "@", Type: "MX", Priority: 20}); len(got) != 1 || got[0].Value != "mx2.example.com" {
		t.Errorf("delete MX priority 20: %+v", got)
	}
	if got := del(sdk.Record{Name: "t", Type: "txt"}); len(got) != 2 {
		t.Errorf("delete every TXT at t: %+v", got)
	}
	var left []string
	for _, r := range cf.Records(zone) {
		left = append(left, r.Name+" "+r.Type+" "+r.Content)
	}
	want := []string{"example.com MX mx1.example.com", "u.example.com TXT three"}
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// TestRecordTypes writes MX, SRV, CAA, AAAA and TXT records, checks the
// bodies Cloudflare received (priority, data objects, automatic TTL,
// proxied only where it applies) and reads them back unchanged.
func TestRecordTypes(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	in := []sdk.Record{
		{Name: "@", Type: "MX", Value: "mail.example.com.", Priority: 10, TTL: time.Hour},
		{Name: "_sip._tcp", Type: "SRV", Value: "5060 sip.example.com.", Priority: 10, Weight: 60, TTL: time.Hour},
		{Name: "@", Type: "CAA", Value: `0 issue "letsencrypt.org"`, TTL: time.Hour},
		{Name: "v6", Type: "AAAA", Value: "2001:DB8::1"},
		{Name: "txt", Type: "TXT", Value: `v=spf1 include:_spf.example.com ~all`, TTL: time.Hour},
	}
	added, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: in})
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]map[string]any{}
	for _, r := range cf.Requests() {
		if r.Method == "POST" {
			var b map[string]any
			if err := json.Unmarshal(r.Body, &b); err != nil {
				t.Fatal(err)
			}
			bodies[b["type"].(string)] = b
		}
	}
	if b := bodies["MX"]; b["priority"] != 10.0 || b["content"] != "mail.example.com" || b["name"] != "example.com" {
		t.Errorf("MX body %v", b)
	}
	if b := bodies["SRV"]; fmt.Sprint(b["data"]) != "map[port:5060 priority:10 target:sip.example.com weight:60]" || b["name"] != "_sip._tcp.example.com" {
		t.Errorf("SRV body %v", b)
	}
	if b := bodies["CAA"]; fmt.Sprint(b["data"]) != "map[flags:0 tag:issue value:letsencrypt.org]" {
		t.Errorf("CAA body %v", b)
	}
	if b := bodies["AAAA"]; b["ttl"] != 1.0 || b["proxied"] != false {
		t.Errorf("AAAA body %v: want ttl 1 (automatic) and proxied false", b)
	}
	if b := bodies["TXT"]; b["proxied"] != nil || b["ttl"] != 3600.0 {
		t.Errorf("TXT body %v: want no proxied and ttl 3600", b)
	}
	for i, r := range added {
		if !sameData(r, in[i]) || r.Name != in[i].Name || r.TTL != in[i].TTL {
			t.Errorf("added %+v, want %+v", r, in[i])
		}
	}
	for _, w := range in {
		got := get(t, d, w.Name, w.Type)
		if len(got) != 1 || !sameData(got[0], w) || got[0].TTL != w.TTL {
			t.Errorf("read back %s %s: %+v, want %+v", w.Name, w.Type, got, w)
		}
	}
	// Appending them again, spelled as Cloudflare spells them, is a no-op.
	cf.ResetRequests()
	if _, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: added}); err != nil {
		t.Fatal(err)
	}
	if w := writes(cf.Requests()); len(w) != 0 {
		t.Errorf("appending the records read back made %d writes", len(w))
	}
}

// TestProxiedConfigured: with proxied set, the A, AAAA and CNAME records
// Berth writes are proxied; other types never carry the field.
func TestProxiedConfigured(t *testing.T) {
	cf := startCF(t)
	cfg := configFor(t, cf, testToken)
	cfg.Proxied = true
	d := startPlugin(t, cfg)
	if _, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{
		{Name: "www", Type: "A", Value: "192.0.2.1"},
		{Name: "_acme-challenge.www", Type: "TXT", Value: "x"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range cf.Records(zone) {
		if r.Proxied != (r.Type == "A") {
			t.Errorf("%s %s proxied = %v", r.Type, r.Name, r.Proxied)
		}
	}
}

// TestEveryRequestAuthenticated: every request carries the bearer token
// in the Authorization header, and the fake saw no other token.
func TestEveryRequestAuthenticated(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	if _, err := d.SetRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT", Value: "x"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteRecords(ctx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "a", Type: "TXT"}}}); err != nil {
		t.Fatal(err)
	}
	reqs := cf.Requests()
	if len(reqs) < 4 {
		t.Fatalf("only %d requests", len(reqs))
	}
	for _, r := range reqs {
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
		}
		if r.Method != "GET" && r.Method != "DELETE" && r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q", r.Method, r.Path, r.Header.Get("Content-Type"))
		}
	}
}

// TestConcurrentAppendsOnePost: the same append made five times at once
// (a retry racing the first call) creates one record: changes to a zone
// are serialized inside the plugin.
func TestConcurrentAppendsOnePost(t *testing.T) {
	cf := startCF(t)
	d := startPlugin(t, configFor(t, cf, testToken))
	req := sdk.RecordsChange{IdempotencyKey: "acme-append-x", Zone: zone, Records: []sdk.Record{{Name: "_acme-challenge", Type: "TXT", Value: "tok"}}}
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := d.AppendRecords(ctx(t), req)
			errs <- err
		}()
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := methods(cf.Requests()); got["POST"] != 1 {
		t.Errorf("requests %v, want one POST", got)
	}
	if n := len(recordsNamed(cf, "_acme-challenge")); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}
