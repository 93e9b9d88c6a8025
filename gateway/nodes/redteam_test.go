package nodes

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// A zone outage turns many nodes NotReady between two observations (or a
// hostile cluster reports many at once). On etcd, whose transactions
// carry at most max-txn-ops writes, recording that observation and its
// notifications must still succeed; before, it failed on every interval
// for good, so the outage was neither in the history nor notified.
func TestManyTransitionsAtOnceOnEtcd(t *testing.T) {
	ec := etcdenv.ForTest(t, 1)
	c := &clock{t: time.Now().UTC()}
	db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: ec.Endpoints()}, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fc := &fakeCluster{clusters: map[string][]map[string]any{}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	set := func(n int, ready string) {
		var nodes []map[string]any
		for i := range n {
			nodes = append(nodes, node(fmt.Sprintf("n%03d", i), fmt.Sprint(i), ready))
		}
		fc.set("edge", nodes...)
	}
	set(150, "True")
	if _, err := h.ObserveCluster("edge"); err != nil {
		t.Fatalf("first observation of 150 nodes: %v", err)
	}
	c.Advance(time.Minute)
	set(150, "False")
	if _, err := h.ObserveCluster("edge"); err != nil {
		t.Fatalf("150 nodes going not ready: %v", err)
	}
	var got []events.Event
	if err := db.View(func(tx *store.Tx) (err error) { got, err = events.Pending(tx, 1000); return err }); err != nil {
		t.Fatal(err)
	}
	if len(got) != maxNotices || !strings.Contains(got[len(got)-1].Summary, "130 more node changes") {
		t.Errorf("%d notifications for 150 nodes going not ready, want %d, the last saying how many more", len(got), maxNotices)
	}
	if k := kinds(t, h, "edge"); len(k) != 450 {
		t.Errorf("%d node events recorded, want 450 (joined, ready, not ready)", len(k))
	}
}
