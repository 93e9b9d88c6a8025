package edgetls

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Replicas on etcd share certmagic's storage: a certificate one stores the
// other loads, and a lock one holds the other cannot take, so two
// replicas never order the same certificate at once.
func TestStorageSharedByReplicas(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	box, _ := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	replica := func() *Storage {
		db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: c.Endpoints()}})
		if err != nil {
			t.Fatal(err)
		}
		s := NewStorage(db, box)
		t.Cleanup(func() { s.Close(); db.Close() })
		return s
	}
	a, b := replica(), replica()
	ctx := context.Background()
	key := "certificates/acme/edge.example/edge.example.crt"
	if err := a.Store(ctx, key, []byte("PEM")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Load(ctx, key); err != nil || string(got) != "PEM" {
		t.Fatalf("the other replica loads %q, %v", got, err)
	}

	// Both race for the same lock many times: never both at once.
	var holding, overlaps atomic.Int32
	var wg sync.WaitGroup
	for _, s := range []*Storage{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := s.Lock(ctx, "issue_cert_edge.example"); err != nil {
					t.Error(err)
					return
				}
				if holding.Add(1) > 1 {
					overlaps.Add(1)
				}
				holding.Add(-1)
				if err := s.Unlock(ctx, "issue_cert_edge.example"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("both replicas held the lock at once %d times", overlaps.Load())
	}
}
