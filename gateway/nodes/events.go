package nodes

import (
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// errStale: the stored observation changed since it was read.
var errStale = errors.New("node observation changed meanwhile")

// notice is one node transition worth notifying.
type notice struct {
	typ, node, reason string
	// more counts the transitions of the same observation not notified
	// one by one (see capNotices).
	more int
}

// maxNotices bounds the notifications of one observation of one cluster.
// A zone outage, or a cluster that reports thousands of nodes flapping
// (its nodes' names and states are the cluster's to say), would otherwise
// send a message per node to every route, and overflow an etcd
// transaction.
const maxNotices = 20

// capNotices keeps the first maxNotices notes; the last one kept tells
// how many more there were.
func capNotices(notes []notice) []notice {
	if len(notes) <= maxNotices {
		return notes
	}
	kept := notes[:maxNotices]
	kept[maxNotices-1].more = len(notes) - maxNotices
	return kept
}

// notices picks, from the history events of one observation, the
// transitions people are told about: a node that joined, a ready node
// that stopped being ready (False or Unknown alike), and a node that was
// not ready and is ready again. A node's first readiness, in the
// observation that saw it join, is part of joining, not a transition;
// nor is a move between not ready and offline.
func notices(prev map[string]nodeState, evs []Event) []notice {
	var out []notice
	joined := map[string]bool{}
	for _, e := range evs {
		was := prev[e.Node].Ready
		switch {
		case e.Kind == EventJoined:
			joined[e.Node] = true
			out = append(out, notice{typ: events.NodeJoined, node: e.Node})
		case joined[e.Node]:
		case (e.Kind == EventNotReady || e.Kind == EventOffline) && was == "True":
			reason := e.Reason
			if reason == "" {
				reason = e.Kind
			}
			out = append(out, notice{typ: events.NodeNotReady, node: e.Node, reason: reason})
		case e.Kind == EventReady && (was == "False" || was == "Unknown"):
			out = append(out, notice{typ: events.NodeReady, node: e.Node})
		}
	}
	return out
}

// emit puts notes into the outbox in tx, the transaction that stores the
// observation they come from.
func (h *History) emit(tx *store.Tx, cluster string, at time.Time, notes []notice) error {
	for _, n := range notes {
		e := events.Event{Type: n.typ, Time: at, Cluster: cluster, Data: map[string]string{"node": n.node}}
		switch n.typ {
		case events.NodeJoined:
			e.Summary = fmt.Sprintf("Node %q joined cluster %q.", n.node, cluster)
		case events.NodeNotReady:
			e.Summary = fmt.Sprintf("Node %q in cluster %q is not ready (reason %q).", n.node, cluster, n.reason)
			e.Data["reason"] = n.reason
		case events.NodeReady:
			e.Summary = fmt.Sprintf("Node %q in cluster %q is ready again.", n.node, cluster)
		}
		if n.more > 0 {
			e.Summary += fmt.Sprintf(" %d more node changes in cluster %q are not notified one by one; see its node history.", n.more, cluster)
		}
		if err := events.Emit(tx, e); err != nil {
			return err
		}
	}
	return nil
}
