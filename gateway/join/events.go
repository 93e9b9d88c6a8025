package join

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// emitUsed reports one use of t, in the transaction that counts it. The
// machine has no node name yet when it fetches the script (kubeadm
// registers the node later), so node is the address it came from.
func emitUsed(tx *store.Tx, at time.Time, t *Token, clientIP string) error {
	uses := fmt.Sprint(t.Uses)
	if t.MaxUses > 0 {
		uses += fmt.Sprintf(" of %d", t.MaxUses)
	}
	return events.Emit(tx, events.Event{Type: events.JoinTokenUsed, Time: at, Cluster: t.Cluster,
		Summary: fmt.Sprintf("Join token %q of cluster %q was used from %q (use %s).", t.ID, t.Cluster, clientIP, uses),
		Data:    map[string]string{"token": t.ID, "node": clientIP}})
}

// SweepInterval is how often Run looks for tokens that expired unused.
const SweepInterval = time.Minute

// ExpiryReportWindow bounds how long after its expiry a token is still
// reported expired: a sweep that was not running for longer (the gateway
// was down, or predates the sweep) does not flood the channels with old
// news.
const ExpiryReportWindow = 24 * time.Hour

// Run reports tokens that expired unused, now and then every interval
// until ctx ends. Tokens expire by their time alone (they stay in the
// store, shown as expired), so nothing else notices the moment; run it
// once across replicas, as a leader duty. log receives sweep failures.
func (s *Service) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.SweepExpired(ctx); err != nil {
			log.Warn("join-token sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expiredUnused reports whether t is an unused token that expired within
// the report window and has not been reported.
func (s *Service) expiredUnused(t *Token, now time.Time) bool {
	return !t.ExpiryReported && t.Uses == 0 && t.Status(now) == StatusExpired && now.Sub(t.ExpiresAt) < ExpiryReportWindow
}

// SweepExpired emits join_token.expired for every token that expired
// without being used, and returns how many it reported. Each is marked
// reported in the transaction that emits its event, after checking it
// again there, so a sweep that runs twice (or on two replicas, for a
// moment around a change of leader) reports each token once.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	now := s.now()
	var ids []string
	err := s.db.View(func(tx *store.Tx) error {
		return tokens.Scan(tx, store.ScanOptions{}, func(id string, t *Token) (bool, error) {
			if s.expiredUnused(t, now) {
				ids = append(ids, id)
			}
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("find expired join tokens: %w", err)
	}
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		reported := false
		err := s.db.Update(func(tx *store.Tx) error {
			reported = false
			t, err := tokens.Get(tx, id)
			if err != nil {
				return err
			}
			if !s.expiredUnused(t, now) {
				return nil
			}
			t.ExpiryReported = true
			if err := tokens.Put(tx, id, t); err != nil {
				return err
			}
			reported = true
			return events.Emit(tx, events.Event{Type: events.JoinTokenExpired, Time: now, Cluster: t.Cluster,
				Summary: fmt.Sprintf("Join token %q of cluster %q expired without being used.", t.ID, t.Cluster),
				Data:    map[string]string{"token": t.ID}})
		})
		if err != nil {
			return n, fmt.Errorf("report expired join token %s: %w", id, err)
		}
		if reported {
			n++
		}
	}
	return n, nil
}
