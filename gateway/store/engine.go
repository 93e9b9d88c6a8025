package store

import (
	"context"
	"errors"
	"io"
)

// engine is where the store's keys live: embedded Badger or etcd. Tables,
// indexes, TTL checks, retries, hooks and migrations are written once, above
// it; an engine only reads and writes keys in transactions.
type engine interface {
	// update runs fn in one read-write transaction attempt and commits it.
	// A conflict with a concurrent writer is errConflict, after which the
	// DB runs fn again.
	update(fn func(kvTxn) error) error
	// view runs fn in a read-only transaction: all its reads see one
	// moment.
	view(fn func(kvTxn) error) error
	// load writes entries into an empty store, outside the transaction
	// rules (restore).
	load(entries []entry) error
	// clear deletes every store key (storePrefixes), after a load failed
	// part-way.
	clear() error
	// ready reports whether the engine can serve reads now; for a remote
	// engine it asks the server.
	ready(ctx context.Context) error
	// maxTxnBytes is about the most one transaction may write: Badger
	// refuses a batch over 15 % of its memtable, etcd a request over its
	// max-request-bytes.
	maxTxnBytes() int
	close() error
}

// kvTxn is one transaction of an engine. Keys are strings; values are
// opaque bytes with an optional expiry (Unix seconds, zero: never).
type kvTxn interface {
	// get returns the key's entry; errKeyNotFound if there is none. An
	// expired entry may still be returned: the caller checks expiry on its
	// own clock.
	get(key string) (entry, error)
	set(e entry) error
	delete(key string) error
	// scan calls fn for each key with prefix, in key order (reverse:
	// descending), starting just after `after` when it is not empty, until
	// fn returns false or an error. Writes of this transaction are seen.
	scan(prefix string, o scanOrder, fn func(entry) (bool, error)) error
}

// scanOrder says where a scan starts and which way it walks.
type scanOrder struct {
	reverse bool
	// after is a full key: the scan starts just past it.
	after string
}

// entry is one key with its value and expiry.
type entry struct {
	key       string
	value     []byte
	expiresAt uint64 // Unix seconds; zero: never
}

// live reports whether e has not expired at unix second now.
func (e entry) live(now int64) bool {
	return e.expiresAt == 0 || uint64(now) < e.expiresAt
}

var (
	errKeyNotFound = errors.New("key not found")
	errConflict    = errors.New("transaction conflict")
)

// dump writes every key of the store, one consistent snapshot, to w in the
// portable backup format.
func dump(eng engine, w io.Writer) error {
	bw, err := newBackupWriter(w)
	if err != nil {
		return err
	}
	err = eng.view(func(txn kvTxn) error {
		for _, prefix := range storePrefixes {
			err := txn.scan(prefix, scanOrder{}, func(e entry) (bool, error) {
				return true, bw.write(e)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bw.close()
}
