package edgetls

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

func testDB(t *testing.T) (*store.DB, *secretbox.Box) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	box, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return db, box
}

func TestStorageContract(t *testing.T) {
	db, box := testDB(t)
	s := NewStorage(db, box)
	defer s.Close()
	ctx := context.Background()

	if _, err := s.Load(ctx, "certificates/ca/a.example/a.example.key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat missing: %v", err)
	}
	if _, err := s.List(ctx, "nope", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("list missing: %v", err)
	}
	if s.Exists(ctx, "nope") {
		t.Fatal("missing key exists")
	}
	if err := s.Delete(ctx, "nope"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}

	files := map[string]string{
		"certificates/ca/a.example/a.example.crt":  "CERT A",
		"certificates/ca/a.example/a.example.key":  "-----BEGIN EC PRIVATE KEY----- secret-a",
		"certificates/ca/a.example/a.example.json": "{}",
		"certificates/ca/b.example/b.example.crt":  "CERT B",
		"certificates/cab/x/x.crt":                 "not under certificates/ca",
		"acme/ca/users/ops@example/ops.key":        "-----BEGIN EC PRIVATE KEY----- account",
	}
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != v {
			t.Fatalf("load %s: %q %v", k, got, err)
		}
	}
	// Overwrite.
	if err := s.Store(ctx, "certificates/ca/b.example/b.example.crt", []byte("CERT B2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(ctx, "certificates/ca/b.example/b.example.crt"); string(got) != "CERT B2" {
		t.Fatalf("overwrite: %q", got)
	}

	list, err := s.List(ctx, "certificates/ca", false)
	if err != nil || !slices.Equal(list, []string{"certificates/ca/a.example", "certificates/ca/b.example"}) {
		t.Fatalf("list: %q %v", list, err)
	}
	all, err := s.List(ctx, "certificates", true)
	if err != nil || !slices.Contains(all, "certificates/ca") || !slices.Contains(all, "certificates/ca/a.example/a.example.key") || len(all) != 10 {
		t.Fatalf("recursive list: %q %v", all, err)
	}
	fi, err := s.Stat(ctx, "certificates/ca/a.example/a.example.crt")
	if err != nil || !fi.IsTerminal || fi.Size != 6 || fi.Modified.IsZero() {
		t.Fatalf("stat file: %+v %v", fi, err)
	}
	di, err := s.Stat(ctx, "certificates/ca/a.example")
	if err != nil || di.IsTerminal {
		t.Fatalf("stat dir: %+v %v", di, err)
	}
	if !s.Exists(ctx, "certificates/ca") || !s.Exists(ctx, "acme/ca/users/ops@example/ops.key") {
		t.Fatal("exists")
	}

	// Delete removes a prefix by components: certificates/ca goes,
	// certificates/cab stays.
	if err := s.Delete(ctx, "certificates/ca"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.example/a.example.key") || s.Exists(ctx, "certificates/ca") {
		t.Fatal("prefix not deleted")
	}
	if !s.Exists(ctx, "certificates/cab/x/x.crt") {
		t.Fatal("delete crossed a component boundary")
	}

	// Nothing is stored in clear: no value appears in a backup of the store.
	var backup bytes.Buffer
	if err := db.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"secret-a", "account", "not under certificates/ca"} {
		if bytes.Contains(backup.Bytes(), []byte(v)) {
			t.Errorf("%q is stored unsealed", v)
		}
	}

	// A value moved to another key does not open: seals are bound to keys.
	var rec *blobRecord
	_ = db.View(func(tx *store.Tx) error { rec, _ = blobs.Get(tx, "certificates/cab/x/x.crt"); return nil })
	_ = db.Update(func(tx *store.Tx) error { return blobs.Put(tx, "moved", rec) })
	if _, err := s.Load(ctx, "moved"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a value under the wrong key opened: %v", err)
	}

	if err := s.Store(ctx, "/bad/", []byte("x")); err == nil {
		t.Fatal("a key with slashes at the ends was stored")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Store(cctx, "k", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestStorageLocks(t *testing.T) {
	db, box := testDB(t)
	a, b := NewStorage(db, box), NewStorage(db, box)
	a.LockTTL, b.LockTTL = 2*time.Second, 2*time.Second
	defer b.Close()
	ctx := context.Background()

	if err := a.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_a.example"); ok || err != nil {
		t.Fatalf("second holder got the lock: %v %v", ok, err)
	}
	// A live holder keeps its lock past the TTL by refreshing it.
	time.Sleep(3 * time.Second)
	if ok, _ := b.TryLock(ctx, "issue_cert_a.example"); ok {
		t.Fatal("a refreshed lock expired")
	}

	// Lock waits for Unlock.
	var got atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Lock(ctx, "issue_cert_a.example"); err == nil {
			got.Store(true)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	if got.Load() {
		t.Fatal("Lock did not wait")
	}
	if err := a.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !got.Load() {
		t.Fatal("Lock did not get the released lock")
	}
	if err := b.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}

	// A holder that dies stops refreshing; its lock expires and another
	// takes it.
	if err := a.Lock(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	stop, _ := a.takeHeld("dead") // the holder "dies": no more refreshes
	close(stop)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Lock(wctx, "dead"); err != nil {
		t.Fatalf("lock of a dead holder never expired: %v", err)
	}
	// The dead holder's late Unlock must not free the new holder's lock.
	if err := a.Unlock(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.TryLock(ctx, "dead"); ok {
		t.Fatal("a stale holder's Unlock freed someone else's lock")
	}

	// A waiter honours its context.
	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	if err := a.Lock(cctx, "dead"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting Lock with a deadline: %v", err)
	}

	// Close releases what is held and refuses further calls.
	a.Close()
	if _, err := a.Load(ctx, "x"); !errors.Is(err, ErrStorageClosed) {
		t.Fatalf("after close: %v", err)
	}
}
