package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Defaults of unset Options.MemTableSize and BlockCacheSize: small, for
// a control plane's data.
const (
	DefaultMemTableSize   = 8 << 20
	DefaultBlockCacheSize = 16 << 20
)

// badgerEngine keeps the keys in an embedded Badger database. Badger's own
// optimistic transactions give the serializable isolation the store
// promises.
type badgerEngine struct {
	bdb      *badger.DB
	log      *slog.Logger
	inMemory bool
	// unlock releases the data directory's lock after Badger closes.
	unlock func()
}

func openBadger(opts Options, logger *slog.Logger) (*badgerEngine, error) {
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
	//
	// The memtable is not made smaller still, although Badger allocates its
	// arena (about 1.3× MemTableSize) on the Go heap at Open. Its pages
	// become resident only as writes fill it, so an idle gateway pays
	// little for it (docs/benchmarks.md, "Idle footprint"); it does count
	// as live heap, so under load the collector lets garbage grow by as
	// much again between collections. But MemTableSize also sets the
	// largest transaction Badger accepts: 15% of it, 1.2 MiB at 8 MiB
	// (values of 1 MiB or more go to the value log and count only as
	// pointers). Batches of RecordsPerTxn records, and a record of just
	// under 1 MiB, need that room.
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
	return &badgerEngine{bdb: bdb, log: logger, inMemory: opts.InMemory, unlock: unlock}, nil
}

func (b *badgerEngine) update(fn func(kvTxn) error) error {
	err := b.bdb.Update(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
	if errors.Is(err, badger.ErrConflict) {
		return errConflict
	}
	return err
}

func (b *badgerEngine) view(fn func(kvTxn) error) error {
	return b.bdb.View(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
}

func (b *badgerEngine) load(entries []entry) error {
	wb := b.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range entries {
		be := badger.NewEntry([]byte(e.key), e.value)
		be.ExpiresAt = e.expiresAt
		if err := wb.SetEntry(be); err != nil {
			return err
		}
	}
	return wb.Flush()
}

func (b *badgerEngine) clear() error {
	for _, p := range storePrefixes {
		if err := b.bdb.DropPrefix([]byte(p)); err != nil {
			return err
		}
	}
	return nil
}

func (b *badgerEngine) ready(context.Context) error {
	if b.bdb.IsClosed() {
		return ErrClosed
	}
	return nil
}

func (b *badgerEngine) maxTxnBytes() int { return int(b.bdb.MaxBatchSize()) }

func (b *badgerEngine) close() error {
	defer b.unlock()
	if err := b.bdb.Close(); err != nil {
		return fmt.Errorf("close badger: %w", err)
	}
	return nil
}

// runGC reclaims value-log space until Badger finds nothing worth
// rewriting.
func (b *badgerEngine) runGC() {
	if b.inMemory {
		return
	}
	for i := 0; i < 16; i++ {
		if err := b.bdb.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				b.log.Warn("value log gc", "err", err)
			}
			return
		}
	}
}

// badgerTxn is a kvTxn on a Badger transaction.
type badgerTxn struct{ txn *badger.Txn }

func (t badgerTxn) get(key string) (entry, error) {
	item, err := t.txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return entry{}, errKeyNotFound
	}
	if err != nil {
		return entry{}, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return entry{}, err
	}
	return entry{key: key, value: v, expiresAt: item.ExpiresAt()}, nil
}

func (t badgerTxn) set(e entry) error {
	be := badger.NewEntry([]byte(e.key), e.value)
	be.ExpiresAt = e.expiresAt
	return t.txn.SetEntry(be)
}

func (t badgerTxn) delete(key string) error { return t.txn.Delete([]byte(key)) }

func (t badgerTxn) scan(prefix string, o scanOrder, fn func(entry) (bool, error)) error {
	p := []byte(prefix)
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: o.reverse, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	switch {
	case o.after != "":
		it.Seek([]byte(o.after))
		if it.Valid() && string(it.Item().Key()) == o.after {
			it.Next()
		}
	case o.reverse:
		// Seek to the largest key under the prefix.
		it.Seek(append(bytes.Clone(p), 0xff))
	default:
		it.Rewind()
	}
	for ; it.Valid(); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read %s: %w", item.Key(), err)
		}
		more, err := fn(entry{key: string(item.Key()), value: v, expiresAt: item.ExpiresAt()})
		if err != nil || !more {
			return err
		}
	}
	return nil
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
