package identity

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/store"
)

// failureRecord keeps one name's sign-in failures. It is keyed by the
// keyed digest of the case-folded name, so the table holds no
// names (people type passwords into the name field) and its size does not
// depend on what was typed. It expires by itself when the lockout would
// forget it.
type failureRecord struct {
	ratelimit.State
	ForgetAt time.Time `json:"forget_at"`
}

// signinFailures holds each name's sign-in failures: the lockout's one
// record, in the store every replica shares, so a name is locked on all of
// them at once and no restart or flood of other names lifts a lock.
var signinFailures = store.NewTable[failureRecord]("signin_failures").
	WithExpiry(func(r *failureRecord) time.Time { return r.ForgetAt })

// lockKey is the lockout's key for a sign-in name: existing or not,
// case-folded, as a digest.
func (s *Service) lockKey(username string) string {
	return s.keys.digest("signin-name", strings.ToLower(username))
}

// beginAttempt counts one password check for key before it is made, in one
// transaction on the shared store: while key is locked it refuses (wait
// > 0) and counts nothing; otherwise the attempt counts as a failure until
// a success clears it (resetFailures, or clearFailures in the success's
// own transaction). Counting first is what makes the threshold exact:
// guesses made at once, on one replica or several, are serialised by the
// store and the threshold-th one locks out the rest, where checking the
// lock first and counting after the slow password check let all of them
// through. lockIfFails is the lock this attempt brings if it fails.
func (s *Service) beginAttempt(key string) (wait, lockIfFails time.Duration, err error) {
	err = s.db.Update(func(tx *store.Tx) error {
		wait, lockIfFails = 0, 0
		var st ratelimit.State
		rec, err := signinFailures.Get(tx, key)
		switch {
		case err == nil:
			st = rec.State
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		now := s.now()
		if wait = s.lockout.LockedAt(st, now); wait > 0 {
			return nil
		}
		next, lock := s.lockout.Next(st, now)
		if next.Failures == 0 {
			return nil // locking is off
		}
		lockIfFails = lock
		return signinFailures.Put(tx, key, &failureRecord{State: next, ForgetAt: s.lockout.ForgetAt(next)})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count a sign-in attempt: %w", err)
	}
	return wait, lockIfFails, nil
}

// clearFailures deletes key's failures in tx, after a success.
func clearFailures(tx *store.Tx, key string) error {
	if err := signinFailures.Delete(tx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("clear sign-in failures: %w", err)
	}
	return nil
}

// resetFailures forgets key's failures after a success.
func (s *Service) resetFailures(key string) {
	if err := s.db.Update(func(tx *store.Tx) error { return clearFailures(tx, key) }); err != nil {
		s.log.Error("sign-in failures not cleared", "err", err)
	}
}
