package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/berthgw/berth/gateway/kubestatus"
	"github.com/berthgw/berth/gateway/store"
)

// Node event kinds, recorded when Berth observes a change.
const (
	// EventJoined: a node Berth had not seen before (or a new Node object
	// under a known name).
	EventJoined = "joined"
	// EventReady: the Ready condition became True.
	EventReady = "ready"
	// EventNotReady: the Ready condition became False; the kubelet reports
	// a problem.
	EventNotReady = "not_ready"
	// EventOffline: the Ready condition became Unknown; the kubelet stopped
	// reporting and the node controller gave up on it.
	EventOffline = "offline"
	// EventDeleted: the Node object is gone.
	EventDeleted = "deleted"
)

// EventKinds lists every kind, in lifecycle order.
var EventKinds = []string{EventJoined, EventReady, EventNotReady, EventOffline, EventDeleted}

// Retention of the node history. Whichever bound is hit first drops the
// oldest events, so a flapping node cannot grow the store without limit.
const (
	EventRetention             = 30 * 24 * time.Hour
	DefaultMaxEventsPerCluster = 5000
)

// Event is one change Berth observed in a cluster's nodes.
type Event struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	Kind    string `json:"kind"`
	// Reason and Message are the Ready condition's, for readiness events.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Time is when Berth observed the change; TransitionTime is when the
	// cluster says the Ready condition changed (readiness events only).
	Time           time.Time  `json:"time"`
	TransitionTime *time.Time `json:"transition_time,omitempty"`
}

// nodeState is what Berth remembers of one node between observations.
type nodeState struct {
	UID string `json:"uid"`
	// Ready is the Ready condition's status: True, False, Unknown, or ""
	// while the node has no such condition (no kubelet has reported yet).
	Ready string `json:"ready"`
}

// observation is the last state Berth saw of one cluster's nodes. It is
// stored so a restarted gateway compares against it instead of announcing
// every node as joined again.
type observation struct {
	Cluster    string               `json:"cluster"`
	Nodes      map[string]nodeState `json:"nodes"`
	ObservedAt time.Time            `json:"observed_at"`
}

var (
	nodeEvents = store.NewTable("node_events",
		store.Index[Event]{Name: "cluster", Values: func(e *Event) []string { return []string{e.Cluster} }},
	).WithExpiry(func(e *Event) time.Time { return e.Time.Add(EventRetention) })
	nodeObservations = store.NewTable[observation]("node_observations")
)

// SystemReader reads clusters as the gateway itself; the cluster registry
// implements it.
type SystemReader interface {
	// Names lists the registered clusters.
	Names() []string
	// SystemGet reads path from a cluster with the gateway's own
	// credential, without impersonation.
	SystemGet(cluster, path string) (int, []byte, error)
}

// HistoryOptions configure a History.
type HistoryOptions struct {
	// Interval between observations of every cluster (the proxy's probe
	// interval); zero means 30 s.
	Interval time.Duration
	// MaxEventsPerCluster bounds each cluster's history; zero means
	// DefaultMaxEventsPerCluster.
	MaxEventsPerCluster int
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// History observes every cluster's nodes as the gateway and records their
// lifecycle events.
type History struct {
	db   *store.DB
	src  SystemReader
	opts HistoryOptions
	log  *slog.Logger

	// mu serialises observations, so the ticker and an explicit
	// ObserveCluster never diff against the same old state twice.
	mu      sync.Mutex
	lastErr map[string]string // per cluster, to log a failure once, not every interval
}

// NewHistory makes the observer; Run runs it.
func NewHistory(db *store.DB, src SystemReader, opts HistoryOptions) *History {
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if opts.MaxEventsPerCluster <= 0 {
		opts.MaxEventsPerCluster = DefaultMaxEventsPerCluster
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &History{db: db, src: src, opts: opts, log: log, lastErr: map[string]string{}}
}

// Run observes every cluster now and then every interval until ctx ends.
// On replicas it runs on the one that leads (see gateway/components.go).
func (h *History) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		h.ObserveAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ObserveAll observes every registered cluster, then forgets the state and
// history of clusters that are no longer registered. A cluster that cannot
// be read is logged (once per distinct failure) and tried again next time.
func (h *History) ObserveAll(ctx context.Context) {
	names := h.src.Names()
	for _, n := range names {
		if ctx.Err() != nil {
			// Shutting down: do not keep the gateway waiting on the
			// remaining clusters (each may take a request timeout).
			return
		}
		_, _ = h.ObserveCluster(n) // failures are logged by noteResult
	}
	if err := h.forgetExcept(names); err != nil {
		h.log.Warn("forget node history of removed clusters", "err", err)
	}
}

// ObserveCluster lists cluster's nodes as the gateway, compares them with
// the last observation, and records what changed. It returns the events it
// recorded, oldest first.
func (h *History) ObserveCluster(cluster string) ([]Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, err := h.listNodes(cluster)
	h.noteResult(cluster, err)
	if err != nil {
		return nil, err
	}
	var prev *observation
	err = h.db.View(func(tx *store.Tx) error {
		var err error
		prev, err = nodeObservations.Get(tx, cluster)
		return err
	})
	first := errors.Is(err, store.ErrNotFound)
	if first {
		prev, err = &observation{Cluster: cluster}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node history of %s: %w", cluster, err)
	}
	events := diff(prev.Nodes, cur)
	next := make(map[string]nodeState, len(cur))
	for name, s := range cur {
		next[name] = s.nodeState
	}
	if len(events) == 0 && maps.Equal(prev.Nodes, next) {
		return nil, nil
	}
	now := h.opts.Now().UTC()
	for i := range events {
		events[i].ID, events[i].Cluster, events[i].Time = store.NewID("nev"), cluster, now
	}
	var notes []notice
	if !first {
		// The first observation of a cluster finds its nodes, it does not
		// see them join: the history records them, nobody is notified.
		notes = capNotices(notices(prev.Nodes, events))
	}
	err = h.write(cluster, events, notes, prev, &observation{Cluster: cluster, Nodes: next, ObservedAt: now})
	if errors.Is(err, errStale) {
		// Another observer recorded a newer state meanwhile; the next
		// observation compares with that one.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node history of %s: %w", cluster, err)
	}
	return events, nil
}

// writeBatch bounds the events written in one transaction, well inside
// Badger's transaction size for the store's small memtables.
const writeBatch = 500

// batch is how many events one transaction writes or deletes: writeBatch,
// or fewer on etcd, whose transactions carry at most max-txn-ops writes.
// An event is about four (its record, its index entry, their
// generations); half of a transaction is left for the observation and
// its notifications (at most maxNotices).
func (h *History) batch() int { return min(writeBatch, h.db.RecordsPerTxn(8)) }

// write stores events and then the new state. The usual handful of events
// and the state commit together; a burst larger than one batch (the first
// observation of a big cluster) is split, with the state in the last
// transaction, so a crash in between repeats events rather than losing them.
// The notifications go into the outbox in that last transaction, which
// stores the state only while it is still prev (errStale otherwise): a
// transition is reported by the one observer that recorded it.
func (h *History) write(cluster string, events []Event, notes []notice, prev, obs *observation) error {
	batch := h.batch()
	for start := 0; ; start += batch {
		end := min(start+batch, len(events))
		last := end == len(events)
		err := h.db.Update(func(tx *store.Tx) error {
			for i := start; i < end; i++ {
				if err := nodeEvents.Insert(tx, events[i].ID, &events[i]); err != nil {
					return err
				}
			}
			if !last {
				return nil
			}
			stored, err := nodeObservations.Get(tx, cluster)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if !prev.ObservedAt.IsZero() {
					return errStale // forgotten meanwhile: the cluster went away
				}
			case err != nil:
				return err
			case !stored.ObservedAt.Equal(prev.ObservedAt):
				return errStale
			}
			if err := nodeObservations.Put(tx, cluster, obs); err != nil {
				return err
			}
			return h.emit(tx, cluster, obs.ObservedAt, notes)
		})
		if err != nil {
			return fmt.Errorf("record node events: %w", err)
		}
		if last {
			break
		}
	}
	if len(events) == 0 {
		return nil
	}
	return h.trim(cluster)
}

// trim drops a cluster's oldest events beyond MaxEventsPerCluster.
func (h *History) trim(cluster string) error {
	ids, err := h.eventIDs(cluster)
	if err != nil {
		return err
	}
	return h.deleteEvents(ids[:max(0, len(ids)-h.opts.MaxEventsPerCluster)])
}

// eventIDs returns a cluster's event ids, oldest first.
func (h *History) eventIDs(cluster string) ([]string, error) {
	var ids []string
	err := h.db.View(func(tx *store.Tx) error {
		var err error
		ids, err = nodeEvents.IDsBy(tx, "cluster", cluster)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node events of %s: %w", cluster, err)
	}
	return ids, nil
}

func (h *History) deleteEvents(ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), h.batch())
		err := h.db.Update(func(tx *store.Tx) error {
			for _, id := range ids[:n] {
				if err := nodeEvents.Delete(tx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("drop node events: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// forgetExcept drops the state and history of clusters not in names: a
// cluster registered again later under the same name starts afresh.
func (h *History) forgetExcept(names []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var gone []string
	if err := h.db.View(func(tx *store.Tx) error {
		return nodeObservations.Scan(tx, store.ScanOptions{}, func(id string, _ *observation) (bool, error) {
			if !slices.Contains(names, id) {
				gone = append(gone, id)
			}
			return true, nil
		})
	}); err != nil {
		return err
	}
	for _, cluster := range gone {
		ids, err := h.eventIDs(cluster)
		if err != nil {
			return err
		}
		if err := h.deleteEvents(ids); err != nil {
			return err
		}
		if err := h.db.Update(func(tx *store.Tx) error { return nodeObservations.Delete(tx, cluster) }); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("forget nodes of %s: %w", cluster, err)
		}
		delete(h.lastErr, cluster)
	}
	return nil
}

// noteResult logs a failed observation once per distinct failure, and its
// recovery, so an unreachable cluster does not fill the log every interval.
func (h *History) noteResult(cluster string, err error) {
	prev, failing := h.lastErr[cluster]
	switch {
	case err == nil && failing:
		delete(h.lastErr, cluster)
		h.log.Info("node observation recovered", "cluster", cluster)
	case err != nil && err.Error() != prev:
		h.lastErr[cluster] = err.Error()
		h.log.Warn("node observation failed", "cluster", cluster, "err", err)
	}
}

// listPage is how many nodes one list request asks for: full Node objects
// run to tens of KiB (their image lists), and the gateway reads at most
// 4 MiB per answer.
const listPage = 100

// snapshot is one node as observed now.
type snapshot struct {
	nodeState
	Reason, Message string
	Transition      time.Time
}

// k8sNodeStatus is the part of a Node the history reads.
type k8sNodeStatus struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Conditions []struct {
			Type               string    `json:"type"`
			Status             string    `json:"status"`
			Reason             string    `json:"reason"`
			Message            string    `json:"message"`
			LastTransitionTime time.Time `json:"lastTransitionTime"`
		} `json:"conditions"`
	} `json:"status"`
}

// listNodes reads every Node of cluster, in pages.
func (h *History) listNodes(cluster string) (map[string]snapshot, error) {
	out := map[string]snapshot{}
	cont := ""
	for {
		q := url.Values{"limit": {fmt.Sprint(listPage)}}
		if cont != "" {
			q.Set("continue", cont)
		}
		code, data, err := h.src.SystemGet(cluster, "/api/v1/nodes?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		if err := kubestatus.Error(http.MethodGet, code, data); err != nil {
			hint := ""
			if apierrors.IsForbidden(err) {
				hint = " (the gateway's identity needs get, list and watch on nodes: deploy/rbac/berth-rbac.yaml)"
			}
			return nil, fmt.Errorf("list nodes answered %d: %w%s", code, err, hint)
		}
		var list struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []k8sNodeStatus `json:"items"`
		}
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("decode node list: %w", err)
		}
		for i := range list.Items {
			n := &list.Items[i]
			s := snapshot{nodeState: nodeState{UID: n.Metadata.UID}}
			for _, c := range n.Status.Conditions {
				if c.Type == "Ready" {
					s.Ready, s.Reason, s.Message, s.Transition = c.Status, c.Reason, c.Message, c.LastTransitionTime
				}
			}
			out[n.Metadata.Name] = s
		}
		if list.Metadata.Continue == "" {
			return out, nil
		}
		cont = list.Metadata.Continue
	}
}

// readinessKind names the event of a Ready condition now at status, or ""
// when there is nothing to report (no condition).
func readinessKind(status string) string {
	switch status {
	case "True":
		return EventReady
	case "False":
		return EventNotReady
	case "Unknown":
		return EventOffline
	}
	return ""
}

// diff returns the events that lead from prev to cur, ordered by node name
// and, for one node, in the order they happened: deleted (of a replaced
// object), joined, then its readiness. Events carry node, kind and the
// condition's reason, message and transition time; the caller adds the rest.
func diff(prev map[string]nodeState, cur map[string]snapshot) []Event {
	names := slices.Sorted(maps.Keys(cur))
	for name := range prev {
		if _, ok := cur[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []Event
	for _, name := range names {
		p, had := prev[name]
		c, has := cur[name]
		if !has {
			out = append(out, Event{Node: name, Kind: EventDeleted})
			continue
		}
		// The same name with a new uid is a new Node object: the old one
		// was deleted and another joined in between observations.
		replaced := had && p.UID != "" && c.UID != "" && p.UID != c.UID
		if replaced {
			out = append(out, Event{Node: name, Kind: EventDeleted, Reason: "Replaced", Message: "a new Node object took this name"})
		}
		if !had || replaced {
			out = append(out, Event{Node: name, Kind: EventJoined})
		} else if c.Ready == p.Ready {
			continue
		}
		if kind := readinessKind(c.Ready); kind != "" {
			e := Event{Node: name, Kind: kind, Reason: c.Reason, Message: c.Message}
			if !c.Transition.IsZero() {
				t := c.Transition.UTC()
				e.TransitionTime = &t
			}
			out = append(out, e)
		}
	}
	return out
}

// EventQuery selects node events.
type EventQuery struct {
	Cluster string
	// Node and Kind filter when set.
	Node, Kind     string
	Page, PageSize int
}

// Events returns one page of a cluster's node events, newest first, and
// how many match in all.
func (h *History) Events(q EventQuery) ([]Event, int, error) {
	if q.Page < 1 || q.PageSize < 1 {
		return nil, 0, fmt.Errorf("node events: page and page size must be positive")
	}
	items := []Event{}
	total := 0
	err := h.db.View(func(tx *store.Tx) error {
		ids, err := nodeEvents.IDsBy(tx, "cluster", q.Cluster)
		if err != nil {
			return err
		}
		start := (q.Page - 1) * q.PageSize
		for i := len(ids) - 1; i >= 0; i-- {
			e, err := nodeEvents.Get(tx, ids[i])
			if errors.Is(err, store.ErrNotFound) {
				continue // expired between the index read and now
			}
			if err != nil {
				return err
			}
			if (q.Node != "" && e.Node != q.Node) || (q.Kind != "" && e.Kind != q.Kind) {
				continue
			}
			if total >= start && len(items) < q.PageSize {
				items = append(items, *e)
			}
			total++
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("node events of %s: %w", q.Cluster, err)
	}
	return items, total, nil
}
