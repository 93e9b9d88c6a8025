package clusters

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/operations"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/proxy"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// eventService is a Service on an in-memory store whose service and store
// share clock, with provisioning enabled under quota.
func eventService(t *testing.T, clock *fakeClock, quota Quota) (*Service, *store.DB) {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	box, _ := secretbox.New(make([]byte, 32))
	lc := Lifecycle{
		Operations:  operations.NewService(db, operations.Options{Clock: clock.Now}),
		Provisioner: func(string) (pluginclient.Provisioner, error) { return nil, nil },
		Quota:       quota,
	}
	s, err := NewService(db, box, proxy.NewPool(proxy.PoolOptions{}), nil, nil, slog.New(slog.DiscardHandler),
		Options{Now: clock.Now, Lifecycle: lc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, db
}

// takeEvents returns the outbox's events and empties it, so each step of
// a test sees only what it caused.
func one(t *testing.T, db *store.DB, typ string) events.Event {
	t.Helper()
	got := eventstest.Take(t, db)
	if len(got) != 1 || got[0].Type != typ {
		t.Fatalf("want one %s, got %+v", typ, got)
	}
	return got[0]
}

func none(t *testing.T, db *store.DB) {
	t.Helper()
	if got := eventstest.Take(t, db); len(got) != 0 {
		t.Fatalf("want no event, got %+v", got)
	}
}

// start is now, not a fixed date: Badger expires TTL records by the real
// clock, whatever the store's.
var start = time.Now().UTC().Truncate(time.Second)

func TestRegisterAndDeleteEmit(t *testing.T) {
	clock := &fakeClock{t: start}
	s, db := eventService(t, clock, Quota{})
	api := newAPIServer(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, admin, api.spec("prod", "tok"), audit.Event{}); err != nil {
		t.Fatal(err)
	}
	e := one(t, db, events.ClusterRegistered)
	if e.Actor != admin.UserID || e.Cluster != "prod" || e.Data["source"] != "registered" || !e.Time.Equal(start) || e.Summary == "" {
		t.Errorf("event %+v", e)
	}
	// A refused registration rolls back, its event with it.
	if _, err := s.Register(ctx, admin, api.spec("prod", "tok"), audit.Event{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second registration: %v", err)
	}
	none(t, db)

	if _, err := s.Delete(ctx, admin, "prod", audit.Event{}); err != nil {
		t.Fatal(err)
	}
	e = one(t, db, events.ClusterDeleted)
	if e.Actor != admin.UserID || e.Cluster != "prod" {
		t.Errorf("event %+v", e)
	}
	if _, err := s.Delete(ctx, admin, "prod", audit.Event{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	none(t, db)
}

// Probes report the transitions between reachable and unreachable, once
// each; a probe that sees what the last one saw reports nothing.
func TestProbeTransitions(t *testing.T) {
	clock := &fakeClock{t: start}
	s, db := eventService(t, clock, Quota{})
	live := newAPIServer(t).spec("edge", "tok")
	dead := Spec{Name: "edge", Conn: &Connection{Server: "https://127.0.0.1:1", Token: "tok", CAData: live.Conn.CAData}}
	ctx := context.Background()
	if _, err := s.Register(ctx, admin, live, audit.Event{}); err != nil {
		t.Fatal(err)
	}
	eventstest.Take(t, db)
	steps := []struct {
		name string
		spec *Spec // a new connection before the probe, or nil
		want string
		data map[string]string
	}{
		// The stand-in answers /version without a version: an error, but
		// an answer, so the cluster is reachable.
		{"answers", nil, "", nil},
		{"goes down", &dead, events.ClusterUnreachable, nil},
		{"still down", nil, "", nil},
		{"comes back", &live, events.ClusterRecovered, map[string]string{"down_for": "10m0s"}},
		{"still up", nil, "", nil},
	}
	for _, st := range steps {
		if st.spec != nil {
			if _, err := s.Update(ctx, *st.spec, audit.Event{}); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(5 * time.Minute)
		s.probe("edge")
		got := eventstest.Take(t, db)
		if st.want == "" {
			if len(got) != 0 {
				t.Fatalf("%s: want no event, got %+v", st.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Type != st.want || got[0].Cluster != "edge" || got[0].Actor != events.SystemActor {
			t.Fatalf("%s: want one %s, got %+v", st.name, st.want, got)
		}
		for k, v := range st.data {
			if got[0].Data[k] != v {
				t.Errorf("%s: %s = %q, want %q", st.name, k, got[0].Data[k], v)
			}
		}
		if st.want == events.ClusterUnreachable && got[0].Data["error"] == "" {
			t.Errorf("%s: no error in %+v", st.name, got[0])
		}
	}
}

// A provisioned cluster is reported registered when its create operation
// succeeds and deleted when its delete operation does, in the transaction
// that settles the operation.
func TestProvisionedClusterEmits(t *testing.T) {
	clock := &fakeClock{t: start}
	s, db := eventService(t, clock, Quota{})
	ann := &identity.Principal{UserID: "usr_ann", Username: "ann", Permissions: []string{identity.PermClustersWrite}}
	op, err := s.Provision(context.Background(), ann, ProvisionSpec{Name: "lab", Provisioner: "local"}, audit.Event{})
	if err != nil {
		t.Fatal(err)
	}
	none(t, db) // asked for, not there yet
	settle := func(typ operations.Type, status operations.Status, fail bool) error {
		o := *op
		o.Type, o.Status = typ, status
		return db.Update(func(tx *store.Tx) error {
			if err := s.Executor().Settle(tx, &o); err != nil {
				return err
			}
			if fail {
				return errors.New("the operation's end was not recorded")
			}
			return nil
		})
	}
	if err := settle(operations.Create, operations.Succeeded, true); err == nil {
		t.Fatal("rolled back")
	}
	none(t, db)
	if err := settle(operations.Create, operations.Succeeded, false); err != nil {
		t.Fatal(err)
	}
	e := one(t, db, events.ClusterRegistered)
	if e.Actor != "usr_ann" || e.Cluster != "lab" || e.Data["source"] != "provisioned" {
		t.Errorf("event %+v", e)
	}
	if err := settle(operations.Delete, operations.Failed, false); err != nil {
		t.Fatal(err)
	}
	none(t, db)
	if err := settle(operations.Delete, operations.Succeeded, false); err != nil {
		t.Fatal(err)
	}
	if e := one(t, db, events.ClusterDeleted); e.Actor != "usr_ann" || e.Cluster != "lab" {
		t.Errorf("event %+v", e)
	}
}

// A refusal for quota is reported once per user per hour, however often
// the user asks.
func TestQuotaExceededIsBounded(t *testing.T) {
	clock := &fakeClock{t: start}
	s, db := eventService(t, clock, Quota{MaxClusters: 1})
	ann := &identity.Principal{UserID: "usr_ann", Username: "ann", Permissions: []string{identity.PermClustersWrite}}
	bob := &identity.Principal{UserID: "usr_bob", Username: "bob", Permissions: []string{identity.PermClustersWrite}}
	provision := func(p *identity.Principal, name string) error {
		_, err := s.Provision(context.Background(), p, ProvisionSpec{Name: name, Provisioner: "local"}, audit.Event{})
		return err
	}
	for _, p := range []*identity.Principal{ann, bob} {
		if err := provision(p, p.Username+"-1"); err != nil {
			t.Fatal(err)
		}
	}
	none(t, db)
	steps := []struct {
		name    string
		who     *identity.Principal
		advance time.Duration
		emits   bool
	}{
		{"first refusal", ann, 0, true},
		{"again at once", ann, 0, false},
		{"again within the hour", ann, 59 * time.Minute, false},
		{"another user", bob, 0, true},
		{"an hour later", ann, time.Minute, true},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		err := provision(st.who, st.who.Username+"-x"+string(rune('a'+i)))
		if !fault.Is(err, fault.QuotaExceeded) {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := eventstest.Take(t, db)
		if !st.emits {
			if len(got) != 0 {
				t.Fatalf("%s: want no event, got %+v", st.name, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("%s: want one event, got %+v", st.name, got)
		}
		e := got[0]
		if e.Type != events.QuotaExceeded || e.Actor != st.who.UserID || e.Recipient != st.who.UserID ||
			e.Data["user"] != st.who.UserID || e.Data["quota"] != "clusters" || e.Data["limit"] != "1" || e.Data["want"] != "2" {
			t.Errorf("%s: event %+v", st.name, e)
		}
	}
}

// connection, which the proxy asks on every request, agrees with Get: a
// cluster being provisioned is found but not connected, with its status
// for the proxy's 503; an unknown one is not found.
func TestActingConnectedAgreesWithGet(t *testing.T) {
	clock := &fakeClock{t: start}
	s, _ := eventService(t, clock, Quota{})
	ann := &identity.Principal{UserID: "usr_ann", Username: "ann", Permissions: []string{identity.PermAll}}
	if _, err := s.Provision(context.Background(), ann, ProvisionSpec{Name: "lab", Provisioner: "local"}, audit.Event{}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get("lab")
	if err != nil {
		t.Fatal(err)
	}
	acting, err := s.actAs(ann, "lab", ActAs{}, Origin{})
	if err != nil {
		t.Fatal(err)
	}
	connected, status := acting.Connected()
	if connected || status != rec.LifecycleStatus() || status == "" {
		t.Errorf("a cluster being provisioned: connected %v, status %q; Get's status %q", connected, status, rec.LifecycleStatus())
	}
	if _, err := s.actAs(ann, "nope", ActAs{}, Origin{}); !fault.Is(err, fault.NotFound) {
		t.Errorf("an unknown cluster: %v, want NotFound", err)
	}
}
