// Package store keeps Berth's control-plane state, in an embedded Badger
// database or in etcd shared by replicas: typed tables of JSON records with
// unique and plain secondary indexes, TTL records, serializable
// conflict-retried transactions, commit hooks, schema migrations and
// online backup in a format both backends restore.
package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
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

// Backends of Options.Backend.
const (
	BackendBadger = "badger"
	BackendEtcd   = "etcd"
)

// Options says where and how to open the store.
type Options struct {
	// Backend is BackendBadger (the default when empty) or BackendEtcd.
	Backend string
	// Dir is Badger's data directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory, for unit tests (Badger only).
	InMemory bool
	// SyncWrites fsyncs before a write is acknowledged (Badger; etcd
	// always does).
	SyncWrites bool
	// MemTableSize and BlockCacheSize size Badger's memory; zero picks the
	// small control-plane defaults below.
	MemTableSize   int64
	BlockCacheSize int64
	// Etcd says how to reach etcd when Backend is BackendEtcd.
	Etcd EtcdOptions
	// Logger receives the engine's warnings and errors.
	Logger *slog.Logger
	// Migrations run in order on open; the schema version is the number of
	// migrations applied.
	Migrations []Migration
	// Clock returns the current time; nil means time.Now. Tests move it to
	// prove expiry is checked in code, not only by the engine.
	Clock func() time.Time
}

// Migration upgrades stored data by one schema version inside a transaction.
type Migration func(tx *Tx) error

// DB is the opened store. It is safe for concurrent use.
type DB struct {
	eng    engine
	log    *slog.Logger
	clock  func() time.Time
	mu     sync.RWMutex
	closed bool

	// commitHooks run after each committed write transaction, and
	// foreignHooks after those of other replicas only (guarded by mu).
	commitHooks  []func([]Change)
	foreignHooks []func([]Change)

	// readyMu guards the last answer of Ready, readyErr from readyAt.
	readyMu  sync.Mutex
	readyAt  time.Time
	readyErr error

	// turns lets a transaction that kept losing run alone: every attempt
	// holds it shared, and one that lost exclusiveAfter times takes it
	// exclusively, so the other writers of this process wait for it.
	turns sync.RWMutex
}

// exclusiveAfter is how many conflicts a transaction suffers before it
// runs alone. Optimism is not fair: on one record written by many
// goroutines, a writer can lose to fresh ones over and over (Badger gave
// up on 1 to 4 in 10 000 such Updates after 256 attempts; see
// docs/benchmarks.md, "Store operations"). Alone in this process it
// cannot lose on Badger; on etcd only to other replicas.
const exclusiveAfter = 16

// Change names a record that a committed transaction put or deleted.
type Change struct {
	Table string
	ID    string
}

// OnForeignCommit registers fn to run after each transaction another
// process committed to the same store (another replica on etcd), with the
// records it wrote, after the OnCommit functions; FollowChanges runs them.
// It is for what this process must redo when another writes, beyond
// dropping stale cache entries (reloading signing keys, reconnecting a
// cluster). fn runs on the follower's goroutine and must not write to the
// store.
func (db *DB) OnForeignCommit(fn func([]Change)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.foreignHooks = append(db.foreignHooks, fn)
}

// AllChanged, in the changes a hook receives, means any record may have
// changed: a replica lost track of another's writes (see FollowChanges),
// and caches should drop everything.
var AllChanged = Change{Table: "*"}

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

const (
	// maxTxnRetries bounds retries of a conflicting transaction; with the
	// jittered backoff below that is about a second of contention, far
	// beyond what a control plane's writes see, but a burst of writers on
	// one record (a counter, a session) must not fail.
	maxTxnRetries = 256
	schemaKey     = "meta/schema_version"
)

// Open opens (creating if needed) the store. A Badger directory held by
// another live process fails at once with ErrLocked; a lock file left by a
// crashed process is no obstacle because the lock is an flock the kernel
// drops. On etcd, any number of processes share the store.
func Open(opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	var eng engine
	var err error
	switch opts.Backend {
	case "", BackendBadger:
		eng, err = openBadger(opts, logger)
	case BackendEtcd:
		eng, err = openEtcd(opts.Etcd, clock, logger)
	default:
		err = fmt.Errorf("store: unknown backend %q (want %s or %s)", opts.Backend, BackendBadger, BackendEtcd)
	}
	if err != nil {
		return nil, err
	}
	db := &DB{eng: eng, log: logger, clock: clock}
	if err := db.migrate(opts.Migrations); err != nil {
		_ = db.Close() // closes the engine and releases the directory's lock
		return nil, err
	}
	return db, nil
}

// Close closes the engine: Badger flushes its memtables; an etcd client
// disconnects.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	return db.eng.close()
}

// readyTimeout bounds Ready's question to a remote engine; readyFor is
// how long its answer stands.
const (
	readyTimeout = 2 * time.Second
	readyFor     = time.Second
)

// Ready reports whether the store is open and answering reads; on etcd it
// asks the cluster, so a replica cut off from etcd is not ready. /readyz
// calls it for anyone who asks, so the answer is kept for readyFor and
// one question at a time goes to etcd: a flood of probes is not a flood
// of quorum reads.
func (db *DB) Ready() error {
	if err := db.open(); err != nil {
		return err
	}
	db.readyMu.Lock()
	defer db.readyMu.Unlock()
	if !db.readyAt.IsZero() && time.Since(db.readyAt) < readyFor {
		return db.readyErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	db.readyErr, db.readyAt = db.eng.ready(ctx), time.Now()
	return db.readyErr
}

func (db *DB) open() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	return nil
}

// FollowChanges runs the commit hooks, then the foreign-commit hooks, for
// writes made through other DBs on the same store — other replicas on
// etcd — until ctx ends, so this replica's caches drop what another's
// write made stale. Writes through this DB are left out: their hooks ran
// when they committed. On Badger, whose only writer is this DB, it returns
// at once.
func (db *DB) FollowChanges(ctx context.Context) error {
	e, ok := db.eng.(*etcdEngine)
	if !ok {
		return nil
	}
	return e.follow(ctx, func(changes []Change) {
		db.mu.RLock()
		hooks := append(slices.Clone(db.commitHooks), db.foreignHooks...)
		db.mu.RUnlock()
		for _, hook := range hooks {
			hook(changes)
		}
	})
}

// Fresh reports whether this DB's change watch (FollowChanges) was known
// to be caught up with etcd within maxAge: if it was not, writes by other
// replicas (a revoked key, a disabled user) may not have reached its
// caches, which should then not be trusted. Always true on Badger, whose
// only writer is this DB.
func (db *DB) Fresh(maxAge time.Duration) bool {
	e, ok := db.eng.(*etcdEngine)
	if !ok {
		return true
	}
	heard := e.lastHeard.Load()
	return heard != 0 && time.Since(time.Unix(0, heard)) <= maxAge
}

// RecordsPerTxn is how many records of writesEach writes (the record, its
// index entries) one transaction may write on this store, with room left
// for a few writes besides. Badger has no practical bound; etcd allows
// store.etcd.max_txn_ops writes a transaction. Work whose size grows with
// what users do (their sessions, the audit log) goes in batches of this.
func (db *DB) RecordsPerTxn(writesEach int) int {
	e, ok := db.eng.(*etcdEngine)
	if !ok {
		return 1000
	}
	return max(1, (e.maxOps-16)/max(1, writesEach))
}

// Sizes returns the bytes Badger uses for its LSM tree and value log; zero
// on etcd, whose size its own metrics report.
func (db *DB) Sizes() (lsm, vlog int64) {
	if b, ok := db.eng.(*badgerEngine); ok {
		return b.bdb.Size()
	}
	return 0, 0
}

// Update runs fn in a read-write transaction and commits it. The
// transaction is serializable: it commits only if nothing it read has
// changed since, else fn runs again (up to a bound), so fn must be free of
// side effects outside tx; in particular it must not call Update (a
// transaction that runs alone would wait for itself).
func (db *DB) Update(fn func(tx *Tx) error) error {
	if err := db.open(); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < maxTxnRetries; attempt++ {
		var tx *Tx
		lock, unlock := db.turns.RLock, db.turns.RUnlock
		if attempt >= exclusiveAfter {
			lock, unlock = db.turns.Lock, db.turns.Unlock
		}
		lock()
		err = db.eng.update(func(kv kvTxn) error {
			tx = &Tx{kv: kv, now: db.clock(), writable: true, full: db.eng.maxTxnBytes() / 2}
			return fn(tx)
		})
		unlock()
		if !errors.Is(err, errConflict) {
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

// conflictBackoff is the wait before retry attempt+1: 1, 2, then 4 ms,
// jittered by half either way so colliding writers spread out. It stops
// growing early on purpose: with a longer ceiling (it was 32 ms) a writer
// that lost a few times slept while fresh writers, retrying after 1 ms,
// kept winning, and on one hot record it could lose 64 times in a row
// (docs/benchmarks.md, "Store operations").
func conflictBackoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 2)
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// View runs fn in a read-only transaction: every read sees the same
// moment.
func (db *DB) View(fn func(tx *Tx) error) error {
	if err := db.open(); err != nil {
		return err
	}
	return db.eng.view(func(kv kvTxn) error { return fn(&Tx{kv: kv, now: db.clock()}) })
}

// Backup writes a full, consistent snapshot of the store to w while it
// keeps serving, in a format either backend restores (see backup.go).
func (db *DB) Backup(w io.Writer) error {
	if err := db.open(); err != nil {
		return err
	}
	if err := dump(db.eng, w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore loads a snapshot made by Backup, on either backend; a Badger
// store also takes a backup made by Berth before the portable format. It
// refuses a store that already holds records other than its schema
// version, so a restore can never mix two histories, and it loads nothing
// from a damaged file.
func (db *DB) Restore(r io.Reader) error {
	empty := true
	err := db.View(func(tx *Tx) error {
		for _, prefix := range storePrefixes {
			err := tx.kv.scan(prefix, scanOrder{}, func(e entry) (bool, error) {
				empty = e.key == schemaKey
				return empty, nil
			})
			if err != nil || !empty {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !empty {
		return errors.New("restore: the target store is not empty")
	}
	br := bufio.NewReader(r)
	if legacy, err := isLegacyBackup(br); err != nil {
		return fmt.Errorf("restore: %w", err)
	} else if legacy {
		b, ok := db.eng.(*badgerEngine)
		if !ok {
			return errors.New("restore: this backup was made by an older Berth in Badger's own format; restore it into a Badger store, then back that up again to move it to etcd")
		}
		if err := b.bdb.Load(br, 64); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return nil
	}
	entries, err := readBackup(br)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, e := range entries {
		// A backup holds the store's keys only; anything else (an
		// election, say) would outlive its purpose forever.
		if !isStoreKey(e.key) {
			return fmt.Errorf("restore: the backup holds a key that is not the store's (%.40q); nothing was loaded", e.key)
		}
	}
	if err := db.eng.load(entries); err != nil {
		if cerr := db.eng.clear(); cerr != nil {
			return fmt.Errorf("restore: %w; removing what was loaded also failed (%v): remove it by hand before trying again", err, cerr)
		}
		return fmt.Errorf("restore: %w (what was loaded was removed; the store is empty again)", err)
	}
	return nil
}

// RunGCEvery garbage-collects Badger's value log every interval until ctx
// ends (Berth runs it as a component, stopped before Close). It returns at
// once for etcd (which compacts itself), an in-memory store or an interval
// of zero.
func (db *DB) RunGCEvery(ctx context.Context, every time.Duration) {
	b, ok := db.eng.(*badgerEngine)
	if every <= 0 || !ok || b.inMemory {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.runGC()
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
		if have == len(migrations) {
			// Nothing to write: replicas opening an up-to-date etcd store
			// at once must not contend on the schema key.
			return nil
		}
		for i := have; i < len(migrations); i++ {
			if err := migrations[i](tx); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return tx.kv.set(entry{key: schemaKey, value: []byte(fmt.Sprint(len(migrations)))})
	})
}

// Tx is one transaction. It is valid only inside the function given to
// Update or View.
type Tx struct {
	kv       kvTxn
	now      time.Time
	writable bool
	// changes lists the records this transaction put or deleted, for the
	// commit hooks; written, the tables whose generation key it moved.
	changes []Change
	written []string
	// size is about the bytes this transaction wrote so far; full, the
	// size at which Full says so.
	size, full int
}

// Full reports whether the transaction has written half of what one
// transaction may carry on this store. Batches whose records users size
// (a notification's delivery carries its message) stop there and go on in
// the next transaction: RecordsPerTxn bounds a batch's writes, not its
// bytes.
func (tx *Tx) Full() bool { return tx.full > 0 && tx.size >= tx.full }

// wrote counts a write of key and value towards Full.
func (tx *Tx) wrote(key string, value []byte) { tx.size += len(key) + len(value) }

// Now is the time the transaction started; TTL checks use it so one
// transaction sees one consistent clock.
func (tx *Tx) Now() time.Time { return tx.now }

func (tx *Tx) schemaVersion() (int, error) {
	e, err := tx.kv.get(schemaKey)
	if errors.Is(err, errKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	var v int
	if _, err := fmt.Sscan(string(e.value), &v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
