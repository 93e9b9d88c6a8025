package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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

// RED TEAM: Restore loads any key the file names, not only the store's
// own (storePrefixes: meta/, v1/). A backup carrying an election key
// (leaders/<name>/<anything>, no lease, so it never expires) makes that
// key the oldest candidate forever: no replica ever leads, so the outbox,
// probes, signing-key rotation, break-glass sweep and audit purge never
// run again, silently. Backups leave elections out, so no genuine file
// has such keys: Restore should refuse any key outside storePrefixes (and
// a dump should never have written one).
func TestRedteamRestoreRefusesKeysOutsideTheStore(t *testing.T) {
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

// RED TEAM: follow resumes a broken watch at wr.Header.Revision+1. etcd
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
func TestRedteamWatchBatchHeaderRevisionSkipsBacklog(t *testing.T) {
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
	if wr.Header.Revision > last {
		t.Errorf("the first catch-up response delivered revisions %d..%d but its header says %d: follow, ending here, would resume at %d and skip %d writes",
			start, last, wr.Header.Revision, wr.Header.Revision+1, wr.Header.Revision-last)
	}
}
