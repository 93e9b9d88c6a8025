package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/berthgw/berth/gateway/store"
)

func TestDiff(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	ready := func(uid string) snapshot {
		return snapshot{nodeState: nodeState{UID: uid, Ready: "True"}, Reason: "KubeletReady", Message: "kubelet is posting ready status", Transition: at}
	}
	cases := []struct {
		name string
		prev map[string]nodeState
		cur  map[string]snapshot
		want []string // node/kind[/reason]
	}{
		{name: "nothing", want: nil},
		{name: "unchanged", prev: map[string]nodeState{"a": {UID: "1", Ready: "True"}}, cur: map[string]snapshot{"a": ready("1")}, want: nil},
		{name: "new node without a kubelet yet", cur: map[string]snapshot{"a": {nodeState: nodeState{UID: "1"}}}, want: []string{"a/joined"}},
		{name: "new ready node", cur: map[string]snapshot{"a": ready("1")}, want: []string{"a/joined", "a/ready/KubeletReady"}},
		{name: "became ready", prev: map[string]nodeState{"a": {UID: "1", Ready: "False"}}, cur: map[string]snapshot{"a": ready("1")}, want: []string{"a/ready/KubeletReady"}},
		{name: "first condition", prev: map[string]nodeState{"a": {UID: "1"}}, cur: map[string]snapshot{"a": {nodeState: nodeState{UID: "1", Ready: "False"}, Reason: "KubeletNotReady"}}, want: []string{"a/not_ready/KubeletNotReady"}},
		{name: "kubelet stopped", prev: map[string]nodeState{"a": {UID: "1", Ready: "True"}}, cur: map[string]snapshot{"a": {nodeState: nodeState{UID: "1", Ready: "Unknown"}, Reason: "NodeStatusUnknown"}}, want: []string{"a/offline/NodeStatusUnknown"}},
		{name: "condition removed reports nothing", prev: map[string]nodeState{"a": {UID: "1", Ready: "True"}}, cur: map[string]snapshot{"a": {nodeState: nodeState{UID: "1"}}}, want: nil},
		{name: "deleted", prev: map[string]nodeState{"a": {UID: "1", Ready: "True"}}, want: []string{"a/deleted"}},
		{name: "replaced under the same name", prev: map[string]nodeState{"a": {UID: "1", Ready: "True"}}, cur: map[string]snapshot{"a": ready("2")},
			want: []string{"a/deleted/Replaced", "a/joined", "a/ready/KubeletReady"}},
		{name: "several, by name", prev: map[string]nodeState{"b": {UID: "b", Ready: "True"}, "d": {UID: "d", Ready: "True"}},
			cur:  map[string]snapshot{"c": ready("c"), "a": {nodeState: nodeState{UID: "a", Ready: "False"}}, "d": ready("d")},
			want: []string{"a/joined", "a/not_ready", "b/deleted", "c/joined", "c/ready/KubeletReady"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range diff(tc.prev, tc.cur) {
				s := e.Node + "/" + e.Kind
				if e.Reason != "" {
					s += "/" + e.Reason
				}
				got = append(got, s)
				if e.Kind == EventReady && (e.TransitionTime == nil || !e.TransitionTime.Equal(at) || e.TransitionTime.Location() != time.UTC || e.Message == "") {
					t.Errorf("ready event lost the condition's time or message: %+v", e)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("diff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadinessKind(t *testing.T) {
	for status, want := range map[string]string{"True": EventReady, "False": EventNotReady, "Unknown": EventOffline, "": "", "true": ""} {
		if got := readinessKind(status); got != want {
			t.Errorf("readinessKind(%q) = %q, want %q", status, got, want)
		}
	}
}

// fakeCluster answers node lists the way kube-apiserver does, paged by
// limit and continue, for the observer's store and retention logic. The
// real apiserver is exercised by the gateway's end-to-end test.
type fakeCluster struct {
	mu       sync.Mutex
	clusters map[string][]map[string]any // cluster -> nodes
	status   int
	requests []string
}

func (f *fakeCluster) set(cluster string, nodes ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clusters[cluster] = nodes
}

func (f *fakeCluster) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.clusters {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (f *fakeCluster) SystemGet(cluster, path string) (int, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, path)
	if f.status != 0 {
		return f.status, []byte(`{"kind":"Status","message":"nodes is forbidden: User \"gw\" cannot list resource \"nodes\""}`), nil
	}
	nodes, ok := f.clusters[cluster]
	if !ok {
		return 0, nil, errors.New("no such cluster")
	}
	u, err := url.Parse(path)
	if err != nil || u.Path != "/api/v1/nodes" {
		return 404, nil, nil
	}
	var limit, from int
	fmt.Sscan(u.Query().Get("limit"), &limit)
	fmt.Sscan(u.Query().Get("continue"), &from)
	to := min(len(nodes), from+limit)
	list := map[string]any{"kind": "NodeList", "metadata": map[string]any{}, "items": nodes[from:to]}
	if to < len(nodes) {
		list["metadata"] = map[string]any{"continue": fmt.Sprint(to)}
	}
	b, _ := json.Marshal(list)
	return 200, b, nil
}

func node(name, uid, ready string) map[string]any {
	n := map[string]any{"metadata": map[string]any{"name": name, "uid": uid}}
	if ready != "" {
		n["status"] = map[string]any{"conditions": []any{
			map[string]any{"type": "MemoryPressure", "status": "False"},
			map[string]any{"type": "Ready", "status": ready, "reason": "R" + ready, "message": "m", "lastTransitionTime": "2025-03-01T12:00:00Z"},
		}}
	}
	return n
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T, c *clock) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func kinds(t *testing.T, h *History, cluster string) []string {
	t.Helper()
	items, total, err := h.Events(EventQuery{Cluster: cluster, Page: 1, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if total != len(items) {
		t.Fatalf("total %d, %d items", total, len(items))
	}
	var out []string
	for i := len(items) - 1; i >= 0; i-- { // oldest first, for reading
		out = append(out, items[i].Node+"/"+items[i].Kind)
	}
	return out
}

func TestHistoryRecordsAndSurvivesRestart(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})

	// More nodes than one list page: every page is read.
	var many []map[string]any
	for i := range listPage + 5 {
		many = append(many, node(fmt.Sprintf("n%03d", i), fmt.Sprint(i), "True"))
	}
	fc.set("big", many...)
	evs, err := h.ObserveCluster("big")
	if err != nil || len(evs) != 2*(listPage+5) {
		t.Fatalf("first observation of %d nodes: %d events, %v", listPage+5, len(evs), err)
	}
	if !strings.Contains(fc.requests[1], "continue=") {
		t.Errorf("second page not asked with continue: %q", fc.requests)
	}

	fc.set("edge", node("a", "1", ""))
	h.ObserveCluster("edge")
	fc.set("edge", node("a", "1", "False"))
	h.ObserveCluster("edge")
	fc.set("edge", node("a", "1", "True"), node("b", "2", "True"))
	h.ObserveCluster("edge")
	if evs, _ := h.ObserveCluster("edge"); len(evs) != 0 {
		t.Errorf("an unchanged cluster recorded %v", evs)
	}
	fc.set("edge", node("b", "2", "Unknown"))
	h.ObserveCluster("edge")
	want := []string{"a/joined", "a/not_ready", "a/ready", "b/joined", "b/ready", "a/deleted", "b/offline"}
	if got := kinds(t, h, "edge"); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	page, total, _ := h.Events(EventQuery{Cluster: "edge", Node: "b", Page: 1, PageSize: 1})
	if total != 3 || len(page) != 1 || page[0].Kind != EventOffline || page[0].Reason != "RUnknown" || page[0].Cluster != "edge" || !page[0].Time.Equal(c.Now()) {
		t.Errorf("node b, newest first, page 1 of 1: %d %+v", total, page)
	}
	if _, total, _ := h.Events(EventQuery{Cluster: "edge", Kind: EventJoined, Page: 1, PageSize: 10}); total != 2 {
		t.Errorf("joined events: %d", total)
	}

	// A new observer over the same store (a restarted gateway) compares
	// with the stored state: nothing is announced again.
	h2 := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	if evs, err := h2.ObserveCluster("edge"); err != nil || len(evs) != 0 {
		t.Errorf("after restart: %v %v", evs, err)
	}
	if evs, _ := h2.ObserveCluster("big"); len(evs) != 0 {
		t.Errorf("after restart, big: %d events", len(evs))
	}
}

func TestHistoryRetention(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now, MaxEventsPerCluster: 3})

	// At most MaxEventsPerCluster per cluster: the oldest go.
	for _, st := range []string{"True", "False", "True", "Unknown", "True"} {
		fc.set("edge", node("a", "1", st))
		h.ObserveCluster("edge")
	}
	if got, want := kinds(t, h, "edge"), []string{"a/ready", "a/offline", "a/ready"}; !slices.Equal(got, want) {
		t.Errorf("after trimming: %q, want %q", got, want)
	}
	// Events older than EventRetention are gone.
	c.Advance(EventRetention + time.Hour)
	if got := kinds(t, h, "edge"); len(got) != 0 {
		t.Errorf("after the retention period: %q", got)
	}
	// The state itself does not expire: a later change is still a change,
	// not a new join.
	fc.set("edge", node("a", "1", "False"))
	if evs, _ := h.ObserveCluster("edge"); len(evs) != 1 || evs[0].Kind != EventNotReady {
		t.Errorf("after retention: %+v", evs)
	}
}

func TestHistoryObserveAll(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	fc.set("one", node("a", "1", "True"))
	fc.set("two", node("b", "2", "True"))
	h.ObserveAll(context.Background())
	if len(kinds(t, h, "one")) != 2 || len(kinds(t, h, "two")) != 2 {
		t.Fatalf("observe all: %q %q", kinds(t, h, "one"), kinds(t, h, "two"))
	}
	// A cluster no longer registered loses its state and history; if it
	// comes back it starts afresh.
	fc.mu.Lock()
	delete(fc.clusters, "two")
	fc.mu.Unlock()
	h.ObserveAll(context.Background())
	if got := kinds(t, h, "two"); len(got) != 0 {
		t.Errorf("history of a removed cluster: %q", got)
	}
	fc.set("two", node("b", "2", "True"))
	h.ObserveAll(context.Background())
	if got := kinds(t, h, "two"); !slices.Equal(got, []string{"b/joined", "b/ready"}) {
		t.Errorf("re-registered cluster: %q", got)
	}
	if got := kinds(t, h, "one"); len(got) != 2 {
		t.Errorf("other cluster touched: %q", got)
	}
}

func TestHistoryRefusedList(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{"edge": {node("a", "1", "True")}}, status: 403}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	_, err := h.ObserveCluster("edge")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "berth-rbac.yaml") {
		t.Errorf("403 from the cluster: %v", err)
	}
	if got := kinds(t, h, "edge"); len(got) != 0 {
		t.Errorf("a refused list recorded %q", got)
	}
	// Once allowed, the node is seen for the first time.
	fc.status = 0
	if evs, err := h.ObserveCluster("edge"); err != nil || len(evs) != 2 {
		t.Errorf("after the refusal: %v %v", evs, err)
	}
	if _, _, err := h.Events(EventQuery{Cluster: "edge"}); err == nil {
		t.Error("page 0 accepted")
	}
}

// Run returns when its context ends, and an observation whose context
// ended leaves the remaining clusters alone, so shutdown (or a replica
// losing the lead) does not wait on them.
func TestHistoryStopsWithItsContext(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	db := openStore(t, c)
	fc := &fakeCluster{clusters: map[string][]map[string]any{"edge": {node("a", "1", "True")}}}
	h := NewHistory(db, fc, HistoryOptions{Now: c.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	cancel()
	<-done
	fc.mu.Lock()
	before := len(fc.requests)
	fc.mu.Unlock()
	h.ObserveAll(ctx)
	if len(fc.requests) != before {
		t.Errorf("a stopped observer listed nodes: %q", fc.requests[before:])
	}
}
