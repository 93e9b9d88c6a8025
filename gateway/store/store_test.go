package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type account struct {
	Name    string    `json:"name"`
	Email   string    `json:"email"`
	Groups  []string  `json:"groups"`
	Expires time.Time `json:"expires"`
	Count   int       `json:"count"`
}

func accounts() *Table[account] {
	return NewTable("accounts",
		Index[account]{Name: "name", Unique: true, Values: func(a *account) []string { return []string{strings.ToLower(a.Name)} }},
		Index[account]{Name: "email", Unique: true, Values: func(a *account) []string { return []string{a.Email} }},
		Index[account]{Name: "group", Values: func(a *account) []string { return a.Groups }},
	).WithExpiry(func(a *account) time.Time { return a.Expires })
}

func openStore(t *testing.T, opts Options) *DB {
	t.Helper()
	db, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestUniqueIndex(t *testing.T) { eachBackend(t, testUniqueIndex) }

func testUniqueIndex(t *testing.T, fresh func(*testing.T) Options) {
	db := openStore(t, fresh(t))
	tab := accounts()
	must(t, db.Update(func(tx *Tx) error {
		return tab.Insert(tx, "a1", &account{Name: "Alice", Email: "a@x", Groups: []string{"dev", "ops"}})
	}))

	tests := []struct {
		name string
		id   string
		rec  account
		want error
	}{
		{"same name other case", "a2", account{Name: "ALICE", Email: "b@x"}, ErrDuplicate},
		{"same email", "a2", account{Name: "bob", Email: "a@x"}, ErrDuplicate},
		{"same id", "a1", account{Name: "carol", Email: "c@x"}, ErrExists},
		{"distinct", "a3", account{Name: "dave", Email: "d@x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Update(func(tx *Tx) error { return tab.Insert(tx, tt.id, &tt.rec) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// A failed insert changed nothing: bob's email is free, a2 absent.
	must(t, db.View(func(tx *Tx) error {
		if _, err := tab.Get(tx, "a2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a2 should not exist: %v", err)
		}
		_, id, err := tab.GetBy(tx, "email", "a@x")
		if err != nil || id != "a1" {
			t.Errorf("email index: %q %v", id, err)
		}
		ids, _ := tab.IDsBy(tx, "group", "ops")
		if len(ids) != 1 || ids[0] != "a1" {
			t.Errorf("group index: %v", ids)
		}
		return nil
	}))

	// Renaming frees the old value and takes the new one.
	must(t, db.Update(func(tx *Tx) error {
		return tab.Put(tx, "a1", &account{Name: "alicia", Email: "a@x", Groups: []string{"dev"}})
	}))
	must(t, db.Update(func(tx *Tx) error { return tab.Insert(tx, "a4", &account{Name: "alice", Email: "e@x"}) }))
	must(t, db.View(func(tx *Tx) error {
		if ids, _ := tab.IDsBy(tx, "group", "ops"); len(ids) != 0 {
			t.Errorf("stale plain index entry: %v", ids)
		}
		return nil
	}))
	// Deleting frees everything.
	must(t, db.Update(func(tx *Tx) error { return tab.Delete(tx, "a1") }))
	must(t, db.Update(func(tx *Tx) error { return tab.Insert(tx, "a5", &account{Name: "alicia", Email: "a@x"}) }))
	if err := db.Update(func(tx *Tx) error { return tab.Delete(tx, "a1") }); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestTTLCheckedInCode(t *testing.T) { eachBackend(t, testTTLCheckedInCode) }

func testTTLCheckedInCode(t *testing.T, fresh func(*testing.T) Options) {
	now := time.Now()
	var offset atomic.Int64
	opts := fresh(t)
	opts.Clock = func() time.Time { return now.Add(time.Duration(offset.Load())) }
	db := openStore(t, opts)
	tab := accounts()
	must(t, db.Update(func(tx *Tx) error {
		return tab.Insert(tx, "t1", &account{Name: "temp", Email: "t@x", Expires: now.Add(time.Hour)})
	}))
	must(t, db.View(func(tx *Tx) error {
		_, err := tab.Get(tx, "t1")
		return err
	}))
	// The engine still holds the key (Badger's clock and etcd's lease have
	// not moved), so only the store's check can hide it.
	offset.Store(int64(2 * time.Hour))
	must(t, db.View(func(tx *Tx) error {
		if _, err := tab.Get(tx, "t1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired record visible: %v", err)
		}
		if _, _, err := tab.GetBy(tx, "name", "temp"); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired record visible through index: %v", err)
		}
		n := 0
		_ = tab.Scan(tx, ScanOptions{}, func(string, *account) (bool, error) { n++; return true, nil })
		if n != 0 {
			t.Errorf("scan saw %d expired records", n)
		}
		return nil
	}))
	// An expired record's unique values are free again.
	must(t, db.Update(func(tx *Tx) error { return tab.Insert(tx, "t2", &account{Name: "temp", Email: "t@x"}) }))
}

func TestScanPageAndIDs(t *testing.T) { eachBackend(t, testScanPageAndIDs) }

func testScanPageAndIDs(t *testing.T, fresh func(*testing.T) Options) {
	db := openStore(t, fresh(t))
	tab := accounts()
	var ids []string
	for i := 0; i < 25; i++ {
		id := NewID("acc")
		ids = append(ids, id)
		must(t, db.Update(func(tx *Tx) error {
			return tab.Insert(tx, id, &account{Name: fmt.Sprint("n", i), Email: fmt.Sprint(i, "@x"), Count: i})
		}))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids are not increasing in creation order")
	}
	must(t, db.View(func(tx *Tx) error {
		items, total, err := tab.Page(tx, 3, 10, false, nil)
		if err != nil || total != 25 || len(items) != 5 || items[0].Count != 20 {
			t.Errorf("page 3: total=%d len=%d err=%v", total, len(items), err)
		}
		items, total, _ = tab.Page(tx, 1, 3, true, func(a *account) bool { return a.Count%2 == 0 })
		if total != 13 || len(items) != 3 || items[0].Count != 24 || items[2].Count != 20 {
			t.Errorf("reverse filtered page: total=%d %+v", total, items)
		}
		items, _, _ = tab.Page(tx, 9, 10, false, nil)
		if len(items) != 0 || items == nil {
			t.Errorf("page past end should be empty and non-nil: %#v", items)
		}
		var after []int
		_ = tab.Scan(tx, ScanOptions{After: ids[10], Reverse: true}, func(_ string, a *account) (bool, error) {
			after = append(after, a.Count)
			return len(after) < 3, nil
		})
		if fmt.Sprint(after) != "[9 8 7]" {
			t.Errorf("cursor scan: %v", after)
		}
		return nil
	}))
	for _, id := range ids {
		if !strings.HasPrefix(id, "acc_") || len(id) != len("acc_")+26 {
			t.Fatalf("id shape: %q", id)
		}
	}
}

func TestConflictRetry(t *testing.T) { eachBackend(t, testConflictRetry) }

func testConflictRetry(t *testing.T, fresh func(*testing.T) Options) {
	db := openStore(t, fresh(t))
	tab := accounts()
	must(t, db.Update(func(tx *Tx) error { return tab.Insert(tx, "c", &account{Name: "c", Email: "c@x"}) }))
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				err := db.Update(func(tx *Tx) error {
					a, err := tab.Get(tx, "c")
					if err != nil {
						return err
					}
					a.Count++
					return tab.Put(tx, "c", a)
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	must(t, db.View(func(tx *Tx) error {
		a, err := tab.Get(tx, "c")
		if err == nil && a.Count != 200 {
			t.Errorf("lost updates: count=%d, want 200", a.Count)
		}
		return err
	}))
}

func TestRestartKeepsDataAndLocks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tab := accounts()
	db, err := Open(Options{Dir: dir, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Update(func(tx *Tx) error { return tab.Insert(tx, "k", &account{Name: "keep", Email: "k@x"}) }))

	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v %v", st.Mode().Perm(), err)
	}
	must(t, db.Close())
	if err := db.View(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("view after close: %v", err)
	}

	db, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must(t, db.View(func(tx *Tx) error {
		a, _, err := tab.GetBy(tx, "name", "keep")
		if err == nil && a.Email != "k@x" {
			t.Errorf("record changed across restart: %+v", a)
		}
		return err
	}))
}

func TestMigrations(t *testing.T) { eachBackend(t, testMigrations) }

func testMigrations(t *testing.T, fresh func(*testing.T) Options) {
	place := fresh(t)
	at := func(migrations ...Migration) Options {
		o := place
		o.Migrations = migrations
		return o
	}
	tab := accounts()
	var ran []int
	m := func(n int) Migration {
		return func(tx *Tx) error {
			ran = append(ran, n)
			return tab.Put(tx, fmt.Sprint("m", n), &account{Name: fmt.Sprint("m", n), Email: fmt.Sprint(n)})
		}
	}
	db, err := Open(at(m(1)))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(at(m(1), m(2)))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := schemaVersion(db)
	db.Close()
	if fmt.Sprint(ran) != "[1 2]" || v != 2 {
		t.Fatalf("ran %v version %d; want [1 2] and 2", ran, v)
	}
	// An older binary (fewer migrations) must refuse newer data.
	if _, err := Open(at(m(1))); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("older binary opened newer data: %v", err)
	}
	// The refused open let go of the directory: the right binary opens it.
	db, err = Open(at(m(1), m(2)))
	if err != nil {
		t.Fatalf("open after a refused open: %v", err)
	}
	db.Close()
}

// A backup restores into either backend, whichever wrote it.
func TestBackupRestoreRoundTrip(t *testing.T) {
	bs := backends(t)
	for _, from := range bs {
		for _, to := range bs {
			t.Run(from.name+"-to-"+to.name, func(t *testing.T) {
				testBackupRestore(t, from.fresh, to.fresh)
			})
		}
	}
}

func testBackupRestore(t *testing.T, from, to func(*testing.T) Options) {
	tab := accounts()
	src := openStore(t, from(t))
	later := time.Now().Add(time.Hour)
	for i := 0; i < 50; i++ {
		must(t, src.Update(func(tx *Tx) error {
			a := &account{Name: fmt.Sprint("u", i), Email: fmt.Sprint(i), Groups: []string{"g"}}
			if i%10 == 0 {
				a.Expires = later
			}
			return tab.Insert(tx, fmt.Sprint("r", i), a)
		}))
	}
	var buf bytes.Buffer
	must(t, src.Backup(&buf))

	dst := openStore(t, to(t))
	must(t, dst.Restore(bytes.NewReader(buf.Bytes())))
	must(t, dst.View(func(tx *Tx) error {
		_, total, err := tab.Page(tx, 1, 1, false, nil)
		if total != 50 {
			t.Errorf("restored %d records, want 50", total)
		}
		a, _, err2 := tab.GetBy(tx, "name", "u42")
		if err2 != nil || a.Email != "42" {
			t.Errorf("unique index after restore: %+v %v", a, err2)
		}
		ids, _ := tab.IDsBy(tx, "group", "g")
		if len(ids) != 50 {
			t.Errorf("plain index after restore: %d", len(ids))
		}
		// Expiry travels with the record, to the second.
		e, err3 := tx.kv.get(tab.recordKey("r20"))
		if err3 != nil || e.expiresAt != uint64(later.Unix()) {
			t.Errorf("expiry after restore: %d %v, want %d", e.expiresAt, err3, later.Unix())
		}
		return err
	}))
	// A backup of the restored store is the same file.
	var again bytes.Buffer
	must(t, dst.Backup(&again))
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("a backup of the restored store differs from the original backup (%d vs %d bytes)", again.Len(), buf.Len())
	}
	// Restoring over data is refused and changes nothing.
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty store: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOnCommitReportsCommittedWrites(t *testing.T) {
	eachBackend(t, testOnCommitReportsCommittedWrites)
}

func testOnCommitReportsCommittedWrites(t *testing.T, fresh func(*testing.T) Options) {
	db := openStore(t, fresh(t))
	tab := accounts()
	var got [][]Change
	db.OnCommit(func(c []Change) { got = append(got, slices.Clone(c)) })

	tests := []struct {
		name string
		fn   func(tx *Tx) error
		want []Change // nil: the hook must not run
	}{
		{"insert", func(tx *Tx) error {
			return tab.Insert(tx, "a1", &account{Name: "alice", Email: "a@x"})
		}, []Change{{"accounts", "a1"}}},
		{"two puts", func(tx *Tx) error {
			if err := tab.Put(tx, "a1", &account{Name: "alice", Email: "a2@x"}); err != nil {
				return err
			}
			return tab.Put(tx, "b1", &account{Name: "bob", Email: "b@x"})
		}, []Change{{"accounts", "a1"}, {"accounts", "b1"}}},
		{"delete", func(tx *Tx) error { return tab.Delete(tx, "b1") }, []Change{{"accounts", "b1"}}},
		{"rolled back", func(tx *Tx) error {
			if err := tab.Put(tx, "c1", &account{Name: "carol", Email: "c@x"}); err != nil {
				return err
			}
			return errors.New("changed my mind")
		}, nil},
		{"refused duplicate", func(tx *Tx) error {
			return tab.Insert(tx, "d1", &account{Name: "ALICE", Email: "d@x"})
		}, nil},
		{"reads only", func(tx *Tx) error { _, err := tab.Get(tx, "a1"); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			_ = db.Update(tt.fn)
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("hook ran with %v", got)
			case tt.want != nil && (len(got) != 1 || !slices.Equal(got[0], tt.want)):
				t.Fatalf("hook got %v, want one call with %v", got, tt.want)
			}
		})
	}
}

// schemaVersion returns the number of migrations applied.
func schemaVersion(db *DB) (int, error) {
	var v int
	err := db.View(func(tx *Tx) error {
		var err error
		v, err = tx.schemaVersion()
		return err
	})
	return v, err
}

func TestFirstIDsBy(t *testing.T) { eachBackend(t, testFirstIDsBy) }

func testFirstIDsBy(t *testing.T, fresh func(*testing.T) Options) {
	db := openStore(t, fresh(t))
	tab := accounts()
	must(t, db.Update(func(tx *Tx) error {
		for i, id := range []string{"a3", "a1", "a5", "a2", "a4"} {
			if err := tab.Insert(tx, id, &account{Name: id, Email: id + "@x", Groups: []string{"ops"}}); err != nil {
				return err
			}
			if i == 2 {
				if err := tab.Insert(tx, "b1", &account{Name: "b1", Email: "b1@x", Groups: []string{"dev"}}); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	must(t, db.Update(func(tx *Tx) error { return tab.Delete(tx, "a1") }))
	must(t, db.View(func(tx *Tx) error {
		for _, tc := range []struct {
			n    int
			want string
		}{{1, "a2"}, {3, "a2 a3 a4"}, {10, "a2 a3 a4 a5"}} {
			ids, err := tab.FirstIDsBy(tx, "group", "ops", tc.n)
			if err != nil || strings.Join(ids, " ") != tc.want {
				t.Errorf("first %d: %v %v, want %s", tc.n, ids, err, tc.want)
			}
		}
		return nil
	}))
}
