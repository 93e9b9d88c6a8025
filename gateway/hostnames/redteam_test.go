package hostnames

// Red-team tests of managed DNS: what a member (admin of one cluster) can
// make Berth do to other tenants' names, to records Berth does not own,
// and to the cost of every pass; what hostile or changed settings do.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// hookZone is a memZone that runs a function before it answers
// GetRecords (a change made while a pass runs) and counts reads.
type hookZone struct {
	*memZone
	before func()
	reads  atomic.Int64
}

func (h *hookZone) GetRecords(ctx context.Context, zone string) ([]sdk.Record, error) {
	h.reads.Add(1)
	if h.before != nil {
		h.before()
	}
	return h.memZone.GetRecords(ctx, zone)
}

// failZone is a memZone whose changes fail with err (reads work).
type failZone struct {
	*memZone
	err error
}

func (f *failZone) SetRecords(context.Context, sdk.RecordsChange) ([]sdk.Record, error) {
	return nil, f.err
}

// plugins points the rig's service at zones by plugin name.
func (r *rig) plugins(zones map[string]pluginclient.DNSProvider) {
	r.svc.opts.Provider = func(name string) (pluginclient.DNSProvider, error) {
		if z, ok := zones[name]; ok {
			return z, nil
		}
		return nil, errors.New("no such plugin")
	}
}

// recreate deletes cluster and registers it again under the same name
// (as clusters.claimName lets a new cluster take a deleted one's name),
// with no reconciler pass in between.
func (r *rig) recreate(t *testing.T, name string) {
	t.Helper()
	r.cluster(t, name, false)
	r.now = r.now.Add(time.Second)
	err := r.db.Update(func(tx *store.Tx) error {
		if err := clusterRecords.Delete(tx, name); err != nil {
			return err
		}
		return clusterRecords.Put(tx, name, &clusters.Record{Name: name, Status: clusters.StatusReady, CreatedAt: r.now})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fakeResolver answers DNS questions from answer and counts them.
func fakeResolver(t *testing.T, answer func(q dns.Question) []dns.RR) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		n.Add(1)
		out := new(dns.Msg)
		out.SetReply(m)
		out.Answer = answer(m.Question[0])
		if len(out.Answer) == 0 {
			out.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(out)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), &n
}

// silentResolver reads questions and never answers.
func silentResolver(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

var base = Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net"}

// ---- Hijack -------------------------------------------------------------

// A member may not bind a name that takes traffic meant for another
// tenant or for Berth itself, whatever its spelling and whichever name was
// bound first.
func TestRedteamHijackRefused(t *testing.T) {
	a := newAPI(t)
	a.svc.opts.Reserved = []string{"berth.example.com"}
	if status, _ := a.do(t, "PUT", "/api/v1/dns/settings", a.admin, base); status != http.StatusOK {
		t.Fatal(status)
	}
	for _, h := range []string{"shop.example.org", "a.deep.example.org", "*.wild.example.org", "tenant.apps.example.com"} {
		if status, out := a.do(t, "POST", "/api/v1/clusters/c2/hostnames", a.other, map[string]string{"hostname": h}); status != http.StatusCreated {
			t.Fatalf("other binds %s: %d %v", h, status, out)
		}
	}
	before := a.count(t)
	for _, tc := range []struct{ why, hostname string }{
		{"the target hostname (the edge)", "edge.example.net"},
		{"the target hostname, spelled loudly", "EDGE.example.net."},
		{"a wildcard over the target hostname", "*.example.net"},
		{"Berth's own public hostname", "berth.example.com"},
		{"a wildcard over Berth's own hostname", "*.example.com"},
		{"the parent of another tenant's name, bound after it", "deep.example.org"},
		{"the parent of another tenant's wildcard", "wild.example.org"},
		{"under another tenant's wildcard", "x.wild.example.org"},
		{"a wildcard under another tenant's wildcard", "*.x.wild.example.org"},
		{"under another tenant's platform name", "x.tenant.apps.example.com"},
		{"another tenant's name, with a trailing dot and capitals", "SHOP.Example.ORG."},
		{"an ownership record's name", "_berth.tenant.apps.example.com"},
		{"a wildcard's ownership record's name", "_berth-wildcard.wild.example.org"},
		{"an ACME challenge", "_acme-challenge.apps.example.com"},
		{"an ACME challenge under one's own name", "_acme-challenge.c1.apps.example.com"},
		{"unicode", "shöp.example.org"},
		{"a fullwidth dot", "shop\uff0eexample.org"},
		{"the zone apex", "example.com"},
		{"a wildcard over the base domain", "*.apps.example.com"},
		{"a wildcard over the zone", "*.example.com"},
		{"a name in another's cluster's name", "*.c2.apps.example.com"},
	} {
		status, out := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": tc.hostname})
		if status != http.StatusBadRequest && status != http.StatusConflict {
			t.Errorf("%s (%q): %d %v, want a refusal", tc.why, tc.hostname, status, out)
		}
	}
	if n := a.count(t); n != before {
		t.Errorf("refusals stored %d bindings", n-before)
	}
	// The Kelvin sign lowers to an ASCII k: the name is checked and
	// stored in the form it takes, so it is just another name.
	if status, out := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.owner, map[string]string{"hostname": "\u212Aube.example.org"}); status != http.StatusBadRequest && out["hostname"] != "kube.example.org" {
		t.Errorf("a Kelvin sign: %d %v", status, out)
	}
	// Settings may not make a bound hostname the edge's own.
	if status, _ := a.do(t, "PUT", "/api/v1/dns/settings", a.admin, Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "shop.example.org"}); status != http.StatusConflict {
		t.Errorf("a target_hostname another tenant has bound: %d, want 409", status)
	}
}

// A hostname bound before the cluster whose name holds it existed does
// not take that cluster's traffic once it does: the cluster's own name is
// its own, names under it are not written for another cluster.
func TestRedteamNamesOfAClusterCreatedLater(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.cluster(t, "c1", true)
	r.settings(t)
	r.binding(t, "c1", "c9.apps.example.com")
	r.binding(t, "c1", "x.c9.apps.example.com")
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	r.cluster(t, "c9", true)
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.zone.get("c9.apps", "CNAME"); !slices.Equal(got, []string{"edge.example.net."}) {
		t.Errorf("c9's own name: %v", got)
	}
	if got := r.zone.get("x.c9.apps", "CNAME"); len(got) != 0 {
		t.Errorf("a name under c9's points at another cluster: %v", got)
	}
	if got := r.zone.get("_berth.c9.apps", "TXT"); len(got) != 1 || !strings.Contains(got[0], "cluster/c9") {
		t.Errorf("c9's ownership record: %v", got)
	}
	bs, _ := r.get(t, "c1")
	for _, b := range bs {
		if b.DNSStatus != Error || !strings.Contains(b.DNSMessage, "c9") {
			t.Errorf("%s after c9 appeared: %s %q", b.Hostname, b.DNSStatus, b.DNSMessage)
		}
	}
}

// A cluster deleted and created again under the same name (by someone
// else) before a pass does not inherit the old cluster's hostnames: not
// in its list, not written to the zone, and free to bind.
func TestRedteamStaleBindingsDoNotResurrect(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.cluster(t, "c1", true)
	r.cluster(t, "c2", true)
	r.settings(t)
	r.binding(t, "c1", "shop.apps.example.com")
	r.binding(t, "c1", "www.customer.org")
	r.recreate(t, "c1")
	if bs, _ := r.get(t, "c1"); len(bs) != 0 {
		t.Errorf("the new c1 lists the old one's hostnames: %+v", bs)
	}
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.zone.get("shop.apps", "CNAME"); len(got) != 0 {
		t.Errorf("the old c1's hostname points at the new c1: %v", got)
	}
	r.recreate(t, "c1")
	if _, err := r.svc.Bind("c2", "www.customer.org", "usr_2"); err != nil {
		t.Errorf("a hostname of a deleted cluster is still taken: %v", err)
	}
	if _, err := r.svc.Unbind("c1", "www.customer.org"); err == nil {
		t.Error("the new c1 unbound c2's hostname")
	}
}

// ---- Ownership ----------------------------------------------------------

// An ownership record of another Berth (or anything Berth did not write)
// at _berth.<name> is never overwritten, even when the name itself is
// empty (the other Berth marked it and has not written it yet, or its
// record was deleted by hand).
func TestRedteamForeignOwnershipRecordKept(t *testing.T) {
	r := newRig(t)
	theirs := sdk.Record{Name: "_berth.c1.apps", Type: "TXT", Value: ownership("other-berth", "cluster/c1"), TTL: time.Hour}
	other := sdk.Record{Name: "_berth.shop.apps", Type: "TXT", Value: "\"some note\"", TTL: time.Hour}
	r.zone.recs = []sdk.Record{theirs, other}
	r.cluster(t, "c1", true)
	r.settings(t)
	r.binding(t, "c1", "shop.apps.example.com")
	r.svc.Pass(context.Background())
	if got := r.zone.get("_berth.c1.apps", "TXT"); !slices.Equal(got, []string{theirs.Value}) {
		t.Errorf("another Berth's ownership record: %v", got)
	}
	if got := r.zone.get("c1.apps", "CNAME"); len(got) != 0 {
		t.Errorf("Berth wrote a name another Berth owns: %v", got)
	}
	if got := r.zone.get("_berth.shop.apps", "TXT"); !slices.Equal(got, []string{other.Value}) {
		t.Errorf("a TXT Berth did not write at an ownership name: %v", got)
	}
	if _, st := r.get(t, "c1"); st.Status != Error {
		t.Errorf("c1's state: %+v", st)
	}
}

// Two Berths with their own owner ids share a zone: each keeps its
// names, neither touches the other's, and once settled neither changes
// anything, even where they want the same name.
func TestRedteamTwoBerthsShareAZone(t *testing.T) {
	zone := &memZone{zone: "example.com."}
	mk := func(owner, baseDomain string) *rig {
		r := newRig(t)
		r.zone = zone
		r.plugins(map[string]pluginclient.DNSProvider{"zone": zone})
		r.cluster(t, "c1", true)
		if _, err := r.svc.SaveSettings(Settings{BaseDomain: baseDomain, Zone: "example.com", Plugin: "zone", TargetHostname: "edge-" + owner + ".example.net", OwnerID: owner}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := mk("east", "apps.example.com"), mk("west", "apps.example.com")
	a.cluster(t, "only-east", true)
	b.cluster(t, "only-west", true)
	ctx := context.Background()
	for range 3 {
		a.svc.Pass(ctx)
		b.svc.Pass(ctx)
	}
	calls := zone.calls
	a.svc.Pass(ctx)
	b.svc.Pass(ctx)
	if zone.calls != calls {
		t.Errorf("two settled Berths made %d changes", zone.calls-calls)
	}
	if got := zone.get("c1.apps", "CNAME"); !slices.Equal(got, []string{"edge-east.example.net."}) {
		t.Errorf("the name both want: %v (the first to write it keeps it)", got)
	}
	if _, st := b.get(t, "c1"); st.Status != Error {
		t.Errorf("the second Berth's c1: %+v", st)
	}
	for name, want := range map[string]string{"only-east.apps": "edge-east.example.net.", "only-west.apps": "edge-west.example.net."} {
		if got := zone.get(name, "CNAME"); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: %v", name, got)
		}
	}
	// West's cluster goes: east's records stay.
	b.cluster(t, "only-west", false)
	b.svc.Pass(ctx)
	if got := zone.get("only-east.apps", "CNAME"); len(got) != 1 {
		t.Errorf("east's record went with west's cluster: %v", got)
	}
}

// ---- Settings changes ---------------------------------------------------

// Changing the base domain, the zone, the plugin or the owner id: the
// records Berth owned under the old settings are removed (nothing else),
// the new ones written; with the owner id changed, Berth does not find
// its own old records in the way.
func TestRedteamSettingsChangeLeavesNoOrphans(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		next Settings
	}{
		{"another base domain in the zone", Settings{BaseDomain: "svc.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net"}},
		{"another zone", Settings{BaseDomain: "apps.example.org", Zone: "example.org", Plugin: "zone2", TargetHostname: "edge.example.net"}},
		{"another owner id", Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net", OwnerID: "berth-prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			zone2 := &memZone{zone: "example.org."}
			r.plugins(map[string]pluginclient.DNSProvider{"zone": r.zone, "zone2": zone2})
			foreign := sdk.Record{Name: "www", Type: "CNAME", Value: "elsewhere.example.net.", TTL: time.Hour}
			r.zone.recs = []sdk.Record{foreign}
			r.cluster(t, "c1", true)
			r.settings(t)
			r.binding(t, "c1", "shop.apps.example.com")
			if err := r.svc.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := r.svc.SaveSettings(tc.next); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := r.svc.Pass(ctx); err != nil {
					t.Errorf("pass after the change: %v", err)
				}
			}
			var left []string
			for _, rec := range r.zone.recs {
				if strings.Contains(rec.Name, "apps") && tc.next.BaseDomain != "apps.example.com" || strings.Contains(rec.Value, "berth/owner="+DefaultOwnerID+",") && tc.next.OwnerID != "" {
					left = append(left, rec.Name+" "+rec.Type)
				}
			}
			if len(left) > 0 {
				t.Errorf("records of the old settings left in the zone: %v", left)
			}
			if got := r.zone.get("www", "CNAME"); !slices.Equal(got, []string{foreign.Value}) {
				t.Errorf("a foreign record: %v", got)
			}
			target := "c1." + tc.next.BaseDomain
			if _, st := r.get(t, "c1"); st.Status != Synced || st.IngressTarget != target {
				t.Errorf("c1 under the new settings: %+v", st)
			}
		})
	}
}

// Hostile settings: what is refused, and what is accepted on purpose.
func TestRedteamHostileSettings(t *testing.T) {
	r := newRig(t)
	r.cluster(t, "c1", true)
	for _, bad := range []Settings{
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", Resolver: "1.1.1.1:http"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", Resolver: "1.1.1.1:0"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", Resolver: "1.1.1.1:99999"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", OwnerID: "a,heritage=berth"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", OwnerID: "Berth"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", TTL: 1},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "edge.example.net", TTL: -5},
		{BaseDomain: "apps.example.com", Zone: "example.org", Plugin: "zone", TargetHostname: "edge.example.net"},
		{BaseDomain: "apps.example.com", Zone: "com", Plugin: "zone", TargetHostname: "edge.example.net"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetHostname: "c1.apps.example.com"},
		{BaseDomain: "apps.example.com", Plugin: "zone", TargetAddresses: []string{"224.0.0.1"}},
		{BaseDomain: "_berth.example.com", Plugin: "zone", TargetHostname: "edge.example.net"},
	} {
		if _, err := r.svc.SaveSettings(bad); err == nil {
			t.Errorf("settings %+v accepted", bad)
		}
	}
	if s, _ := r.svc.Settings(); s.Enabled() {
		t.Errorf("refused settings stored: %+v", s)
	}
	// Accepted on purpose: the settings are an administrator's, and the
	// resolver only ever gets DNS questions (see TestRedteamResolverIsAnOracle).
	ok := Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net", Resolver: "169.254.169.254:53"}
	if _, err := r.svc.SaveSettings(ok); err != nil {
		t.Errorf("a link-local resolver: %v", err)
	}
}

// ---- Cost ---------------------------------------------------------------

// A resolver that does not answer: every pass finds the same, so every
// pass writes nothing (the message names no ephemeral port).
func TestRedteamResolverTimeoutsWriteOnce(t *testing.T) {
	r := newRig(t)
	r.svc.opts.QueryTimeout = 50 * time.Millisecond
	r.cluster(t, "c1", true)
	set := base
	set.Resolver = silentResolver(t)
	if _, err := r.svc.SaveSettings(set); err != nil {
		t.Fatal(err)
	}
	r.binding(t, "c1", "www.customer.org")
	ctx := context.Background()
	r.svc.Pass(ctx)
	bs, _ := r.get(t, "c1")
	first := bs[0]
	for range 2 {
		r.now = r.now.Add(time.Minute)
		r.svc.Pass(ctx)
	}
	bs, _ = r.get(t, "c1")
	if !bs[0].UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("a pass that found the same wrote the binding again: %q then %q", first.LastError, bs[0].LastError)
	}
	if bs[0].Status != Pending || bs[0].LastError == "" {
		t.Errorf("the binding: %+v", bs[0])
	}
}

// One pass costs one zone read, no change and no store write when
// nothing changed, and a bounded number of questions per hostname (the
// target's addresses asked once a pass, not once a hostname).
func TestRedteamCostOfAPass(t *testing.T) {
	r := newRig(t)
	hz := &hookZone{memZone: r.zone}
	r.plugins(map[string]pluginclient.DNSProvider{"zone": hz})
	addr, queries := fakeResolver(t, func(q dns.Question) []dns.RR {
		if q.Qtype != dns.TypeA {
			return nil
		}
		rr, _ := dns.NewRR(q.Name + " 60 IN A 192.0.2.80") // every name, flattened
		return []dns.RR{rr}
	})
	r.cluster(t, "c1", true)
	set := base
	set.Resolver = addr
	if _, err := r.svc.SaveSettings(set); err != nil {
		t.Fatal(err)
	}
	const n = MaxPerCluster
	for i := range n {
		r.binding(t, "c1", fmt.Sprintf("h%d.customer.org", i))
	}
	ctx := context.Background()
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	bs, _ := r.get(t, "c1")
	if bs[0].Status != Ready {
		t.Fatalf("a flattened hostname: %+v", bs[0])
	}
	queries.Store(0)
	hz.reads.Store(0)
	calls := r.zone.calls
	r.now = r.now.Add(time.Minute)
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := queries.Load(); got > 3*n+2 {
		t.Errorf("a pass asked the resolver %d questions for %d hostnames (want at most %d)", got, n, 3*n+2)
	}
	if hz.reads.Load() != 1 || r.zone.calls != calls {
		t.Errorf("an idle pass read the zone %d times and made %d changes", hz.reads.Load(), r.zone.calls-calls)
	}
	after, _ := r.get(t, "c1")
	for i := range after {
		if !after[i].UpdatedAt.Equal(bs[i].UpdatedAt) {
			t.Errorf("an idle pass wrote %s", after[i].Hostname)
			break
		}
	}
}

// One member's hostname that collides with a record Berth does not own is
// that hostname's error: not a failed pass for the whole fleet (no
// dns.sync_failed to the administrators, no backing off of everyone's
// passes), and the foreign record stays.
func TestRedteamOneMembersConflictIsNotTheFleets(t *testing.T) {
	r := newRig(t)
	r.zone.recs = []sdk.Record{{Name: "www.apps", Type: "A", Value: "198.51.100.7", TTL: time.Hour}}
	r.cluster(t, "c1", true)
	r.settings(t)
	r.binding(t, "c1", "www.apps.example.com")
	if err := r.svc.Pass(context.Background()); err != nil {
		t.Errorf("a pass with one member's conflicting hostname failed: %v", err)
	}
	if got := eventstest.Take(t, r.db); len(got) != 0 {
		t.Errorf("events: %+v", got)
	}
	bs, st := r.get(t, "c1")
	if bs[0].DNSStatus != Error || !strings.Contains(bs[0].DNSMessage, "not Berth's") || st.Status != Synced {
		t.Errorf("after the pass: %+v %+v", bs[0], st)
	}
	if got := r.zone.get("www.apps", "A"); !slices.Equal(got, []string{"198.51.100.7"}) {
		t.Errorf("the foreign record: %v", got)
	}
}

// A plugin's error text may carry what members must not see (a TSIG key
// echoed, a token in a URL): members' status fields say what failed in
// Berth's words; the administrators' event keeps the plugin's.
func TestRedteamPluginErrorsNotShownToMembers(t *testing.T) {
	r := newRig(t)
	const secret = "c2VjcmV0LXRzaWcta2V5"
	fz := &failZone{memZone: r.zone, err: fmt.Errorf("update refused: tsig hmac-sha256:berth-key:%s rejected: %w", secret, sdk.ErrRetryable)}
	r.plugins(map[string]pluginclient.DNSProvider{"zone": fz})
	r.cluster(t, "c1", true)
	r.settings(t)
	r.binding(t, "c1", "shop.apps.example.com")
	if err := r.svc.Pass(context.Background()); err == nil {
		t.Fatal("a pass whose writes fail succeeded")
	}
	bs, st := r.get(t, "c1")
	for _, s := range []string{st.Message, st.LastError, bs[0].DNSMessage, bs[0].DNSLastError} {
		if strings.Contains(s, secret) {
			t.Errorf("a member-visible field has the plugin's text: %q", s)
		}
	}
	if st.Status != Error || st.Message == "" || bs[0].DNSStatus != Error {
		t.Errorf("states: %+v %+v", st, bs[0])
	}
	if got := eventstest.Take(t, r.db); len(got) != 1 || !strings.Contains(got[0].Data["error"], "update refused") {
		t.Errorf("the administrators' event: %+v", got)
	}
}

// Status texts are cut to one line of bounded length, and stay valid
// UTF-8 when cut.
func TestRedteamLongMessagesCut(t *testing.T) {
	msg := firstLine(errors.New(strings.Repeat("é", 400)))
	if !utf8.ValidString(msg) || len(msg) > 310 {
		t.Errorf("cut message: %d bytes, valid %v", len(msg), utf8.ValidString(msg))
	}
	if msg := firstLine(errors.New("one\ntwo")); msg != "one" {
		t.Errorf("two lines: %q", msg)
	}
}

// The resolver is asked about any name a member binds, and the answer
// shows in the member's status: with an internal resolver, members could
// read internal names' addresses. Private answers are not shown.
func TestRedteamResolverIsAnOracle(t *testing.T) {
	addr, _ := fakeResolver(t, func(q dns.Question) []dns.RR {
		if q.Qtype != dns.TypeA || q.Name != "db.corp.example.org." {
			return nil
		}
		rr, _ := dns.NewRR(q.Name + " 60 IN A 10.20.30.40")
		return []dns.RR{rr}
	})
	r := newRig(t)
	set := base
	set.Resolver = addr
	res := r.svc.resolve(context.Background(), set, "db.corp.example.org", "c1.apps.example.com", nil)
	if res.status != Error || strings.Contains(res.message, "10.20.30.40") {
		t.Errorf("an internal answer: %s %q", res.status, res.message)
	}
}

// ---- Concurrency --------------------------------------------------------

// A hostname unbound while a pass runs: that pass may still write it, the
// next removes it, and nothing writes it again.
func TestRedteamUnbindDuringAPass(t *testing.T) {
	r := newRig(t)
	hz := &hookZone{memZone: r.zone}
	r.plugins(map[string]pluginclient.DNSProvider{"zone": hz})
	r.cluster(t, "c1", true)
	r.settings(t)
	r.binding(t, "c1", "shop.apps.example.com")
	var once sync.Once
	hz.before = func() {
		once.Do(func() {
			if _, err := r.svc.Unbind("c1", "shop.apps.example.com"); err != nil {
				t.Error(err)
			}
		})
	}
	ctx := context.Background()
	r.svc.Pass(ctx)
	for range 2 {
		if err := r.svc.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if got := r.zone.get("shop.apps", "CNAME"); len(got) != 0 {
			t.Errorf("an unbound hostname's record after a later pass: %v", got)
		}
		if got := r.zone.get("_berth.shop.apps", "TXT"); len(got) != 0 {
			t.Errorf("an unbound hostname's ownership record: %v", got)
		}
	}
	if bs, _ := r.get(t, "c1"); len(bs) != 0 {
		t.Errorf("bindings: %+v", bs)
	}
}

// Binds and unbinds racing passes (go test -race): the zone ends as the
// bindings say.
func TestRedteamBindRacesPasses(t *testing.T) {
	r := newRig(t)
	r.cluster(t, "c1", true)
	r.settings(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 20 {
			h := fmt.Sprintf("h%d.apps.example.com", i)
			if _, err := r.svc.Bind("c1", h, "usr_1"); err != nil {
				t.Error(err)
			}
			if i%2 == 0 {
				if _, err := r.svc.Unbind("c1", h); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			r.svc.Pass(ctx)
		}
	}()
	wg.Wait()
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		got := r.zone.get(fmt.Sprintf("h%d.apps", i), "CNAME")
		if want := i%2 == 1; (len(got) == 1) != want {
			t.Errorf("h%d: %v, want a record: %v", i, got, want)
		}
	}
}

// ---- Auth ---------------------------------------------------------------

// Who may bind: not without a sign-in, not a viewer, not a scoped key (a
// kubeconfig's), not a stranger; refusals are audited like binds.
func TestRedteamWhoMayBind(t *testing.T) {
	a := newAPI(t)
	a.do(t, "PUT", "/api/v1/dns/settings", a.admin, base)
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", "", map[string]string{"hostname": "anon.example.org"}); status != http.StatusUnauthorized {
		t.Errorf("unauthenticated: %d", status)
	}
	owner := &identity.Principal{UserID: a.userID(t, "owner"), Username: "owner", Permissions: []string{identity.PermClustersRead}}
	for _, scopes := range [][]string{{"cluster:c1"}, {identity.PermClustersRead}} {
		_, key, err := a.env.IDs.CreateAPIKey(context.Background(), owner, identity.NewAPIKey{Name: "k-" + scopes[0], Scopes: scopes}, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", key, map[string]string{"hostname": "key.example.org"}); status != http.StatusForbidden {
			t.Errorf("a key scoped to %v binds: %d", scopes, status)
		}
	}
	if status, _ := a.do(t, "POST", "/api/v1/clusters/c1/hostnames", a.viewer, map[string]string{"hostname": "v.example.org"}); status != http.StatusForbidden {
		t.Errorf("a viewer binds: %d", status)
	}
	if status, _ := a.do(t, "GET", "/api/v1/dns/settings", a.owner, nil); status != http.StatusForbidden {
		t.Errorf("a member reads the DNS settings: %d", status)
	}
	if a.count(t) != 0 {
		t.Error("a refused caller bound a hostname")
	}
	if !a.env.HasEventOn(t, "hostname", "dns.hostname.bind", "failure") {
		t.Error("refused binds are not audited")
	}
}

// userID is the id of a user newAPI made.
func (a *api) userID(t *testing.T, username string) string {
	t.Helper()
	u, err := a.env.IDs.UserByName(username)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// A zone that fails every other pass (a flaky DNS server) does not send
// two events a pass: after a recovery, failures are told again only
// once flapWindow has passed, and a failure that was not told has no
// recovery to tell.
func TestRedteamFlappingZoneDoesNotFlood(t *testing.T) {
	r := newRig(t)
	r.cluster(t, "c1", true)
	r.settings(t)
	ctx := context.Background()
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 120 { // an hour of 30 s passes
		r.now = r.now.Add(30 * time.Second)
		r.zone.mu.Lock()
		r.zone.down = nil
		if i%2 == 0 {
			r.zone.down = fmt.Errorf("flaky: %w", sdk.ErrRetryable)
		}
		r.zone.mu.Unlock()
		r.svc.Pass(ctx)
	}
	got := eventstest.Take(t, r.db)
	if max := 2 * int(time.Hour/flapWindow+1); len(got) > max {
		t.Errorf("an hour of a flapping zone sent %d events, want at most %d", len(got), max)
	}
	// A failure that lasts is told, however soon after a recovery.
	r.zone.down = fmt.Errorf("down: %w", sdk.ErrRetryable)
	for range int(flapWindow/(30*time.Second)) + 1 {
		r.now = r.now.Add(30 * time.Second)
		r.svc.Pass(ctx)
	}
	if got := eventstest.Take(t, r.db); len(got) == 0 || got[len(got)-1].Type != "dns.sync_failed" {
		t.Errorf("a lasting failure: %+v", got)
	}
}

// Retiring former settings' records: turning managed DNS off leaves the
// zone alone (and on again as before removes nothing); on again
// elsewhere removes them; a former plugin Berth no longer runs is given
// up, with the records left, and does not fail every pass.
func TestRedteamRetiredSettings(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	zone2 := &memZone{zone: "example.org."}
	plugins := map[string]pluginclient.DNSProvider{"zone": r.zone, "zone2": zone2}
	r.plugins(plugins)
	r.cluster(t, "c1", true)
	r.settings(t)
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	n := len(r.zone.recs)
	if _, err := r.svc.SaveSettings(Settings{}); err != nil {
		t.Fatal(err)
	}
	r.svc.Pass(ctx)
	if len(r.zone.recs) != n {
		t.Errorf("managed DNS off changed the zone: %d records, %d before", len(r.zone.recs), n)
	}
	r.settings(t)
	calls := r.zone.calls
	if err := r.svc.Pass(ctx); err != nil || r.zone.calls != calls {
		t.Errorf("on again as before: %v, %d changes", err, r.zone.calls-calls)
	}
	r.svc.SaveSettings(Settings{})
	other := Settings{BaseDomain: "apps.example.org", Zone: "example.org", Plugin: "zone2", TargetHostname: "edge.example.net"}
	if _, err := r.svc.SaveSettings(other); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if len(r.zone.recs) != 0 || len(zone2.get("c1.apps", "CNAME")) != 1 {
		t.Errorf("off, then on elsewhere: old zone %v, new zone %v", r.zone.recs, zone2.recs)
	}
	// Back to the first zone, then the second zone's plugin goes away.
	r.settings(t)
	delete(plugins, "zone2")
	for range 2 {
		if err := r.svc.Pass(ctx); err != nil {
			t.Errorf("a pass with a former plugin gone: %v", err)
		}
	}
	if len(zone2.recs) == 0 {
		t.Error("a plugin Berth no longer runs changed its zone")
	}
	var left []retired
	r.db.View(func(tx *store.Tx) (err error) { left, err = readRetired(tx); return err })
	if len(left) != 0 {
		t.Errorf("retired settings kept: %+v", left)
	}
}
