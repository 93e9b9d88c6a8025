// Package store keeps Berth's control-plane state in an embedded Badger
// database: typed tables of JSON records with unique and plain secondary
// indexes, TTL records, conflict-retried transactions, schema migrations,
// value-log GC and online backup.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Errors a caller can test with errors.Is.
var (
	// ErrNotFound means no live record has that id or index value.
	ErrNotFound = errors.New("not found")
	// ErrExists means Insert found a record with the same id.
	ErrExists = errors.New("already exists")
	// ErrDuplicate means a unique index already maps the value to another record.
	ErrDuplicate = errors.New("duplicate value in unique index")
	// ErrLocked means another process holds the data directory.
	ErrLocked = errors.New("data directory is in use by another berth process")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("store is closed")
)

// Options says where and how to open the store.
type Options struct {
	// Dir is the data directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory, for unit tests.
	InMemory bool
	// SyncWrites fsyncs before a write is acknowledged.
	SyncWrites bool
	// MemTableSize and BlockCacheSize size Badger's memory; zero picks the
	// small control-plane defaults below.
	MemTableSize   int64
	BlockCacheSize int64
	// Logger receives Badger's warnings and errors.
	Logger *slog.Logger
	// Migrations run in order on open; the schema version is the number of
	// migrations applied.
	Migrations []Migration
	// Clock returns the current time; nil means time.Now. Tests move it to
	// prove expiry is checked in code, not only by Badger.
	Clock func() time.Time
}

// Migration upgrades stored data by one schema version inside a transaction.
type Migration func(tx *Tx) error

// DB is the opened store. It is safe for concurrent use.
type DB struct {
	bdb      *badger.DB
	log      *slog.Logger
	clock    func() time.Time
	inMemory bool
	mu       sync.RWMutex
	closed   bool

	// commitHooks run after each committed write transaction (guarded by mu).
	commitHooks []func([]Change)
	// unlock releases the data directory's lock after Badger closes.
	unlock func()
}

// Change names a record that a committed transaction put or deleted.
type Change struct {
	Table string
	ID    string
}

// OnCommit registers fn to run after every committed transaction that put
// or deleted records, with those records, before Update returns to its
// caller. Caches of stored records use it to drop what a write made stale,
// so a write is visible to the next read that consults the cache. fn runs
// on the writer's goroutine: it must be quick and must not write to the
// store. An offline Restore runs no hooks.
func (db *DB) OnCommit(fn func([]Change)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.commitHooks = append(db.commitHooks, fn)
}

// Defaults of unset Options.MemTableSize and BlockCacheSize: small, for
// a control plane's data.
const (
	DefaultMemTableSize   = 8 << 20
	DefaultBlockCacheSize = 16 << 20
)

const (
	// maxTxnRetries bounds retries of a conflicting transaction; with the
	// jittered backoff below that is over a second of contention, far
	// beyond what a control plane's writes see, but a burst of writers on
	// one record (a counter, a session) must not fail.
	maxTxnRetries = 64
	schemaKey     = "meta/schema_version"
)

// Open opens (creating if needed) the store. A directory held by another
// live process fails at once with ErrLocked; a lock file left by a crashed
// process is no obstacle because the lock is an flock the kernel drops.
func Open(opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bo := badger.DefaultOptions(opts.Dir)
	unlock := func() {}
	if opts.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	} else {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if err := os.Chmod(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("restrict data dir: %w", err)
		}
		release, err := lockDir(opts.Dir)
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("open %s: %w (stop the other berth serve first)", opts.Dir, ErrLocked)
		}
		if err != nil {
			return nil, err
		}
		unlock = release
	}
	mem := opts.MemTableSize
	if mem == 0 {
		mem = DefaultMemTableSize
	}
	cache := opts.BlockCacheSize
	if cache == 0 {
		cache = DefaultBlockCacheSize
	}
	// A control plane holds megabytes, not terabytes: Badger's defaults
	// (64 MiB memtables ×5, 256 MiB cache, 1 GiB vlog files) would make an
	// edge box pay hundreds of MiB for a few thousand records.
	bo = bo.
		WithSyncWrites(opts.SyncWrites).
		WithMemTableSize(mem).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(cache).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithLogger(badgerLogger{logger})

	bdb, err := badger.Open(bo)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("open badger at %s: %w", opts.Dir, err)
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	db := &DB{bdb: bdb, log: logger, clock: clock, inMemory: opts.InMemory, unlock: unlock}
	if err := db.migrate(opts.Migrations); err != nil {
		_ = db.Close() // closes Badger and releases the directory's lock
		return nil, err
	}
	return db, nil
}

// Close stops background work and closes Badger, flushing memtables.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	defer db.unlock()
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("close badger: %w", err)
	}
	return nil
}

// Ready reports whether the store is open and answering reads.
func (db *DB) Ready() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed || db.bdb.IsClosed() {
		return ErrClosed
	}
	return nil
}

// Sizes returns the bytes Badger uses for its LSM tree and value log.
func (db *DB) Sizes() (lsm, vlog int64) { return db.bdb.Size() }

// Update runs fn in a read-write transaction and commits it. On a write
// conflict with a concurrent transaction fn runs again (up to a bound), so
// fn must be free of side effects outside tx.
func (db *DB) Update(fn func(tx *Tx) error) error {
	if err := db.Ready(); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < maxTxnRetries; attempt++ {
		var tx *Tx
		err = db.bdb.Update(func(txn *badger.Txn) error {
			tx = &Tx{txn: txn, now: db.clock()}
			return fn(tx)
		})
		if !errors.Is(err, badger.ErrConflict) {
			if err == nil && len(tx.changes) > 0 {
				db.mu.RLock()
				hooks := db.commitHooks
				db.mu.RUnlock()
				for _, hook := range hooks {
					hook(tx.changes)
				}
			}
			return err
		}
		time.Sleep(conflictBackoff(attempt))
	}
	return fmt.Errorf("transaction kept conflicting after %d attempts: %w", maxTxnRetries, err)
}

// conflictBackoff is the wait before retry attempt+1: exponential from
// 1 ms to 32 ms, jittered so colliding writers spread out.
func conflictBackoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 5)
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(tx *Tx) error) error {
	if err := db.Ready(); err != nil {
		return err
	}
	return db.bdb.View(func(txn *badger.Txn) error { return fn(&Tx{txn: txn, now: db.clock()}) })
}

// Backup writes a full, consistent snapshot of the store to w while it
// keeps serving.
func (db *DB) Backup(w io.Writer) error {
	if err := db.Ready(); err != nil {
		return err
	}
	if _, err := db.bdb.Backup(w, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore loads a snapshot made by Backup. It refuses a store that already
// holds records other than its schema version, so a restore can never mix
// two histories.
func (db *DB) Restore(r io.Reader) error {
	empty := true
	err := db.View(func(tx *Tx) error {
		it := tx.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if string(it.Item().Key()) != schemaKey {
				empty = false
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !empty {
		return errors.New("restore: the target data directory is not empty")
	}
	if err := db.bdb.Load(r, 64); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// RunGCEvery garbage-collects the value log every interval until ctx ends
// (Berth runs it as a component, stopped before Close). It returns at once
// for an in-memory store or an interval of zero.
func (db *DB) RunGCEvery(ctx context.Context, every time.Duration) {
	if every <= 0 || db.inMemory {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			db.RunGC()
		}
	}
}

// RunGC reclaims value-log space until Badger finds nothing worth rewriting.
func (db *DB) RunGC() {
	for i := 0; i < 16; i++ {
		if err := db.bdb.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				db.log.Warn("value log gc", "err", err)
			}
			return
		}
	}
}

func (db *DB) migrate(migrations []Migration) error {
	return db.Update(func(tx *Tx) error {
		have, err := tx.schemaVersion()
		if err != nil {
			return err
		}
		if have > len(migrations) {
			return fmt.Errorf("store schema version %d is newer than this berth knows (%d): refusing to run an older binary on newer data", have, len(migrations))
		}
		for i := have; i < len(migrations); i++ {
			if err := migrations[i](tx); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return tx.txn.Set([]byte(schemaKey), []byte(fmt.Sprint(len(migrations))))
	})
}

// Tx is one transaction. It is valid only inside the function given to
// Update or View.
type Tx struct {
	txn *badger.Txn
	now time.Time
	// changes lists the records this transaction put or deleted, for the
	// commit hooks.
	changes []Change
}

// Now is the time the transaction started; TTL checks use it so one
// transaction sees one consistent clock.
func (tx *Tx) Now() time.Time { return tx.now }

func (tx *Tx) schemaVersion() (int, error) {
	item, err := tx.txn.Get([]byte(schemaKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	var v int
	err = item.Value(func(b []byte) error {
		_, err := fmt.Sscan(string(b), &v)
		return err
	})
	return v, err
}

// badgerLogger sends Badger's chatter to slog: its Infof lines (compaction
// and replay progress) become debug so an operator's log stays readable.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Log(context.Background(), slog.LevelDebug, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Log(context.Background(), slog.LevelDebug-4, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
