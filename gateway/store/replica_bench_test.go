package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// BenchmarkInvalidationDelay measures how long a write made through one
// replica takes to reach another replica's cache-invalidation hooks: two
// DBs on one etcd, B following with FollowChanges and an OnCommit hook, A
// writing one record at a time. For each write it takes the time from A's
// Update returning to B's hook seeing that record, and reports its p50,
// p90, p99 and max (negative when B heard before A's Update returned).
// "write+follow" is the same from the call to Update instead: what a
// client that writes on one replica and reads on another can wait.
//
// Give it at least a thousand writes:
//
//	go test -run '^$' -bench BenchmarkInvalidationDelay -benchtime 2000x ./gateway/store/
func BenchmarkInvalidationDelay(b *testing.B) {
	b.Run("etcd1", func(b *testing.B) {
		opts := etcdOptions(b)
		benchDelay(b, opts, 0)
	})
	// Replicas are given every member's endpoint, as Berth's are. The
	// three-member cluster is started once, on first use: a sub-benchmark's
	// function runs again for each b.N it tries.
	var three *etcdenv.Cluster
	cluster3 := func(sb *testing.B) Options {
		if three == nil {
			bins := kubeenv.MustBinaries(sb)
			c, err := etcdenv.Start(sb.Context(), bins.Etcd, b.TempDir(), 3)
			if err != nil {
				sb.Fatalf("starting etcd: %v", err)
			}
			b.Cleanup(func() {
				if err := c.Stop(); err != nil {
					b.Errorf("stopping etcd: %v", err)
				}
			})
			three = c
		}
		prefix := fmt.Sprintf("/delay/%d/", time.Now().UnixNano())
		return Options{Backend: BackendEtcd, Etcd: EtcdOptions{Endpoints: three.Endpoints(), Prefix: prefix}}
	}
	b.Run("etcd3", func(b *testing.B) { benchDelay(b, cluster3(b), 0) })
	// A third replica writes other records as fast as it can from four
	// goroutines meanwhile: B's watch carries their events too, and etcd
	// commits them in the same raft log.
	b.Run("etcd3-loaded", func(b *testing.B) { benchDelay(b, cluster3(b), 4) })
}

// benchDelay runs the measurement on the store opts names, with loaders
// goroutines writing other records through a third DB.
func benchDelay(b *testing.B, opts Options, loaders int) {
	open := func() *DB {
		db, err := Open(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	a, follower := open(), open()
	table := benchTable("delay")

	// seen gets the time B's hook saw each record of the table, keyed by id.
	var mu sync.Mutex
	seen := map[string]time.Time{}
	arrived := make(chan struct{}, 1)
	follower.OnCommit(func(changes []Change) {
		now := time.Now()
		mu.Lock()
		for _, c := range changes {
			if c.Table == table.Name() {
				seen[c.ID] = now
			}
		}
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		follower.FollowChanges(ctx)
	}()
	b.Cleanup(func() { cancel(); <-followed })

	// wait returns when B has seen id, and when.
	wait := func(id string) time.Time {
		deadline := time.After(10 * time.Second)
		for {
			mu.Lock()
			at, ok := seen[id]
			delete(seen, id)
			mu.Unlock()
			if ok {
				return at
			}
			select {
			case <-arrived:
			case <-deadline:
				b.Fatalf("replica B never saw %s", id)
			}
		}
	}
	put := func(id string) {
		err := a.Update(func(tx *Tx) error { return table.Put(tx, id, &benchRecord{Name: id}) })
		if err != nil {
			b.Fatal(err)
		}
	}

	// FollowChanges starts its watch at the revision current when it
	// begins: write until B hears, so every timed write is after that.
	for i := 0; ; i++ {
		id := fmt.Sprintf("warmup-%d", i)
		put(id)
		mu.Lock()
		_, ok := seen[id]
		mu.Unlock()
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		_, ok = seen[id]
		mu.Unlock()
		if ok {
			break
		}
		if i > 500 {
			b.Fatal("replica B does not follow")
		}
	}

	var loaded atomic.Int64
	stopLoad := make(chan struct{})
	var loadDone sync.WaitGroup
	if loaders > 0 {
		load := open()
		other := benchTable("load")
		for g := range loaders {
			loadDone.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stopLoad:
						return
					default:
					}
					id := fmt.Sprintf("%d-%d", g, i%1000)
					err := load.Update(func(tx *Tx) error { return other.Put(tx, id, &benchRecord{Name: id}) })
					if err != nil {
						b.Error(err)
						return
					}
					loaded.Add(1)
				}
			})
		}
	}

	after := make([]time.Duration, 0, b.N)
	whole := make([]time.Duration, 0, b.N)
	prefix := fmt.Sprintf("%d-%d", b.N, time.Now().UnixNano())
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("%s-%d", prefix, i)
		called := time.Now()
		put(id)
		returned := time.Now()
		at := wait(id)
		after = append(after, at.Sub(returned))
		whole = append(whole, at.Sub(called))
	}
	b.StopTimer()
	elapsed := time.Since(start)
	close(stopLoad)
	loadDone.Wait()

	reportPercentiles(b, "after-return", after)
	reportPercentiles(b, "write+follow", whole)
	if loaders > 0 {
		b.ReportMetric(float64(loaded.Load())/elapsed.Seconds(), "load-writes/s")
	}
}

// reportPercentiles reports p50, p90, p99 and max of d in milliseconds.
func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[int(q*float64(len(d)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.90), name+"-p90-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
	b.ReportMetric(at(1), name+"-max-ms")
}
