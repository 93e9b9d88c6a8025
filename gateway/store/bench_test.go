package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// The store's benchmarks run the same operations on each backend as Berth
// runs it: Badger in a directory with SyncWrites (every write fsynced before
// it is acknowledged), and a real single-member etcd (etcd always fsyncs).
// Figures and how to read them: docs/benchmarks.md, "Store and replicas".
//
//	go test -run '^$' -bench BenchmarkStore -benchmem -benchtime 2s ./gateway/store/

// benchRecord is a small record, the size of a user or a session.
type benchRecord struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Count int    `json:"count"`
}

// benchTable has one unique index, as most of Berth's tables do, so a
// write also writes an index entry and checks it is free.
func benchTable(name string) *Table[benchRecord] {
	return NewTable(name,
		Index[benchRecord]{Name: "name", Unique: true, Values: func(r *benchRecord) []string { return []string{r.Name} }},
	)
}

// benchSeeded is how many records the read benchmarks pick from.
const benchSeeded = 1000

// openBenchStore opens a new, empty store on the backend for b, closed when
// b ends; on etcd it skips b (fails it under BERTH_E2E=1) when etcd is
// missing.
func openBenchStore(b *testing.B, backend string) *DB {
	b.Helper()
	var opts Options
	switch backend {
	case BackendBadger:
		opts = Options{Dir: b.TempDir(), SyncWrites: true}
	case BackendEtcd:
		opts = etcdOptions(b)
	}
	db, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// seed puts n records into table, fifty per transaction (each record is
// two etcd writes, and etcd allows 128 in one transaction).
func seed(b *testing.B, db *DB, table *Table[benchRecord], n int) {
	b.Helper()
	for start := 0; start < n; start += 50 {
		err := db.Update(func(tx *Tx) error {
			for i := start; i < min(start+50, n); i++ {
				r := benchRecord{Name: fmt.Sprintf("user-%05d", i), Email: fmt.Sprintf("user-%05d@example.com", i)}
				if err := table.Put(tx, fmt.Sprintf("id-%05d", i), &r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStore measures each operation on each backend. The store is
// opened and seeded once per backend, outside the timed parts.
func BenchmarkStore(b *testing.B) {
	for _, backend := range []string{BackendBadger, BackendEtcd} {
		b.Run(backend, func(b *testing.B) {
			db := openBenchStore(b, backend)
			records := benchTable("records")
			seed(b, db, records, benchSeeded)
			page100 := benchTable("page100")
			seed(b, db, page100, 100)

			b.Run("Get", func(b *testing.B) { benchGet(b, db, records) })
			b.Run("GetBy", func(b *testing.B) { benchGetBy(b, db, records) })
			b.Run("Put", func(b *testing.B) { benchPut(b, db, benchTable("writes")) })
			b.Run("HotUpdateParallel", func(b *testing.B) { benchHotUpdate(b, db, benchTable("hot")) })
			b.Run("Page100", func(b *testing.B) { benchPage(b, db, page100) })
			b.Run("Page100of1000", func(b *testing.B) { benchPage(b, db, records) })
		})
	}
}

// benchGet is a point read: one record by id in a View.
func benchGet(b *testing.B, db *DB, table *Table[benchRecord]) {
	b.ReportAllocs()
	for b.Loop() {
		id := fmt.Sprintf("id-%05d", rand.IntN(benchSeeded))
		err := db.View(func(tx *Tx) error {
			_, err := table.Get(tx, id)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchGetBy is an indexed read: the unique index entry, then the record.
func benchGetBy(b *testing.B, db *DB, table *Table[benchRecord]) {
	b.ReportAllocs()
	for b.Loop() {
		name := fmt.Sprintf("user-%05d", rand.IntN(benchSeeded))
		err := db.View(func(tx *Tx) error {
			_, _, err := table.GetBy(tx, "name", name)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchPut writes a new record with its unique index entry per op, each in
// its own committed transaction (fsynced on both backends).
func benchPut(b *testing.B, db *DB, table *Table[benchRecord]) {
	b.ReportAllocs()
	// A prefix per run: the benchmark function runs several times on one
	// store, and a new record must not collide with an earlier run's.
	prefix := fmt.Sprintf("%d-%d", b.N, rand.Int64())
	i := 0
	for b.Loop() {
		i++
		r := benchRecord{Name: fmt.Sprintf("w-%s-%d", prefix, i), Email: "w@example.com"}
		err := db.Update(func(tx *Tx) error { return table.Put(tx, fmt.Sprintf("w-%s-%d", prefix, i), &r) })
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchHotUpdate is read-modify-write of one record from many goroutines at
// once (a counter, a session's last-seen time): transactions conflict and
// Update retries them. retries/op is how many extra attempts an Update
// needed on average, max-attempts the most one Update took, and gave-up/op
// the share of Updates that failed after Update's bound on retries; they
// are reported, not fatal, because that bound is what is being measured.
func benchHotUpdate(b *testing.B, db *DB, table *Table[benchRecord]) {
	b.ReportAllocs()
	const id = "hot"
	if err := db.Update(func(tx *Tx) error { return table.Put(tx, id, &benchRecord{Name: "hot"}) }); err != nil {
		b.Fatal(err)
	}
	var attempts, done, gaveUp, maxAttempts atomic.Int64
	// 4 goroutines per core: 8 writers on this machine's two cores, enough
	// that they collide on etcd, where a transaction waits on a round trip.
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var mine int64
			err := db.Update(func(tx *Tx) error {
				mine++
				r, err := table.Get(tx, id)
				if err != nil {
					return err
				}
				r.Count++
				return table.Put(tx, id, r)
			})
			attempts.Add(mine)
			for m := maxAttempts.Load(); mine > m && !maxAttempts.CompareAndSwap(m, mine); m = maxAttempts.Load() {
			}
			switch {
			case errors.Is(err, errConflict):
				gaveUp.Add(1)
			case err != nil:
				b.Error(err)
				return
			default:
				done.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(attempts.Load()-int64(b.N))/float64(b.N), "retries/op")
	b.ReportMetric(float64(maxAttempts.Load()), "max-attempts")
	b.ReportMetric(float64(gaveUp.Load())/float64(b.N), "gave-up/op")
	// Every committed increment must have landed exactly once.
	var got int
	err := db.View(func(tx *Tx) error {
		r, err := table.Get(tx, id)
		if err == nil {
			got = r.Count
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if int64(got) != done.Load() {
		b.Fatalf("counter is %d after %d increments", got, done.Load())
	}
	// Reset for the next run of this function on the same store.
	if err := db.Update(func(tx *Tx) error { return table.Delete(tx, id) }); err != nil {
		b.Fatal(err)
	}
}

// benchPage reads the first page of 100 records, decoded. Page also counts
// every record the table holds, so its cost grows with the table.
func benchPage(b *testing.B, db *DB, table *Table[benchRecord]) {
	b.ReportAllocs()
	for b.Loop() {
		err := db.View(func(tx *Tx) error {
			items, _, err := table.Page(tx, 1, 100, false, nil)
			if err == nil && len(items) != 100 {
				err = fmt.Errorf("page of %d records, want 100", len(items))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
