package identity

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/store"
)

// failureRecord keeps one name's sign-in failures across restarts. It is
// keyed by the keyed digest of the case-folded name, so the table holds no
// names (people type passwords into the name field) and its size does not
// depend on what was typed. It expires by itself when the lockout would
// forget it.
type failureRecord struct {
	ratelimit.State
	ForgetAt time.Time `json:"forget_at"`
}

// signinFailures is the persisted side of the sign-in lockout: memory
// decides, and this table gives memory back a name's state when it does
// not know the name (after a restart, or after a flood of other names
// evicted it; see lockedFor), so neither lifts a brute-force attack's
// lock.
var signinFailures = store.NewTable[failureRecord]("signin_failures").
	WithExpiry(func(r *failureRecord) time.Time { return r.ForgetAt })

// lockKey is the lockout's key for a sign-in name: existing or not,
// case-folded, as a digest.
func (s *Service) lockKey(username string) string {
	return s.keys.digest("signin-name", strings.ToLower(username))
}

// saveFailures writes key's current failure state in tx, after a failure
// was counted.
func (s *Service) saveFailures(tx *store.Tx, key string) error {
	st, ok := s.lockout.State(key)
	if !ok {
		return nil
	}
	rec := &failureRecord{State: st, ForgetAt: s.lockout.ForgetAt(st)}
	if err := signinFailures.Put(tx, key, rec); err != nil {
		return fmt.Errorf("save sign-in failures: %w", err)
	}
	return nil
}

// clearFailures deletes key's saved state in tx, after a success.
func clearFailures(tx *store.Tx, key string) error {
	if err := signinFailures.Delete(tx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("clear sign-in failures: %w", err)
	}
	return nil
}

// countFailure counts a failure for key and saves the new state in its own
// transaction, for checks that write nothing else (confirming or changing
// a password). It returns the lock the failure brought.
func (s *Service) countFailure(key string) time.Duration {
	lock := s.lockout.Fail(key)
	if err := s.db.Update(func(tx *store.Tx) error { return s.saveFailures(tx, key) }); err != nil {
		s.log.Error("sign-in failures not saved", "err", err)
	}
	return lock
}

// lockedFor returns how long key stays locked. Memory answers when it
// knows key; otherwise the store does, which holds keys that memory
// dropped (a flood of other names evicts them) and puts them back.
func (s *Service) lockedFor(key string) time.Duration {
	if _, ok := s.lockout.State(key); !ok {
		var rec *failureRecord
		err := s.db.View(func(tx *store.Tx) error {
			var err error
			rec, err = signinFailures.Get(tx, key)
			return err
		})
		switch {
		case err == nil:
			s.lockout.Restore(key, rec.State)
		case !errors.Is(err, store.ErrNotFound):
			s.log.Error("sign-in failures not read", "err", err)
		}
	}
	return s.lockout.Locked(key)
}

// resetFailures forgets key's failures after a success, in memory and in
// the store (which may hold them although memory dropped them).
func (s *Service) resetFailures(key string) {
	s.lockout.Reset(key)
	if err := s.db.Update(func(tx *store.Tx) error { return clearFailures(tx, key) }); err != nil {
		s.log.Error("sign-in failures not cleared", "err", err)
	}
}
