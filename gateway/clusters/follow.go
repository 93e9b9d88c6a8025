package clusters

import (
	"bytes"

	"github.com/berthgw/berth/gateway/store"
)

// Replicas on etcd write clusters and memberships too. The store runs this
// service's foreign-commit hook for every such write another replica makes
// (store.FollowChanges, from etcd's watch), and followChanges brings the
// cache, the connection pool and the open streams in step. This replica's
// own writes refresh them where they are made.

// pendingSync is the clusters written since the last sync pass.
type pendingSync struct {
	names map[string]bool
	all   bool // memberships changed (their ids do not name the cluster), or anything
}

// onStoreChange is the service's foreign-commit hook: it notes what to
// sync and wakes the follower. It must not block the store's follower.
func (s *Service) onStoreChange(changes []store.Change) {
	noted := false
	s.syncMu.Lock()
	for _, c := range changes {
		switch c.Table {
		case records.Name():
			s.pending.names[c.ID] = true
			noted = true
		case members.Name(), store.AllChanged.Table:
			s.pending.all = true
			noted = true
		}
	}
	s.syncMu.Unlock()
	if noted {
		select {
		case s.syncNow <- struct{}{}:
		default:
		}
	}
}

// followChanges syncs what onStoreChange noted until the service stops.
func (s *Service) followChanges() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.syncNow:
		}
		s.syncMu.Lock()
		p := s.pending
		s.pending = pendingSync{names: map[string]bool{}}
		s.syncMu.Unlock()
		names := p.names
		if p.all {
			for _, n := range s.loadNames() {
				names[n] = true
			}
			for _, n := range s.Names() {
				names[n] = true
			}
		}
		for name := range names {
			s.sync(name)
		}
		if p.all {
			s.membershipChanged()
		}
	}
}

// sync reloads one cluster from the store and makes the pool match it: a
// connection for a live cluster whose credentials changed or that the pool
// lacks, none for a deleted one.
func (s *Service) sync(name string) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.mu.RLock()
	before := s.cache[name]
	s.mu.RUnlock()
	s.refresh(name)
	s.mu.RLock()
	after := s.cache[name]
	s.mu.RUnlock()
	switch {
	case after == nil || after.rec.Sealed == nil:
		if before != nil && s.pool.Has(name) {
			s.pool.Remove(name)
		}
	case before == nil || !bytes.Equal(before.rec.Sealed, after.rec.Sealed) || !s.pool.Has(name):
		if err := s.addToPool(&after.rec); err != nil {
			s.log.Error("cluster written by another replica not loaded", "cluster", name, "err", err)
		}
	}
}

// loadNames lists the clusters in the store.
func (s *Service) loadNames() []string {
	var names []string
	err := s.db.View(func(tx *store.Tx) error {
		return records.Scan(tx, store.ScanOptions{}, func(id string, _ *Record) (bool, error) {
			names = append(names, id)
			return true, nil
		})
	})
	if err != nil {
		s.log.Warn("list clusters to sync", "err", err)
	}
	return names
}
