package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
)

// craftedBackup is a well-formed portable backup (valid checksum and
// count) holding the given entries.
func craftedBackup(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	bw, err := newBackupWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := bw.write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Found by a red-team pass (fixed; the test guards it): Restore loads any key the file names, not only the store's
// own (storePrefixes: meta/, v1/). A backup carrying an election key
// (leaders/<name>/<anything>, no lease, so it never expires) makes that
// key the oldest candidate forever: no replica ever leads, so the outbox,
// probes, signing-key rotation, break-glass sweep and audit purge never
// run again, silently. Backups leave elections out, so no genuine file
// has such keys: Restore should refuse any key outside storePrefixes (and
// a dump should never have written one).
func TestRestoreRefusesKeysOutsideTheStore(t *testing.T) {
	db := openStore(t, etcdOptions(t))
	file := craftedBackup(t,
		entry{key: "meta/schema_version", value: []byte("0")},
		entry{key: leadersPrefix + "duties/0", value: []byte("attacker")},
	)
	if err := db.Restore(bytes.NewReader(file)); err != nil {
		return // refused: what we want
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	led := false
	db.Lead(ctx, "duties", func(context.Context) { led = true })
	t.Errorf("restore accepted a key outside the store's prefixes (%q); afterwards this replica led the election: %v", leadersPrefix+"duties/0", led)
}

// Found by a red-team pass (fixed; the test guards it): follow resumes a broken watch at wr.Header.Revision+1. etcd
// sends a watcher that is catching up (a watch resumed from an older
// revision, or a slow "victim" watcher) its backlog in batches of at most
// 1000 revisions, and EVERY batch carries Header.Revision = the store's
// current revision, not the last revision in the batch
// (mvcc/watchable_store.go syncWatchers: WatchResponse{Events: eb.evs,
// Revision: curRev} with w.minRev = eb.moreRev). If the watch then ends
// (WithRequireLeader on a leader change, an error) before the rest
// arrives, follow restarts past the undelivered writes and their hooks
// never run on this replica: a revoked API key, a signed-out session or a
// removed membership stays in its caches. Fix: next = the last event's
// ModRevision+1 (Header.Revision+1 only for an event-less response,
// i.e. a progress notification).
func TestWatchResumesAfterItsLastEvent(t *testing.T) {
	opts := etcdOptions(t)
	db := openStore(t, opts)
	e := db.eng.(*etcdEngine)
	ctx := context.Background()
	start := int64(0)
	for i := range 1500 {
		resp, err := e.cli.Put(ctx, e.prefix+recordPrefix+"x/"+fmt.Sprint(i), "12345678")
		if err != nil {
			t.Fatal(err)
		}
		if start == 0 {
			start = resp.Header.Revision
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wr := <-e.cli.Watch(wctx, e.prefix+recordPrefix, clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithKeysOnly())
	if wr.Err() != nil || len(wr.Events) == 0 {
		t.Fatalf("watch: %v, %d events", wr.Err(), len(wr.Events))
	}
	last := wr.Events[len(wr.Events)-1].Kv.ModRevision
	if next := nextRevision(wr, start); next != last+1 {
		t.Errorf("the first catch-up response delivered revisions %d..%d (its header says %d): follow would resume at %d and skip %d writes",
			start, last, wr.Header.Revision, next, next-last-1)
	}
}

type rtRecord struct {
	N     int    `json:"n"`
	Owner string `json:"owner"`
}

// A read-write transaction that scans one index value (a user's sessions,
// when an admin revokes them) conflicts only with writes to records that
// carry that value: another replica writing the table steadily for
// others (a flood of sign-ins) does not starve it. (Found by a red-team
// pass: the scan depended on the whole table, and with 16 writers on
// another replica it gave up after 256 attempts. A scan of a whole table
// still depends on every write to it; docs/architecture.md, "State".)
func TestIndexScanNotStarvedByOtherWritersOfItsTable(t *testing.T) {
	opts := etcdOptions(t)
	a, b := openStore(t, opts), openStore(t, opts)
	hot := NewTable("rt_hot", Index[rtRecord]{Name: "owner", Values: func(r *rtRecord) []string { return []string{r.Owner} }})
	other := NewTable[rtRecord]("rt_other")
	must(t, a.Update(func(tx *Tx) error { return hot.Put(tx, "mine", &rtRecord{Owner: "victim"}) }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	for w := range rtWriters {
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				_ = b.Update(func(tx *Tx) error {
					return hot.Put(tx, fmt.Sprintf("w%d-%d", w, i%50), &rtRecord{N: i, Owner: fmt.Sprint("flooder-", w)})
				})
			}
			done <- struct{}{}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	attempts := 0
	t0 := time.Now()
	err := a.Update(func(tx *Tx) error {
		attempts++
		ids, err := hot.IDsBy(tx, "owner", "victim")
		if err != nil {
			return err
		}
		return other.Put(tx, "count", &rtRecord{N: len(ids)})
	})
	took := time.Since(t0)
	cancel()
	for range rtWriters {
		<-done
	}
	t.Logf("index-scanning Update: err=%v after %d attempts in %v", err, attempts, took)
	if err != nil || attempts > 3 {
		t.Errorf("a transaction scanning one index value, under writes to other values by another replica: %v after %d attempts", err, attempts)
	}
}

// rtWriters is how many writers the other replica runs.
var rtWriters = 16

// Found by a red-team pass (fixed; the test guards it): load writes a restore in transactions of max_txn_ops (128)
// puts whatever their size, so 128 records of 20 KB (certificates, plugin
// KV values, large audit events) make one 2.5 MB request, over etcd's
// default --max-request-bytes (1.5 MiB): the restore fails part-way,
// leaving the batches before it written, and a second attempt is refused
// ("the target store is not empty"). Fix: batch by bytes as well as by
// count (under max-request-bytes, e.g. 1 MiB), and make a failed restore
// say how to clean up (or delete what it wrote).
func TestRestoreBatchesBySizeOnEtcd(t *testing.T) {
	db := openStore(t, etcdOptions(t))
	es := []entry{{key: "meta/schema_version", value: []byte("0")}}
	for i := range 300 {
		es = append(es, entry{key: fmt.Sprintf("v1/t/blobs/%04d", i), value: bytes.Repeat([]byte{'x'}, 20<<10)})
	}
	if err := db.Restore(bytes.NewReader(craftedBackup(t, es...))); err != nil {
		t.Errorf("restore of 300 records of 20 KB on etcd: %v", err)
		if err := db.Restore(bytes.NewReader(craftedBackup(t, es...))); err != nil {
			t.Logf("and again: %v", err)
		}
	}
}

// Found by a red-team pass (fixed; the test guards it): FollowChanges gives up for good when its first read fails (it
// returns "starting to follow etcd"), and berth serve runs it once
// (components.go: a lifecycle.Loop that logs the error and ends). A replica
// that starts while etcd has no leader (an etcd rolling restart, a member
// restart during a Berth rollout) therefore never follows other replicas'
// writes: its clusters cache and connection pool (clusters.Access, used
// by the proxy WITHOUT a Fresh check) keep removed memberships, signing-key
// withdrawals and cancels never arrive, open streams are never rechecked
// for foreign revocations. Fix: follow retries its start like its watch
// (and Fresh stays false until it has).
func TestFollowChangesWaitsForEtcdAtStart(t *testing.T) {
	c := etcdenvForTest(t, 3)
	db := openStore(t, Options{Backend: BackendEtcd, Etcd: EtcdOptions{Endpoints: c.Endpoints(), RequestTimeout: time.Second}})
	c.Kill(1)
	c.Kill(2)
	// Wait until member 0 has lost its leader (an election timeout after
	// the others went), rather than for a fixed time a loaded machine may
	// not keep to.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ask, stop := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Leader(ask)
		stop()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("member 0 still knows a leader 30 s after the other two were killed")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := db.FollowChanges(ctx)
	if ctx.Err() == nil {
		t.Errorf("FollowChanges returned while its context was live (it is not called again): %v", err)
	}
}

func etcdenvForTest(t *testing.T, n int) *etcdenv.Cluster { return etcdenv.ForTest(t, n) }
