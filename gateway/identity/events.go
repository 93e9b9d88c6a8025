package identity

import (
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// actorID is who an event names as its actor: the principal's user, or
// the system when no one is at hand.
func actorID(p *Principal) string {
	if p == nil || p.UserID == "" {
		return events.SystemActor
	}
	return p.UserID
}

// emitAccount reports a change an administrator made to an account, in
// the transaction that makes it.
func (s *Service) emitAccount(tx *store.Tx, typ string, actor *Principal, u *User) error {
	var summary string
	switch typ {
	case events.UserCreated:
		summary = fmt.Sprintf("User %q was created.", u.Username)
	case events.UserDisabled:
		summary = fmt.Sprintf("User %q was disabled; their sessions and keys stop working.", u.Username)
	case events.UserPasswordReset:
		summary = fmt.Sprintf("The password of user %q was reset; their sessions were ended.", u.Username)
	}
	return events.Emit(tx, events.Event{Type: typ, Time: s.now(), Actor: actorID(actor), Summary: summary,
		Data: map[string]string{"user": u.ID, "username": u.Username}})
}

// emitLockedOut reports that a failed password check locked u's account,
// in tx, a transaction after that failure. The lock itself was written
// before the check (beginAttempt counts first), and only the attempt that
// brought it is told so (its lockIfFails): one event per lock. It is
// emitted only while the lock still stands, since a concurrent success
// may have cleared it. Names that are not accounts lock too, but are not
// reported: anyone can lock any name, and the event is about accounts.
func (s *Service) emitLockedOut(tx *store.Tx, key string, u *User) error {
	rec, err := signinFailures.Get(tx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	now := s.now()
	if !now.Before(rec.LockedUntil) {
		return nil
	}
	until := rec.LockedUntil.UTC()
	return events.Emit(tx, events.Event{Type: events.UserLockedOut, Time: now,
		Summary: fmt.Sprintf("Repeated failed sign-ins locked user %q until %s.", u.Username, until.Format(time.RFC3339)),
		Data:    map[string]string{"username": u.Username, "until": until.Format(time.RFC3339)}})
}

// reportLockedOut is emitLockedOut in a transaction of its own, for the
// password checks that record nothing else after a failure (ConfirmPassword,
// ChangePassword). A failure to record it is logged: the caller's answer
// is the refusal either way.
func (s *Service) reportLockedOut(key string, u *User) {
	if err := s.db.Update(func(tx *store.Tx) error { return s.emitLockedOut(tx, key, u) }); err != nil {
		s.log.Error("user.locked_out not recorded", "user_id", u.ID, "err", err)
	}
}
