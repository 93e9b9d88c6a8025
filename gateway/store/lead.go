package store

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// LeaderTTL is how long a replica that stops answering keeps the lead:
// its etcd session's lease. A replica killed mid-lead is replaced about
// this long after.
const LeaderTTL = 10 * time.Second

// leadersPrefix holds the elections, beside the store's data (which is all
// under storePrefixes) and never in a backup.
const leadersPrefix = "leaders/"

// storePrefixes hold the store's data, in key order, as opposed to the
// engine's own bookkeeping (elections), which backups leave out.
var storePrefixes = []string{"meta/", "v1/"}

// isStoreKey reports whether key is the store's data (see storePrefixes).
func isStoreKey(key string) bool {
	for _, p := range storePrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Replicated reports whether other processes may share this store (etcd),
// so work that must run once needs Lead.
func (db *DB) Replicated() bool {
	_, ok := db.eng.(*etcdEngine)
	return ok
}

// Lead runs run while this process leads the election called name among
// the processes sharing the store, and campaigns again whenever it loses
// the lead, until ctx ends. On Badger, whose store one process holds, it
// runs run at once. run's context ends when ctx does or the lead is lost
// (this process could not renew its etcd session for LeaderTTL); run must
// return soon after. Between a leader cut off from etcd and its successor
// the work may overlap by up to LeaderTTL: what runs under Lead must
// tolerate that (probes, sweeps and operations do, through the store's
// transactions).
func (db *DB) Lead(ctx context.Context, name string, run func(ctx context.Context)) {
	e, ok := db.eng.(*etcdEngine)
	if !ok {
		run(ctx)
		return
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s/%d", host, os.Getpid())
	for ctx.Err() == nil {
		if err := e.leadOnce(ctx, name, id, run); err != nil && ctx.Err() == nil {
			e.log.Warn("store: campaigning for the lead", "election", name, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (e *etcdEngine) leadOnce(ctx context.Context, name, id string, run func(context.Context)) error {
	session, err := concurrency.NewSession(e.cli, concurrency.WithTTL(int(LeaderTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("etcd session: %w", err)
	}
	defer session.Close()
	election := concurrency.NewElection(session, e.prefix+leadersPrefix+name)
	if err := election.Campaign(ctx, id); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	e.log.Info("store: leading", "election", name, "replica", id)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-session.Done():
			e.log.Warn("store: lost the lead (etcd session ended)", "election", name)
		case <-lctx.Done():
		}
		cancel()
	}()
	run(lctx)
	rctx, rcancel := e.ctx()
	defer rcancel()
	_ = election.Resign(rctx) // best effort: the lease ends it anyway
	return nil
}
