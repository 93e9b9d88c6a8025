package ratelimit

import (
	"sync"
	"time"

	"github.com/berthgw/berth/internal/lru"
)

// Backoff counts failures per key (an account name) and locks the key
// after a threshold: the first lock lasts Base, each further failure
// doubles it, up to Max. Success resets the key. A key with no failure for
// Max is forgotten. Memory is bounded like the Limiter's: past MaxKeys the
// least recently touched key is dropped.
//
// State lives in memory; a caller that wants it to survive a restart saves
// State after each change and hands it back with Restore.
type Backoff struct {
	threshold int
	base, max time.Duration
	now       func() time.Time
	mu        sync.Mutex
	keys      *lru.Map[*failures]
}

type failures struct {
	count       int
	last        time.Time
	lockedUntil time.Time
}

// State is one key's failure record, for keeping it across restarts.
type State struct {
	// Failures is the count of consecutive failures.
	Failures int `json:"failures"`
	// Last is the time of the latest failure.
	Last time.Time `json:"last"`
	// LockedUntil is when the lock ends; zero or past when unlocked.
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// ForgetAt is when a Backoff drops this state by itself: after its lock
// and after Max has passed since its last failure, whichever is later.
func (b *Backoff) ForgetAt(st State) time.Time {
	forget := st.Last.Add(b.max)
	if st.LockedUntil.After(forget) {
		return st.LockedUntil
	}
	return forget
}

// BackoffOptions configures a Backoff.
type BackoffOptions struct {
	// Threshold is the number of consecutive failures that locks a key;
	// zero disables locking.
	Threshold int
	Base, Max time.Duration
	MaxKeys   int
	Now       func() time.Time
}

// NewBackoff builds a Backoff.
func NewBackoff(opts BackoffOptions) *Backoff {
	b := &Backoff{threshold: opts.Threshold, base: opts.Base, max: opts.Max, now: opts.Now}
	if b.now == nil {
		b.now = time.Now
	}
	if b.max < b.base {
		b.max = b.base
	}
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	b.keys = lru.New[*failures](maxKeys)
	return b
}

// Locked returns how long key stays locked, or 0.
func (b *Backoff) Locked(key string) time.Duration {
	if b.threshold <= 0 {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.keys.Get(key)
	if !ok || !now.Before(f.lockedUntil) {
		return 0
	}
	return f.lockedUntil.Sub(now)
}

// Fail records a failure for key and returns the lock it now carries (0
// while under the threshold).
func (b *Backoff) Fail(key string) time.Duration {
	if b.threshold <= 0 {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.keys.Get(key)
	if !ok {
		f = &failures{}
		b.keys.Put(key, f)
	}
	st, lock := b.Next(State{Failures: f.count, Last: f.last, LockedUntil: f.lockedUntil}, now)
	f.count, f.last, f.lockedUntil = st.Failures, st.Last, st.LockedUntil
	return lock
}

// Next returns the record after one more failure at now and the lock it
// brings (0 while under the threshold), without touching any key: for a
// caller that keeps the record elsewhere, such as a store shared by
// replicas, and counts in its own transaction.
func (b *Backoff) Next(st State, now time.Time) (State, time.Duration) {
	if b.threshold <= 0 {
		return st, 0
	}
	if now.Sub(st.Last) > b.max && !now.Before(st.LockedUntil) {
		st = State{}
	}
	st.Failures++
	st.Last = now
	if st.Failures < b.threshold {
		return st, 0
	}
	lock := b.base
	for i := b.threshold; i < st.Failures && lock < b.max; i++ {
		lock *= 2
	}
	lock = min(lock, b.max)
	st.LockedUntil = now.Add(lock)
	return st, lock
}

// LockedAt returns how long st stays locked at now.
func (b *Backoff) LockedAt(st State, now time.Time) time.Duration {
	if b.threshold <= 0 || !now.Before(st.LockedUntil) {
		return 0
	}
	return st.LockedUntil.Sub(now)
}

// State returns key's failure record, or false when it has none.
func (b *Backoff) State(key string) (State, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.keys.Get(key)
	if !ok {
		return State{}, false
	}
	return State{Failures: f.count, Last: f.last, LockedUntil: f.lockedUntil}, true
}

// Restore puts back a record saved from State, unless it is already
// forgotten. A lock longer than Max (saved under an older setting) is
// shortened to end at most Max from now.
func (b *Backoff) Restore(key string, st State) {
	if b.threshold <= 0 || st.Failures <= 0 {
		return
	}
	now := b.now()
	if !now.Before(b.ForgetAt(st)) {
		return
	}
	if limit := now.Add(b.max); st.LockedUntil.After(limit) {
		st.LockedUntil = limit
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys.Put(key, &failures{count: st.Failures, last: st.Last, lockedUntil: st.LockedUntil})
}

// Reset forgets key's failures, after a successful sign-in.
func (b *Backoff) Reset(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys.Remove(key)
}
