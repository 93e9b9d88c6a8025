package events

import (
	"errors"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type thing struct{ Name string }

var things = store.NewTable[thing]("events_test_things")

func pending(t *testing.T, db *store.DB) []Event {
	t.Helper()
	var out []Event
	if err := db.View(func(tx *store.Tx) (err error) { out, err = Pending(tx, 100); return err }); err != nil {
		t.Fatal(err)
	}
	return out
}

// The event commits exactly when the change it reports does.
func TestEmitCommitsWithTheChange(t *testing.T) {
	db := openDB(t)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	failed := errors.New("the change failed")
	err := db.Update(func(tx *store.Tx) error {
		if err := things.Insert(tx, "a", &thing{"a"}); err != nil {
			return err
		}
		if err := Emit(tx, Event{Type: ClusterRegistered, Time: at, Cluster: "a"}); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("update: %v", err)
	}
	if got := pending(t, db); len(got) != 0 {
		t.Fatalf("a rolled-back change left events %+v", got)
	}
	err = db.Update(func(tx *store.Tx) error {
		if err := things.Insert(tx, "b", &thing{"b"}); err != nil {
			return err
		}
		return Emit(tx, Event{Type: ClusterRegistered, Time: at, Cluster: "b", Actor: "usr_1", Summary: "b registered"})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := pending(t, db)
	if len(got) != 1 {
		t.Fatalf("want one event, got %+v", got)
	}
	e := got[0]
	if e.ID == "" || e.Version != 1 || e.Severity != Info || e.Cluster != "b" || e.Actor != "usr_1" || !e.Time.Equal(at) {
		t.Errorf("event %+v lacks what Emit fills in", e)
	}
	if err := db.Update(func(tx *store.Tx) error { return Done(tx, e.ID) }); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, db); len(got) != 0 {
		t.Errorf("done event still pending: %+v", got)
	}
}

func TestEmitRefuses(t *testing.T) {
	db := openDB(t)
	for _, tc := range []struct {
		name string
		e    Event
	}{
		{"unknown type", Event{Type: "cluster.exploded", Time: time.Now()}},
		{"no time", Event{Type: ClusterDeleted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := db.Update(func(tx *store.Tx) error { return Emit(tx, tc.e) })
			if err == nil {
				t.Fatal("emitted")
			}
		})
	}
	if got := pending(t, db); len(got) != 0 {
		t.Errorf("refused events were stored: %+v", got)
	}
}

func TestEmitDefaults(t *testing.T) {
	db := openDB(t)
	err := db.Update(func(tx *store.Tx) error {
		return Emit(tx, Event{Type: OperationFailed, Time: time.Now(), Severity: Critical})
	})
	if err != nil {
		t.Fatal(err)
	}
	e := pending(t, db)[0]
	if e.Severity != Critical || e.Actor != SystemActor {
		t.Errorf("severity %q actor %q: the emitter's severity wins, the actor defaults to system", e.Severity, e.Actor)
	}
}

func TestCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, ty := range Types() {
		if seen[ty.Name] {
			t.Errorf("%s twice", ty.Name)
		}
		seen[ty.Name] = true
		if ty.Version < 1 || ty.Severity.Rank() < 0 || ty.Doc == "" {
			t.Errorf("%s: version %d, severity %q, doc %q", ty.Name, ty.Version, ty.Severity, ty.Doc)
		}
	}
	if _, err := ParseSeverity("loud"); err == nil {
		t.Error("severity loud accepted")
	}
	if Warning.Rank() <= Info.Rank() || Critical.Rank() <= Error.Rank() {
		t.Error("severities out of order")
	}
}
