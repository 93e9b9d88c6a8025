package edgetls

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// blobRecord is one certmagic storage value. Every value is sealed, not
// only the private keys: certmagic decides the key layout (certificates,
// keys, ACME account keys, challenge tokens), and sealing all of it means a
// new kind of secret in a later certmagic version can never land in the
// store in clear.
type blobRecord struct {
	Sealed   []byte    `json:"sealed"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// lockRecord is a held certmagic lock. It expires unless its holder keeps
// refreshing it, so a lock whose holder died frees itself.
type lockRecord struct {
	Holder    string    `json:"holder"`
	ExpiresAt time.Time `json:"expires_at"`
}

var (
	blobs = store.NewTable[blobRecord]("tls_storage")
	locks = store.NewTable[lockRecord]("tls_locks").WithExpiry(func(l *lockRecord) time.Time { return l.ExpiresAt })
)

// Lock timing. A lock lives lockTTL past its last refresh; the holder
// refreshes it every lockTTL/4, and waiters poll every lockPoll.
const (
	defaultLockTTL = 20 * time.Second
	lockPoll       = 250 * time.Millisecond
)

// ErrStorageClosed is returned by Storage after Close.
var ErrStorageClosed = errors.New("tls storage is closed")

// Storage is a certmagic.Storage (with Locker) kept in Berth's Badger
// store, so certificates, their keys and ACME accounts live in the data
// directory with everything else and are covered by its backups. Values
// are sealed with the secret key, bound to their storage key.
type Storage struct {
	db  *store.DB
	box *secretbox.Box
	// LockTTL is how long a lock outlives its last refresh; tests shorten it.
	LockTTL time.Duration
	// holder names this Storage's locks, so Unlock never frees a lock that
	// expired and was taken by someone else meanwhile.
	holder string

	// mu is held for reading by every operation and for writing by Close,
	// so Close waits for operations in flight and the DB can then be closed
	// under no one.
	mu     sync.RWMutex
	closed bool
	heldMu sync.Mutex
	held   map[string]chan struct{} // lock name → stops its refresher
	wg     sync.WaitGroup
}

var (
	_ certmagic.Storage   = (*Storage)(nil)
	_ certmagic.TryLocker = (*Storage)(nil)
)

// NewStorage returns a Storage on db sealing values with box.
func NewStorage(db *store.DB, box *secretbox.Box) *Storage {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Storage{db: db, box: box, LockTTL: defaultLockTTL, holder: hex.EncodeToString(id[:]), held: map[string]chan struct{}{}}
}

func sealContext(key string) string { return "tls-storage/" + key }

// begin guards an operation against Close.
func (s *Storage) begin() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrStorageClosed
	}
	return nil
}

func (s *Storage) end() { s.mu.RUnlock() }

// Close stops lock refreshers and makes every later call fail, after the
// calls in flight finish. Locks still held are released.
func (s *Storage) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	names := make([]string, 0, len(s.held))
	for name, stop := range s.held {
		close(stop)
		names = append(names, name)
	}
	s.held = map[string]chan struct{}{}
	s.mu.Unlock()
	s.wg.Wait()
	// Best effort: the process is going away, and an unreleased lock would
	// only expire on its own a little later.
	_ = s.db.Update(func(tx *store.Tx) error {
		for _, name := range names {
			if l, err := locks.Get(tx, name); err == nil && l.Holder == s.holder {
				_ = locks.Delete(tx, name)
			}
		}
		return nil
	})
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.ContainsRune(key, 0) {
		return fmt.Errorf("tls storage: invalid key %q", key)
	}
	return nil
}

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	rec := &blobRecord{Sealed: s.box.Seal(value, sealContext(key)), Size: int64(len(value)), Modified: time.Now().UTC()}
	if err := s.db.Update(func(tx *store.Tx) error { return blobs.Put(tx, key, rec) }); err != nil {
		return fmt.Errorf("tls storage: store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	var rec *blobRecord
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		rec, err = blobs.Get(tx, key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("tls storage: %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("tls storage: load %s: %w", key, err)
	}
	plain, err := s.box.Open(rec.Sealed, sealContext(key))
	if err != nil {
		return nil, fmt.Errorf("tls storage: open %s (was the secret key changed?): %w", key, err)
	}
	return plain, nil
}

// Delete removes key and, when key is a directory, every key under it.
// A missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	err := s.db.Update(func(tx *store.Tx) error {
		ids := []string{key}
		err := scanPrefix(tx, key+"/", func(id string, _ *blobRecord) { ids = append(ids, id) })
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := blobs.Delete(tx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tls storage: delete %s: %w", key, err)
	}
	return nil
}

// scanPrefix calls fn for each record whose id starts with prefix.
func scanPrefix(tx *store.Tx, prefix string, fn func(id string, r *blobRecord)) error {
	opts := store.ScanOptions{}
	if prefix != "" {
		// Ids sort after their prefix, so start just past it.
		opts.After = prefix
	}
	return blobs.Scan(tx, opts, func(id string, r *blobRecord) (bool, error) {
		if !strings.HasPrefix(id, prefix) {
			return false, nil
		}
		fn(id, r)
		return true, nil
	})
}

// Exists reports whether key is a file or a directory.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys directly under dir or, when recursive, every file
// and directory below it. An empty or missing dir is fs.ErrNotExist, as
// certmagic's file storage answers.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	prefix := ""
	if dir != "" {
		prefix = strings.TrimSuffix(dir, "/") + "/"
	}
	var keys []string
	seen := map[string]bool{}
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	err := s.db.View(func(tx *store.Tx) error {
		return scanPrefix(tx, prefix, func(id string, _ *blobRecord) {
			rest := id[len(prefix):]
			parts := strings.Split(rest, "/")
			if !recursive {
				add(prefix + parts[0])
				return
			}
			for i := range parts {
				add(prefix + strings.Join(parts[:i+1], "/"))
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("tls storage: list %s: %w", dir, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("tls storage: %s: %w", dir, fs.ErrNotExist)
	}
	slices.Sort(keys)
	return keys, nil
}

// Stat describes key: a file with its size and time, or a directory.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := ctx.Err(); err != nil {
		return certmagic.KeyInfo{}, err
	}
	if err := s.begin(); err != nil {
		return certmagic.KeyInfo{}, err
	}
	defer s.end()
	var info certmagic.KeyInfo
	found := false
	err := s.db.View(func(tx *store.Tx) error {
		rec, err := blobs.Get(tx, key)
		if err == nil {
			info, found = certmagic.KeyInfo{Key: key, Modified: rec.Modified, Size: rec.Size, IsTerminal: true}, true
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var dirMod time.Time
		err = scanPrefix(tx, key+"/", func(_ string, r *blobRecord) {
			found = true
			if r.Modified.After(dirMod) {
				dirMod = r.Modified
			}
		})
		info = certmagic.KeyInfo{Key: key, Modified: dirMod}
		return err
	})
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("tls storage: stat %s: %w", key, err)
	}
	if !found {
		return certmagic.KeyInfo{}, fmt.Errorf("tls storage: %s: %w", key, fs.ErrNotExist)
	}
	return info, nil
}

// Lock takes the named lock, waiting while another holder has it and it
// has not expired.
func (s *Storage) Lock(ctx context.Context, name string) error {
	t := time.NewTicker(lockPoll)
	defer t.Stop()
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tls storage: waiting for lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLock takes the named lock if it is free or expired.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.end()
	if name == "" || strings.ContainsRune(name, 0) {
		return false, fmt.Errorf("tls storage: invalid lock name %q", name)
	}
	ttl := s.LockTTL
	got := false
	err := s.db.Update(func(tx *store.Tx) error {
		got = false
		_, err := locks.Get(tx, name)
		if err == nil {
			return nil // held and not expired (expired records read as absent)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		got = true
		return locks.Put(tx, name, &lockRecord{Holder: s.holder, ExpiresAt: tx.Now().Add(ttl)})
	})
	if err != nil {
		return false, fmt.Errorf("tls storage: lock %s: %w", name, err)
	}
	if got {
		stop := make(chan struct{})
		s.setHeld(name, stop)
		s.wg.Add(1)
		go s.refresh(name, stop, ttl)
	}
	return got, nil
}

// setHeld records a lock's refresher. Callers hold mu for reading, which
// many may do at once, so held has its own mutex.
func (s *Storage) setHeld(name string, stop chan struct{}) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if old, ok := s.held[name]; ok {
		// Our own expired lock retaken: one refresher is enough.
		close(old)
	}
	s.held[name] = stop
}

func (s *Storage) takeHeld(name string) (chan struct{}, bool) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	stop, ok := s.held[name]
	delete(s.held, name)
	return stop, ok
}

// refresh keeps a held lock alive until stop is closed.
func (s *Storage) refresh(name string, stop chan struct{}, ttl time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			err := s.db.Update(func(tx *store.Tx) error {
				l, err := locks.Get(tx, name)
				if err != nil || l.Holder != s.holder {
					return fmt.Errorf("lock %s lost", name)
				}
				l.ExpiresAt = tx.Now().Add(ttl)
				return locks.Put(tx, name, l)
			})
			if err != nil {
				return
			}
		}
	}
}

// Unlock releases a lock this Storage holds.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	if stop, ok := s.takeHeld(name); ok {
		close(stop)
	}
	err := s.db.Update(func(tx *store.Tx) error {
		l, err := locks.Get(tx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if l.Holder != s.holder {
			return nil // expired and taken by another holder: not ours to free
		}
		return locks.Delete(tx, name)
	})
	if err != nil {
		return fmt.Errorf("tls storage: unlock %s: %w", name, err)
	}
	return nil
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string { return "berth-store" }

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
