package audit

import (
	"context"
	"testing"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/store"
)

// Found by a red-team pass (fixed; the test guards it): Purge deletes up to purgeBatch (1000) events in ONE
// transaction, sized for Badger. On etcd a transaction may carry at most
// store.etcd.max_txn_ops (default 128) writes, so as soon as more than
// ~127 events are due the purge fails every time, and on etcd neither
// retention nor max_events is ever enforced again: the audit log (which
// anonymous failed sign-ins and refused proxied writes feed) grows until
// etcd's space quota raises NOSPACE and every replica's writes fail.
// Fix: size the batch per engine (below max_txn_ops, e.g. 100 on etcd).
func TestAuditPurgeOnEtcd(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: c.Endpoints()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := New(db, Options{MaxEvents: 10})
	for range 200 {
		if err := l.Append(context.Background(), &Event{Action: "login", ResourceType: "session"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.Purge()
	if err != nil || n != 190 {
		t.Errorf("purge of 190 excess events on etcd: removed %d, err %v", n, err)
	}
}
