package billing

import (
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// Entitlement is what a user's paid plan grants, until when. One per user:
// a new purchase replaces the previous grant.
type Entitlement struct {
	UserID  string       `json:"user_id"`
	PlanID  string       `json:"plan_id"`
	Plan    string       `json:"plan"`
	OrderID string       `json:"order_id"`
	Limits  Entitlements `json:"limits"`
	// ValidUntil: the end of the paid period (zero: a one-off purchase,
	// with no end).
	ValidUntil time.Time `json:"valid_until,omitzero"`
	GrantedAt  time.Time `json:"granted_at"`
}

func (e *Entitlement) inForce(now time.Time) bool {
	return e.ValidUntil.IsZero() || now.Before(e.ValidUntil)
}

// entitlements are keyed by user id.
var entitlements = store.NewTable[Entitlement]("billing_entitlements",
	store.Index[Entitlement]{Name: "plan", Values: func(e *Entitlement) []string { return []string{e.PlanID} }},
)

// grant gives o's user its plan, within tx: until one interval from now
// for a subscription paid by hand (the provider's period end replaces it
// when it reports one), with no end for a one-off plan.
func (s *Service) grant(tx *store.Tx, o *Order) error {
	now := s.now()
	e := &Entitlement{UserID: o.UserID, PlanID: o.PlanID, Plan: o.Plan.Name, OrderID: o.ID, Limits: o.Plan.Entitlements, GrantedAt: now}
	switch o.Plan.Interval {
	case Month:
		e.ValidUntil = now.AddDate(0, 1, 0)
	case Year:
		e.ValidUntil = now.AddDate(1, 0, 0)
	}
	prev, err := entitlements.Get(tx, o.UserID)
	if err == nil && prev.OrderID != o.ID {
		err = s.queueReplaced(tx, prev, o)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := entitlements.Put(tx, o.UserID, e); err != nil {
		return err
	}
	return events.Emit(tx, events.Event{Type: events.EntitlementChanged, Time: now, Actor: o.UserID, Recipient: o.UserID,
		Summary: fmt.Sprintf("Plan %q is now in force for user %s.", o.Plan.Name, o.UserID),
		Data:    map[string]string{"user": o.UserID, "plan": o.PlanID, "valid_until": formatTime(e.ValidUntil)}})
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// entitlementOf returns user's entitlement in force, within tx (the quota
// check reads it in the transaction that provisions); false when the user
// has none (the configured quota applies).
func entitlementOf(tx *store.Tx, user string, now time.Time) (*Entitlement, bool, error) {
	e, err := entitlements.Get(tx, user)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !e.inForce(now) {
		return nil, false, nil
	}
	return e, true, nil
}

// LimitsOf returns the quota in force for user, within tx: their plan's
// limits over the configured default, and whether they hold a plan.
func (s *Service) LimitsOf(tx *store.Tx, user string) (Entitlements, bool, error) {
	e, ok, err := entitlementOf(tx, user, s.now())
	if err != nil || !ok {
		return s.opts.DefaultLimits, false, err
	}
	return e.Limits.Or(s.opts.DefaultLimits), true, nil
}

// Entitlement returns the caller's entitlement in force, if any.
func (s *Service) Entitlement(user string) (*Entitlement, bool, error) {
	var e *Entitlement
	var ok bool
	err := s.db.View(func(tx *store.Tx) (err error) { e, ok, err = entitlementOf(tx, user, s.now()); return err })
	return e, ok, err
}
