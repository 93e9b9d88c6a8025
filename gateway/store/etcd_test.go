package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/fault"
)

// plain is a table without indexes: one key per record, so tests can
// write many records per transaction within etcd's operation limit.
func plain() *Table[account] { return NewTable[account]("plain") }

// Scans walk many pages (etcd answers 256 keys a request) in both
// directions, from a cursor, and see the transaction's own writes in
// place: a deleted record is gone, a new one is in order.
func TestScanAcrossPagesWithOwnWrites(t *testing.T) {
	eachBackend(t, func(t *testing.T, fresh func(*testing.T) Options) {
		db := openStore(t, fresh(t))
		tab := plain()
		var want []string
		for batch := range 12 {
			must(t, db.Update(func(tx *Tx) error {
				for i := range 50 {
					id := fmt.Sprintf("r%04d", (batch*50+i)*2) // even ids
					if err := tab.Put(tx, id, &account{Name: id}); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		for i := 0; i < 1200; i += 2 {
			want = append(want, fmt.Sprintf("r%04d", i))
		}
		walk := func(tx *Tx, o ScanOptions) []string {
			var got []string
			must(t, tab.Scan(tx, o, func(id string, _ *account) (bool, error) {
				got = append(got, id)
				return true, nil
			}))
			return got
		}
		must(t, db.Update(func(tx *Tx) error {
			// Own writes: delete some, add odd ids between, change one.
			for _, id := range []string{"r0000", "r0512", "r1198"} {
				must(t, tab.Delete(tx, id))
				want = slices.DeleteFunc(want, func(s string) bool { return s == id })
			}
			for _, id := range []string{"r0001", "r0511", "r0513", "r1199"} {
				must(t, tab.Put(tx, id, &account{Name: id}))
				want = append(want, id)
			}
			slices.Sort(want)
			reversed := slices.Clone(want)
			slices.Reverse(reversed)
			if got := walk(tx, ScanOptions{}); !slices.Equal(got, want) {
				t.Errorf("forward: %d ids, first %v", len(got), got[:min(5, len(got))])
			}
			if got := walk(tx, ScanOptions{Reverse: true}); !slices.Equal(got, reversed) {
				t.Errorf("reverse: %d ids, first %v", len(got), got[:min(5, len(got))])
			}
			at := slices.Index(want, "r0600")
			if got := walk(tx, ScanOptions{After: "r0600"}); !slices.Equal(got, want[at+1:]) {
				t.Errorf("after r0600: %d ids, first %v", len(got), got[:min(5, len(got))])
			}
			if got := walk(tx, ScanOptions{After: "r0600", Reverse: true}); !slices.Equal(got, reversed[len(want)-at:]) {
				t.Errorf("before r0600: %d ids, first %v", len(got), got[:min(5, len(got))])
			}
			return nil
		}))
	})
}

// A transaction whose reads changed before it committed runs again, with
// few reads (a compare per key) and with many (folded into the table's
// generation key on etcd).
func TestChangedReadsRunAgain(t *testing.T) {
	for _, reads := range []int{1, 100} {
		t.Run(fmt.Sprint(reads, "reads"), func(t *testing.T) {
			eachBackend(t, func(t *testing.T, fresh func(*testing.T) Options) {
				db := openStore(t, fresh(t))
				tab := plain()
				must(t, db.Update(func(tx *Tx) error {
					for i := range reads {
						if err := tab.Put(tx, fmt.Sprint("k", i), &account{Count: 1}); err != nil {
							return err
						}
					}
					return nil
				}))
				attempts := 0
				must(t, db.Update(func(tx *Tx) error {
					attempts++
					sum := 0
					for i := range reads {
						a, err := tab.Get(tx, fmt.Sprint("k", i))
						if err != nil {
							return err
						}
						sum += a.Count
					}
					if attempts == 1 {
						// Another writer changes the last record read.
						must(t, db.Update(func(tx *Tx) error {
							return tab.Put(tx, fmt.Sprint("k", reads-1), &account{Count: 2})
						}))
					}
					return tab.Put(tx, "sum", &account{Count: sum})
				}))
				var sum *account
				must(t, db.View(func(tx *Tx) (err error) { sum, err = tab.Get(tx, "sum"); return err }))
				if attempts != 2 || sum.Count != reads+1 {
					t.Fatalf("attempts %d, sum %d; want 2 attempts and the sum after the change, %d", attempts, sum.Count, reads+1)
				}
			})
		})
	}
}

// A transaction larger than etcd allows fails with an error that says
// what to raise, and writes nothing.
func TestEtcdTransactionTooLarge(t *testing.T) {
	db := openStore(t, etcdOptions(t))
	tab := plain()
	err := db.Update(func(tx *Tx) error {
		for i := range 200 {
			if err := tab.Put(tx, fmt.Sprint("big", i), &account{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "max-txn-ops") {
		t.Fatalf("200 writes: %v, want an error naming max-txn-ops", err)
	}
	must(t, db.View(func(tx *Tx) error {
		if _, err := tab.Get(tx, "big0"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a refused transaction wrote big0: %v", err)
		}
		return nil
	}))
}

// etcd compacting away the revision a transaction reads at makes it run
// again at a newer one, not fail.
func TestEtcdCompactionRunsTransactionAgain(t *testing.T) {
	opts := etcdOptions(t)
	db := openStore(t, opts)
	tab := plain()
	must(t, db.Update(func(tx *Tx) error { return tab.Put(tx, "a", &account{Count: 1}) }))
	cli := etcdClient(t, opts.Etcd.Endpoints)
	attempts := 0
	must(t, db.Update(func(tx *Tx) error {
		attempts++
		if _, err := tab.Get(tx, "a"); err != nil { // pins the revision
			return err
		}
		if attempts == 1 {
			must(t, db.Update(func(tx *Tx) error { return tab.Put(tx, "b", &account{}) }))
			resp, err := cli.Get(context.Background(), "x")
			must(t, err)
			_, err = cli.Compact(context.Background(), resp.Header.Revision)
			must(t, err)
		}
		if _, err := tab.Get(tx, "b"); err != nil {
			return err
		}
		return tab.Put(tx, "c", &account{})
	}))
	if attempts != 2 {
		t.Fatalf("attempts %d, want 2", attempts)
	}
}

// A record with an expiry is on an etcd lease that outlives it, shared by
// the records expiring in the same minute.
func TestEtcdExpiryUsesLeases(t *testing.T) {
	opts := etcdOptions(t)
	db := openStore(t, opts)
	tab := accounts()
	at := time.Now().Truncate(time.Minute).Add(2 * time.Hour)
	must(t, db.Update(func(tx *Tx) error {
		if err := tab.Put(tx, "e1", &account{Name: "e1", Email: "e1", Expires: at.Add(time.Second)}); err != nil {
			return err
		}
		return tab.Put(tx, "e2", &account{Name: "e2", Email: "e2", Expires: at.Add(30 * time.Second)})
	}))
	cli := etcdClient(t, opts.Etcd.Endpoints)
	ctx := context.Background()
	lease := func(key string) clientv3.LeaseID {
		resp, err := cli.Get(ctx, opts.Etcd.Prefix+key)
		must(t, err)
		if len(resp.Kvs) != 1 {
			t.Fatalf("%s: %d keys", key, len(resp.Kvs))
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	l1, l2 := lease(tab.recordKey("e1")), lease(tab.recordKey("e2"))
	if l1 == 0 || l1 != l2 || lease(tab.uniqueKey("name", "e1")) != l1 {
		t.Fatalf("leases %x %x: want one lease for the record, its index and its neighbour", l1, l2)
	}
	ttl, err := cli.TimeToLive(ctx, l1)
	must(t, err)
	if left := time.Duration(ttl.TTL) * time.Second; left < time.Until(at.Add(30*time.Second)) || left > time.Until(at)+3*time.Minute {
		t.Errorf("lease TTL %v for records expiring in %v", left, time.Until(at))
	}
}

// A replica cut off from etcd is not ready, and its writes fail within
// the request timeout instead of hanging.
func TestEtcdLostIsNotReady(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	db := openStore(t, Options{Backend: BackendEtcd, Etcd: EtcdOptions{Endpoints: c.Endpoints(), RequestTimeout: time.Second}})
	must(t, db.Ready())
	c.Kill(0)
	// Ready's answer stands for a second: not ready soon after.
	for i := 0; db.Ready() == nil; i++ {
		if i == 60 {
			t.Fatal("ready with etcd killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := db.Update(func(tx *Tx) error { return plain().Put(tx, "x", &account{}) })
	if !fault.Is(err, fault.Unavailable) {
		t.Fatalf("a write with etcd killed: %v, want an Unavailable fault (503)", err)
	}
	must(t, c.Restart(t.Context(), 0))
	// The restarted member elects itself a moment later: ready again soon.
	for i := 0; db.Ready() != nil; i++ {
		if i == 60 {
			t.Fatalf("not ready after etcd came back: %v", db.Ready())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A damaged or truncated backup is refused before anything is loaded; a
// backup in Badger's own format (from Berth before the portable format)
// still restores into Badger, and is refused with a way forward by etcd.
func TestRestoreRefusesDamagedAndForeignBackups(t *testing.T) {
	src := openStore(t, Options{Dir: t.TempDir()})
	tab := accounts()
	must(t, src.Update(func(tx *Tx) error { return tab.Insert(tx, "a", &account{Name: "a", Email: "a"}) }))
	var good bytes.Buffer
	must(t, src.Backup(&good))
	flipped := bytes.Clone(good.Bytes())
	flipped[len(flipped)/2] ^= 0x20
	var legacy bytes.Buffer
	if _, err := src.eng.(*badgerEngine).bdb.Backup(&legacy, 0); err != nil {
		t.Fatal(err)
	}

	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for name, data := range map[string][]byte{
				"truncated": good.Bytes()[:good.Len()-10],
				"flipped":   flipped,
				"empty":     nil,
			} {
				dst := openStore(t, b.fresh(t))
				if err := dst.Restore(bytes.NewReader(data)); err == nil && name != "empty" {
					t.Errorf("%s backup restored", name)
				}
				must(t, dst.View(func(tx *Tx) error {
					if _, err := tab.Get(tx, "a"); !errors.Is(err, ErrNotFound) {
						t.Errorf("%s backup loaded a record: %v", name, err)
					}
					return nil
				}))
			}
			dst := openStore(t, b.fresh(t))
			err := dst.Restore(bytes.NewReader(legacy.Bytes()))
			if b.name == BackendEtcd {
				if err == nil || !strings.Contains(err.Error(), "older Berth") {
					t.Errorf("legacy backup into etcd: %v", err)
				}
				return
			}
			must(t, err)
			must(t, dst.View(func(tx *Tx) error { _, err := tab.Get(tx, "a"); return err }))
		})
	}
}

func etcdClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Two processes on one etcd store: a write through one runs the other's
// commit hooks, through FollowChanges, with the record it wrote.
func TestFollowChangesAcrossReplicas(t *testing.T) {
	opts := etcdOptions(t)
	one, two := openStore(t, opts), openStore(t, opts)
	seen := make(chan Change, 16)
	two.OnCommit(func(cs []Change) {
		for _, c := range cs {
			seen <- c
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- two.FollowChanges(ctx) }()
	tab := accounts()
	// The watch starts at FollowChanges' first revision: write until the
	// first change arrives, then once more with a record of its own.
	deadline := time.After(30 * time.Second)
	for first := true; first; {
		must(t, one.Update(func(tx *Tx) error { return tab.Put(tx, "warm", &account{Name: "warm", Email: "w"}) }))
		select {
		case c := <-seen:
			first = c != Change{Table: "accounts", ID: "warm"}
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no change arrived")
		}
	}
	must(t, one.Update(func(tx *Tx) error { return tab.Delete(tx, "warm") }))
	for c := range seen {
		if c == (Change{Table: "accounts", ID: "warm"}) {
			break
		}
		t.Fatalf("unexpected change %+v", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A DB following etcd is fresh while a quorum answers, and stops being so
// once etcd is gone: its caches must not be trusted past the bound.
func TestFreshOnlyWhileHearingFromEtcd(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	db := openStore(t, Options{Backend: BackendEtcd, Etcd: EtcdOptions{Endpoints: c.Endpoints(), RequestTimeout: time.Second}})
	if db.Fresh(time.Hour) {
		t.Fatal("fresh before following etcd")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go db.FollowChanges(ctx)
	until := func(want bool) {
		t.Helper()
		for range 300 {
			if db.Fresh(2*time.Second) == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("Fresh never became %v", want)
	}
	until(true)
	// With nothing written, progress notices keep it fresh.
	for range 30 {
		if !db.Fresh(2 * time.Second) {
			t.Fatal("stale while etcd answers: the watch's progress notices stopped")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Kill(0)
	until(false)
	must(t, c.Restart(t.Context(), 0))
	until(true)
}

// A write larger than etcd's --max-request-bytes (1.5 MiB by default)
// fails with an error that names the setting, and writes nothing.
func TestEtcdRequestTooLarge(t *testing.T) {
	db := openStore(t, etcdOptions(t))
	tab := plain()
	big := strings.Repeat("x", 1600<<10)
	err := db.Update(func(tx *Tx) error { return tab.Put(tx, "big", &account{Name: big}) })
	if err == nil || !strings.Contains(err.Error(), "max-request-bytes") {
		t.Fatalf("a 1.6 MiB record: %v, want an error naming max-request-bytes", err)
	}
	must(t, db.View(func(tx *Tx) error {
		if _, err := tab.Get(tx, "big"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the refused record was written: %v", err)
		}
		return nil
	}))
}
