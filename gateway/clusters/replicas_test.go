package clusters

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/proxy"
)

// replica is one Berth's clusters service on a shared etcd store.
type replica struct {
	s    *Service
	pool *proxy.Pool
}

func newReplica(t *testing.T, endpoints []string) replica {
	t.Helper()
	db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: endpoints}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); db.FollowChanges(ctx) }()
	box, _ := secretbox.New(make([]byte, 32))
	pool := proxy.NewPool(proxy.PoolOptions{})
	s, err := NewService(db, box, pool, nil, nil, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		cancel()
		<-followed
		db.Close()
	})
	return replica{s, pool}
}

// Clusters and memberships written through one replica reach another's
// cache and connection pool: registered, a member added (the role shows),
// removed, the cluster deleted.
func TestReplicasFollowClusterWrites(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	a, b := newReplica(t, c.Endpoints()), newReplica(t, c.Endpoints())
	ctx := context.Background()
	api := newAPIServer(t)
	alice := &identity.Principal{UserID: "usr_alice", Username: "alice", Groups: []string{"ops"}, Permissions: []string{identity.PermClustersRead}}

	eventually := func(what string, cond func() bool) {
		t.Helper()
		for range 200 {
			if cond() {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("replica b never saw %s", what)
	}
	if _, err := a.s.Register(ctx, admin, api.spec("prod", "token"), audit.Event{}); err != nil {
		t.Fatal(err)
	}
	eventually("the registration", func() bool { _, err := b.s.Get("prod"); return err == nil && b.pool.Has("prod") })

	m, err := a.s.AddMember(ctx, "prod", "group", "ops", "edit", audit.Event{})
	if err != nil {
		t.Fatal(err)
	}
	eventually("the membership", func() bool { role, ok := b.s.Access(alice, "prod"); return ok && role == "edit" })
	if err := a.s.RemoveMember(ctx, "prod", m.ID, audit.Event{}); err != nil {
		t.Fatal(err)
	}
	eventually("the membership removed", func() bool { _, ok := b.s.Access(alice, "prod"); return !ok })

	if _, err := a.s.Delete(ctx, admin, "prod", audit.Event{}); err != nil {
		t.Fatal(err)
	}
	eventually("the deletion", func() bool { _, err := b.s.Get("prod"); return err != nil && !b.pool.Has("prod") })
}
