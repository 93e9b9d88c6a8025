package store

import (
	"fmt"
	"strings"
	"testing"
)

type sizedRecord struct{ ID, Body string }

// TestFullKeepsBatchesCommittable: RecordsPerTxn bounds a batch's writes,
// not its bytes, and a batch of large records can be more than one
// transaction may carry (Badger refuses 1 000 records of 3 KB at the
// default memtable). A batch that stops when Tx.Full says so commits,
// whatever the records' size, and makes progress with one record even
// when that record alone fills the transaction.
func TestFullKeepsBatchesCommittable(t *testing.T) {
	eachBackend(t, func(t *testing.T, fresh func(*testing.T) Options) {
		db, err := Open(fresh(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		table := NewTable[sizedRecord]("sized", Index[sizedRecord]{Name: "body", Values: func(r *sizedRecord) []string { return []string{r.Body[:8]} }})
		per := db.RecordsPerTxn(3)
		body := strings.Repeat("x", 3000)
		if _, ok := db.eng.(*badgerEngine); ok {
			// The limit this test is about: without stopping, Badger
			// refuses the batch and nothing of it is written.
			err := db.Update(func(tx *Tx) error {
				for i := range per {
					if err := table.Insert(tx, fmt.Sprintf("whole-%04d", i), &sizedRecord{Body: body}); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				t.Fatalf("%d records of 3 KB in one Badger transaction were accepted: the test no longer shows the limit", per)
			}
		}
		for _, tc := range []struct{ size, records int }{
			{3000, per},    // a whole batch of mid-sized records
			{700 << 10, 3}, // records each over half of what a transaction carries
		} {
			size := tc.size
			written, txns := 0, 0
			for written < tc.records {
				var n int
				err := db.Update(func(tx *Tx) error {
					n = 0
					if tx.Full() {
						return fmt.Errorf("a new transaction is already full")
					}
					for written+n < tc.records {
						if n > 0 && tx.Full() {
							break
						}
						id := fmt.Sprintf("%d-%04d", size, written+n)
						if err := table.Insert(tx, id, &sizedRecord{ID: id, Body: strings.Repeat("y", size)}); err != nil {
							return err
						}
						n++
					}
					return nil
				})
				if err != nil {
					t.Fatalf("records of %d B after %d written: %v", size, written, err)
				}
				written, txns = written+n, txns+1
			}
			count := 0
			if err := db.View(func(tx *Tx) error {
				return table.Scan(tx, ScanOptions{}, func(id string, _ *sizedRecord) (bool, error) {
					if strings.HasPrefix(id, fmt.Sprint(size)+"-") {
						count++
					}
					return true, nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			split := size*tc.records > db.eng.maxTxnBytes()/2
			if count != written || written != tc.records || split != (txns > 1) {
				t.Errorf("records of %d B: %d stored of %d written, in %d transactions (want all %d, in more than one: %v)", size, count, written, txns, tc.records, split)
			}
		}
	})
}
