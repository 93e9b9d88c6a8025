package hostnames

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// memZone is an in-memory DNS provider for the reconciler's logic: the
// real plugins are tested against knot and a Cloudflare-protocol server
// in their modules, and the whole path in deploy/e2e/dns.
type memZone struct {
	mu    sync.Mutex
	zone  string
	recs  []sdk.Record
	down  error
	calls int // changes made
}

func (m *memZone) GetRecords(_ context.Context, zone string) ([]sdk.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return nil, m.down
	}
	if zone != m.zone {
		return nil, fmt.Errorf("zone %s: %w", zone, sdk.ErrNotFound)
	}
	return slices.Clone(m.recs), nil
}

func (m *memZone) AppendRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	m.recs = append(m.recs, req.Records...)
	return req.Records, nil
}

func (m *memZone) SetRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return nil, m.down
	}
	m.calls++
	for _, r := range req.Records {
		m.recs = slices.DeleteFunc(m.recs, func(x sdk.Record) bool { return x.Name == r.Name && x.Type == r.Type })
	}
	m.recs = append(m.recs, req.Records...)
	return req.Records, nil
}

func (m *memZone) DeleteRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return nil, m.down
	}
	m.calls++
	var out []sdk.Record
	for _, r := range req.Records {
		m.recs = slices.DeleteFunc(m.recs, func(x sdk.Record) bool {
			hit := x.Name == r.Name && x.Type == r.Type && (r.Value == "" || r.Value == x.Value)
			if hit {
				out = append(out, x)
			}
			return hit
		})
	}
	return out, nil
}

// get returns the values at name (relative) of typ, sorted.
func (m *memZone) get(name, typ string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		if r.Name == name && r.Type == typ {
			out = append(out, r.Value)
		}
	}
	slices.Sort(out)
	return out
}

func (m *memZone) edit(fn func([]sdk.Record) []sdk.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = fn(m.recs)
}

// clusterRecords is the clusters package's table, written here directly:
// the reconciler reads only which clusters are live.
var clusterRecords = store.NewTable[clusters.Record]("clusters")

type rig struct {
	db   *store.DB
	svc  *Service
	zone *memZone
	now  time.Time
}

func newRig(t *testing.T) *rig {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{db: db, zone: &memZone{zone: "example.com."}, now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	r.svc = New(Options{DB: db, Now: func() time.Time { return r.now },
		Provider: func(name string) (pluginclient.DNSProvider, error) {
			if name != "zone" {
				return nil, errors.New("no such plugin")
			}
			return r.zone, nil
		}})
	return r
}

func (r *rig) cluster(t *testing.T, name string, live bool) {
	t.Helper()
	status := clusters.StatusReady
	if !live {
		status = clusters.StatusDeleted
	}
	err := r.db.Update(func(tx *store.Tx) error {
		return clusterRecords.Put(tx, name, &clusters.Record{Name: name, Status: status, CreatedAt: r.now})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) settings(t *testing.T) {
	t.Helper()
	if _, err := r.svc.SaveSettings(Settings{BaseDomain: "apps.example.com", Zone: "example.com", Plugin: "zone", TargetHostname: "edge.example.net"}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) binding(t *testing.T, cluster, hostname string) *Binding {
	t.Helper()
	b, err := r.svc.Bind(cluster, hostname, "usr_1")
	if err != nil {
		t.Fatalf("bind %s to %s: %v", hostname, cluster, err)
	}
	return b
}

func (r *rig) get(t *testing.T, cluster string) ([]Binding, ClusterDNS) {
	t.Helper()
	bs, st, err := r.svc.Bindings(cluster)
	if err != nil {
		t.Fatal(err)
	}
	return bs, st
}

// The zone as Berth wants it: each cluster's name, platform-managed
// hostnames pointing at their cluster's, ownership records beside them;
// self-managed hostnames and records Berth does not own left alone; drift
// repaired; a deleted cluster's records removed.
func TestReconcileKeepsTheZone(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	foreign := []sdk.Record{
		{Name: "www", Type: "CNAME", Value: "elsewhere.example.net.", TTL: time.Hour},
		{Name: "c3.apps", Type: "A", Value: "198.51.100.7", TTL: time.Hour},
		{Name: "_berth.www", Type: "TXT", Value: ownership("someone-else", "cluster/www"), TTL: time.Hour},
	}
	r.zone.recs = slices.Clone(foreign)
	r.cluster(t, "c1", true)
	r.cluster(t, "c2", true)
	r.settings(t)
	shop := r.binding(t, "c1", "shop.apps.example.com")
	mine := r.binding(t, "c2", "www.customer.org")
	if shop.DNSScope != PlatformManaged || shop.DNSStatus != Pending || mine.DNSScope != SelfManaged || mine.DNSStatus != NotManaged {
		t.Fatalf("scopes when bound: %+v / %+v", shop, mine)
	}
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"c1.apps": "edge.example.net.", "c2.apps": "edge.example.net.", "shop.apps": "c1.apps.example.com."} {
		if got := r.zone.get(name, "CNAME"); !slices.Equal(got, []string{want}) {
			t.Errorf("%s CNAME = %v, want %s", name, got, want)
		}
		if got := r.zone.get("_berth."+name, "TXT"); len(got) != 1 || !ownedBy(got[0], DefaultOwnerID) {
			t.Errorf("%s's ownership record: %v", name, got)
		}
	}
	bs, st := r.get(t, "c1")
	if st.Status != Synced || st.IngressTarget != "c1.apps.example.com" || st.LastSyncedAt == nil || len(bs) != 1 || bs[0].DNSStatus != Synced || bs[0].DNSLastSyncedAt == nil {
		t.Errorf("c1 after the pass: %+v %+v", st, bs)
	}
	if bs, _ := r.get(t, "c2"); bs[0].DNSStatus != NotManaged || bs[0].Status != Pending {
		t.Errorf("the self-managed hostname: %+v", bs[0])
	}

	// A pass with nothing to do changes nothing.
	calls := r.zone.calls
	if err := r.svc.Pass(ctx); err != nil || r.zone.calls != calls {
		t.Errorf("an idle pass made %d changes (%v)", r.zone.calls-calls, err)
	}

	// Drift: the record deleted by hand, another changed by hand.
	r.zone.edit(func(recs []sdk.Record) []sdk.Record {
		recs = slices.DeleteFunc(recs, func(x sdk.Record) bool { return x.Name == "c1.apps" && x.Type == "CNAME" })
		for i := range recs {
			if recs[i].Name == "shop.apps" {
				recs[i].Value = "attacker.example.org."
			}
		}
		return recs
	})
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.zone.get("c1.apps", "CNAME"); !slices.Equal(got, []string{"edge.example.net."}) {
		t.Errorf("deleted by hand, after a pass: %v", got)
	}
	if got := r.zone.get("shop.apps", "CNAME"); !slices.Equal(got, []string{"c1.apps.example.com."}) {
		t.Errorf("changed by hand, after a pass: %v", got)
	}

	// A cluster whose name is taken by a record Berth does not own: an
	// error on that cluster, the record untouched.
	r.cluster(t, "c3", true)
	err := r.svc.Pass(ctx)
	if err == nil || !strings.Contains(err.Error(), "c3.apps.example.com") {
		t.Errorf("pass with a foreign record at c3's name: %v", err)
	}
	if got := r.zone.get("c3.apps", "A"); !slices.Equal(got, []string{"198.51.100.7"}) {
		t.Errorf("the foreign record at c3's name: %v", got)
	}
	if got := r.zone.get("_berth.c3.apps", "TXT"); len(got) != 0 {
		t.Errorf("Berth marked a name it does not own: %v", got)
	}
	if _, st := r.get(t, "c3"); st.Status != Error || !strings.Contains(st.Message, "not Berth's") || st.LastErrorAt == nil {
		t.Errorf("c3's state: %+v", st)
	}
	r.cluster(t, "c3", false)

	// c1 deleted: its records and its hostnames' go; its bindings too.
	r.cluster(t, "c1", false)
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c1.apps", "shop.apps", "_berth.c1.apps", "_berth.shop.apps"} {
		for _, typ := range []string{"CNAME", "TXT"} {
			if got := r.zone.get(name, typ); len(got) != 0 {
				t.Errorf("%s %s left after its cluster was deleted: %v", name, typ, got)
			}
		}
	}
	if bs, _ := r.get(t, "c1"); len(bs) != 0 {
		t.Errorf("bindings of a deleted cluster: %+v", bs)
	}
	for _, f := range foreign {
		if got := r.zone.get(f.Name, f.Type); !slices.Equal(got, []string{f.Value}) {
			t.Errorf("a record Berth does not own changed: %s %s = %v", f.Name, f.Type, got)
		}
	}
	if got := r.zone.get("c2.apps", "CNAME"); len(got) != 1 {
		t.Errorf("c2's record went with c1: %v", got)
	}
}

// The DNS server down during a pass: an error status with the message,
// dns.sync_failed once, nothing deleted; back up: synced and
// dns.recovered.
func TestReconcileThroughAnOutage(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.cluster(t, "c1", true)
	r.settings(t)
	r.binding(t, "c1", "shop.apps.example.com")
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	eventstest.Take(t, r.db)
	before := len(r.zone.recs)

	r.zone.down = fmt.Errorf("dns server 192.0.2.53:53: connection refused: %w", sdk.ErrRetryable)
	for range 2 {
		r.now = r.now.Add(time.Minute)
		if err := r.svc.Pass(ctx); err == nil {
			t.Fatal("a pass with the server down succeeded")
		}
	}
	bs, st := r.get(t, "c1")
	// Members see what failed in Berth's words, not the plugin's (which
	// names the server here); the administrators' event has it.
	if st.Status != Error || !strings.Contains(st.Message, "unavailable") || strings.Contains(st.Message, "192.0.2.53") || bs[0].DNSStatus != Error || bs[0].DNSLastError == "" {
		t.Errorf("during the outage: %+v %+v", st, bs[0])
	}
	got := eventstest.Take(t, r.db)
	if len(got) != 1 || got[0].Type != events.DNSSyncFailed || !strings.Contains(got[0].Data["error"], "connection refused") {
		t.Errorf("events during the outage: %+v", got)
	}

	r.zone.down = nil
	r.now = r.now.Add(time.Minute)
	if err := r.svc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if len(r.zone.recs) != before {
		t.Errorf("the zone has %d records after the outage, %d before", len(r.zone.recs), before)
	}
	bs, st = r.get(t, "c1")
	if st.Status != Synced || bs[0].DNSStatus != Synced || !bs[0].DNSLastSyncedAt.After(*bs[0].DNSLastErrorAt) {
		t.Errorf("after the outage: %+v %+v", st, bs[0])
	}
	got = eventstest.Take(t, r.db)
	if len(got) != 1 || got[0].Type != events.DNSRecovered || got[0].Data["down_for"] != "2m0s" {
		t.Errorf("events after the outage: %+v", got)
	}
}

// Turning managed DNS off (an empty base domain) leaves every hostname
// self-managed; records are removed (they are Berth's and nobody wants
// them) only while it is on — off, Berth does not touch the zone.
func TestHostnamesWithoutABaseDomain(t *testing.T) {
	r := newRig(t)
	r.cluster(t, "c1", true)
	b := r.binding(t, "c1", "shop.example.org")
	if b.DNSScope != SelfManaged || b.DNSStatus != NotManaged {
		t.Errorf("without a base domain: %+v", b)
	}
	if err := r.svc.Pass(context.Background()); err != nil || r.zone.calls != 0 {
		t.Errorf("a pass with DNS off: %v, %d changes", err, r.zone.calls)
	}
	if _, st := r.get(t, "c1"); st.Status != NotManaged || st.IngressTarget != "" {
		t.Errorf("cluster state with DNS off: %+v", st)
	}
}

func TestRetryWait(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second}, {7, 5 * time.Minute}, {100, 5 * time.Minute}} {
		if got := retryWait(tc.n, 5*time.Second, 5*time.Minute); got != tc.want {
			t.Errorf("retryWait(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}
