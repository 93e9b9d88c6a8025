package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// Write skew through a phantom: each writer scans the table, sums what it
// finds and inserts a new record (a key no other writer reads) holding
// sum+1. Serializable transactions commit one after another in effect, so
// the values are exactly 1..n; a store that compared only the keys a scan
// returned would let two writers see the same sum.
func TestScansConflictWithWritesToTheirTable(t *testing.T) {
	eachBackend(t, func(t *testing.T, fresh func(*testing.T) Options) {
		db := openStore(t, fresh(t))
		tab := accounts()
		const writers, each = 6, 5
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					id := fmt.Sprintf("w%d-%d", w, i)
					err := db.Update(func(tx *Tx) error {
						n := 0
						err := tab.Scan(tx, ScanOptions{}, func(string, *account) (bool, error) { n++; return true, nil })
						if err != nil {
							return err
						}
						return tab.Insert(tx, id, &account{Name: id, Email: id, Count: n + 1})
					})
					if err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		var counts []int
		must(t, db.View(func(tx *Tx) error {
			return tab.Scan(tx, ScanOptions{}, func(_ string, a *account) (bool, error) {
				counts = append(counts, a.Count)
				return true, nil
			})
		}))
		slices.Sort(counts)
		for i, c := range counts {
			if c != i+1 {
				t.Fatalf("counts %v: two writers saw the same table", counts)
			}
		}
		if len(counts) != writers*each {
			t.Fatalf("%d records, want %d", len(counts), writers*each)
		}
	})
}

// Index scans take part too: a writer that reads who is in a group and
// adds a member only when the group has fewer than limit members never
// lets the group grow past limit, however many write at once.
func TestIndexScansConflictWithWrites(t *testing.T) {
	eachBackend(t, func(t *testing.T, fresh func(*testing.T) Options) {
		db := openStore(t, fresh(t))
		tab := accounts()
		const limit = 3
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprint("g", w)
				err := db.Update(func(tx *Tx) error {
					ids, err := tab.IDsBy(tx, "group", "ops")
					if err != nil || len(ids) >= limit {
						return err
					}
					return tab.Insert(tx, id, &account{Name: id, Email: id, Groups: []string{"ops"}})
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		must(t, db.View(func(tx *Tx) error {
			ids, err := tab.IDsBy(tx, "group", "ops")
			if len(ids) != limit {
				t.Errorf("group has %d members %v, want %d", len(ids), ids, limit)
			}
			return err
		}))
	})
}
