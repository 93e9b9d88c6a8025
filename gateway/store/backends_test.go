package store

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// The store's tests are one conformance suite: each runs on every backend
// (Badger in a temporary directory, and a real etcd started from Debian's
// binary), and must see the same behaviour.

// backend is one engine the suite runs on.
type backend struct {
	name string
	// fresh returns the Options of a new, empty store; opening them again
	// reopens the same store.
	fresh func(t *testing.T) Options
}

func backends(t *testing.T) []backend {
	return []backend{
		{BackendBadger, func(t *testing.T) Options { return Options{Dir: t.TempDir()} }},
		{BackendEtcd, func(t *testing.T) Options { return etcdOptions(t) }},
	}
}

// eachBackend runs test once per backend, as a subtest named for it.
func eachBackend(t *testing.T, test func(t *testing.T, fresh func(*testing.T) Options)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { test(t, b.fresh) })
	}
}

// shared is the one etcd of this test binary: each store on it gets a
// prefix of its own.
var shared struct {
	once     sync.Once
	cluster  *etcdenv.Cluster
	dir      string
	err      error
	prefixes atomic.Int64
}

// etcdOptions returns the Options of a new, empty store on the shared etcd,
// starting it on first use (skipping, or failing under BERTH_E2E=1, when
// etcd is missing). It takes a testing.TB so benchmarks share the etcd too.
func etcdOptions(t testing.TB) Options {
	t.Helper()
	bins := kubeenv.MustBinaries(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "store-etcd-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		shared.cluster, shared.err = etcdenv.Start(t.Context(), bins.Etcd, dir, 1)
	})
	if shared.err != nil {
		t.Fatalf("starting etcd: %v", shared.err)
	}
	prefix := fmt.Sprintf("/test/%d/", shared.prefixes.Add(1))
	return Options{Backend: BackendEtcd, Etcd: EtcdOptions{Endpoints: shared.cluster.Endpoints(), Prefix: prefix}}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		if err := shared.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping etcd:", err)
			code = 1
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
