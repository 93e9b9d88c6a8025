package nodes

import (
	"errors"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/store"
)

// Observations notify the transitions of nodes once each: joins, a ready
// node going not ready or offline, and coming back. The first observation
// of a cluster and an unchanged one notify nothing.
func TestHistoryEmitsTransitions(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	steps := []struct {
		name  string
		nodes []map[string]any
		want  []string // type/node[/reason]
	}{
		{"first look", []map[string]any{node("a", "1", "True")}, nil},
		{"unchanged", []map[string]any{node("a", "1", "True")}, nil},
		{"joins not ready", []map[string]any{node("a", "1", "True"), node("b", "2", "False")}, []string{"node.joined/b"}},
		{"becomes ready", []map[string]any{node("a", "1", "True"), node("b", "2", "True")}, []string{"node.ready/b"}},
		{"goes offline", []map[string]any{node("a", "1", "Unknown"), node("b", "2", "True")}, []string{"node.not_ready/a/RUnknown"}},
		{"offline again", []map[string]any{node("a", "1", "Unknown"), node("b", "2", "True")}, nil},
		{"offline to not ready", []map[string]any{node("a", "1", "False"), node("b", "2", "True")}, nil},
		{"back", []map[string]any{node("a", "1", "True"), node("b", "2", "False")}, []string{"node.ready/a", "node.not_ready/b/RFalse"}},
		{"replaced", []map[string]any{node("a", "9", "True"), node("b", "2", "False")}, []string{"node.joined/a"}},
		{"deleted", []map[string]any{node("b", "2", "False")}, nil},
	}
	for _, st := range steps {
		fc.set("edge", st.nodes...)
		c.Advance(time.Minute)
		if _, err := h.ObserveCluster("edge"); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []string
		for _, e := range eventstest.Take(t, db) {
			s := e.Type + "/" + e.Data["node"]
			if e.Data["reason"] != "" {
				s += "/" + e.Data["reason"]
			}
			got = append(got, s)
			if e.Cluster != "edge" || e.Actor != events.SystemActor || !e.Time.Equal(c.Now()) || e.Summary == "" {
				t.Errorf("%s: event %+v", st.name, e)
			}
		}
		if len(got) != len(st.want) {
			t.Fatalf("%s: events %q, want %q", st.name, got, st.want)
		}
		for i := range got {
			if got[i] != st.want[i] {
				t.Fatalf("%s: events %q, want %q", st.name, got, st.want)
			}
		}
	}
}

// An observer that compared with a state another has replaced since
// records nothing and notifies nothing: the transition is the other's.
func TestHistoryStaleObservationEmitsNothing(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	fc.set("edge", node("a", "1", "True"))
	if _, err := h.ObserveCluster("edge"); err != nil {
		t.Fatal(err)
	}
	var prev *observation
	if err := db.View(func(tx *store.Tx) (err error) { prev, err = nodeObservations.Get(tx, "edge"); return err }); err != nil {
		t.Fatal(err)
	}
	// Another replica observes the node going down first.
	fc.set("edge", node("a", "1", "False"))
	c.Advance(time.Minute)
	if _, err := NewHistory(db, fc, HistoryOptions{Now: c.Now}).ObserveCluster("edge"); err != nil {
		t.Fatal(err)
	}
	if got := eventstest.Take(t, db); len(got) != 1 || got[0].Type != events.NodeNotReady {
		t.Fatalf("the first observer: %+v", got)
	}
	// This one still holds the old state and would report it again.
	c.Advance(time.Minute)
	obs := &observation{Cluster: "edge", Nodes: map[string]nodeState{"a": {UID: "1", Ready: "False"}}, ObservedAt: c.Now()}
	err := h.write("edge", nil, []notice{{typ: events.NodeNotReady, node: "a", reason: "RFalse"}}, prev, obs)
	if !errors.Is(err, errStale) {
		t.Fatalf("write over a newer state: %v", err)
	}
	if got := eventstest.Take(t, db); len(got) != 0 {
		t.Fatalf("a stale observation notified %+v", got)
	}
}
