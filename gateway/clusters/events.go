package clusters

import (
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/proxy"
)

// Sources of a cluster.registered event.
const (
	sourceRegistered  = "registered"
	sourceProvisioned = "provisioned"
)

// emitRegistered reports a cluster that entered Berth, in the transaction
// that makes it live: registered, or provisioned once its create
// operation succeeded (before that it is only asked for, and the
// operation's own events report how that goes).
func emitRegistered(tx *store.Tx, at time.Time, actor string, r *Record, source string) error {
	summary := fmt.Sprintf("Cluster %q was registered.", r.Name)
	if source == sourceProvisioned {
		summary = fmt.Sprintf("Cluster %q was provisioned by %q.", r.Name, r.Provisioner)
	}
	return events.Emit(tx, events.Event{Type: events.ClusterRegistered, Time: at, Actor: actor, Cluster: r.Name,
		Summary: summary, Data: map[string]string{"source": source}})
}

// emitDeleted reports a cluster removed from Berth, in the transaction
// that marks it deleted.
func emitDeleted(tx *store.Tx, at time.Time, actor, name string) error {
	return events.Emit(tx, events.Event{Type: events.ClusterDeleted, Time: at, Actor: actor, Cluster: name,
		Summary: fmt.Sprintf("Cluster %q was deleted.", name)})
}

// probeTransition records in r whether the cluster's API server is down
// and emits cluster.unreachable or cluster.recovered when that changed. It
// runs in the transaction that stores the probe's result, after reading r
// there: two probes of one cluster (two replicas, or a connection test
// during a round) conflict on the record, so the second sees the first's
// state and a transition is reported once. Answering with an error (a
// refusal, missing permissions) counts as reachable: the server is there.
func probeTransition(tx *store.Tx, now time.Time, r *Record, perr error) error {
	down := errors.Is(perr, proxy.ErrUnreachable)
	switch {
	case down && r.UnreachableSince == nil:
		r.UnreachableSince = &now
		return events.Emit(tx, events.Event{Type: events.ClusterUnreachable, Time: now, Cluster: r.Name,
			Summary: fmt.Sprintf("Cluster %q is unreachable: probes cannot connect to its API server.", r.Name),
			Data:    map[string]string{"error": perr.Error()}})
	case !down && r.UnreachableSince != nil:
		downFor := now.Sub(*r.UnreachableSince).Round(time.Second)
		r.UnreachableSince = nil
		return events.Emit(tx, events.Event{Type: events.ClusterRecovered, Time: now, Cluster: r.Name,
			Summary: fmt.Sprintf("Cluster %q answers again after %s unreachable.", r.Name, downFor),
			Data:    map[string]string{"down_for": downFor.String()}})
	}
	return nil
}

// quotaRefusal is checkQuota's refusal: the fault the caller sees, and
// what the quota.exceeded event says of it.
type quotaRefusal struct {
	err *fault.Error
	// quota is clusters, cpu or memory; limit and want are quantities.
	quota, limit, want string
}

func (q *quotaRefusal) Error() string { return q.err.Error() }
func (q *quotaRefusal) Unwrap() error { return q.err }

// QuotaNoticeInterval is the least time between two quota.exceeded events
// for one user: a member retrying a refused request in a loop must not
// flood the operators' channels.
const QuotaNoticeInterval = time.Hour

// quotaNotice remembers when a user's last quota.exceeded was emitted.
type quotaNotice struct {
	At time.Time `json:"at"`
}

var quotaNotices = store.NewTable[quotaNotice]("cluster_quota_notices").
	WithExpiry(func(n *quotaNotice) time.Time { return n.At.Add(QuotaNoticeInterval) })

// reportQuota emits quota.exceeded for a refusal of actor's request
// against user's quota, at most once per user per QuotaNoticeInterval.
//
// Unlike every other event this one cannot share the transaction of what
// it reports: the refusal is the rollback of the request's transaction.
// So it is written in a small transaction of its own, right after the
// refusal; a crash in between loses one warning, never a change. The
// notice record makes the bound hold across replicas and restarts. A
// failure here is logged: the caller's answer is the refusal either way.
func (s *Service) reportQuota(actor, user, cluster string, q *quotaRefusal) {
	now := s.opts.Now().UTC()
	err := s.db.Update(func(tx *store.Tx) error {
		last, err := quotaNotices.Get(tx, user)
		switch {
		case err == nil && now.Sub(last.At) < QuotaNoticeInterval:
			return nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := quotaNotices.Put(tx, user, &quotaNotice{At: now}); err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Type: events.QuotaExceeded, Time: now, Actor: actor, Recipient: user, Cluster: cluster,
			Summary: fmt.Sprintf("A request for cluster %q was refused: it would pass the %s quota (at most %s; it would make %s).", cluster, q.quota, q.limit, q.want),
			Data:    map[string]string{"user": user, "quota": q.quota, "limit": q.limit, "want": q.want}})
	})
	if err != nil {
		s.log.Warn("quota.exceeded not recorded", "user", user, "err", err)
	}
}
