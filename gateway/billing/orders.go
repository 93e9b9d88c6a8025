package billing

import (
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// Order states. An order is pending until it is paid, canceled, or
// expires unpaid; the last three are final.
const (
	Pending  = "pending"
	Paid     = "paid"
	Canceled = "canceled"
	Expired  = "expired"
)

// Statuses are the order states a filter may name.
var Statuses = []string{Pending, Paid, Canceled, Expired}

// Order is one user's purchase of one plan. It keeps a copy of the plan
// as it was when ordered: a later change to the plan does not change what
// was bought.
type Order struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	PlanID    string    `json:"plan_id"`
	Plan      Plan      `json:"plan"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// ExpiresAt: a pending order not paid by then expires.
	ExpiresAt  time.Time `json:"expires_at"`
	PaidAt     time.Time `json:"paid_at,omitzero"`
	CanceledAt time.Time `json:"canceled_at,omitzero"`
	// PaidBy is "provider" or the id of the admin who marked it paid by
	// hand; Reason is theirs.
	PaidBy string `json:"paid_by,omitempty"`
	Reason string `json:"reason,omitempty"`
	// The provider's ids, once it has them.
	SessionID      string `json:"session_id,omitempty"`
	CustomerID     string `json:"customer_id,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
	// CheckoutURL is where the order is paid, once a checkout began: a
	// second checkout of the order sends the user back to the same page
	// (the provider would refuse a second session under the order's
	// idempotency key, and one order must never be payable twice).
	CheckoutURL string `json:"checkout_url,omitempty"`
}

var orders = store.NewTable[Order]("billing_orders",
	store.Index[Order]{Name: "user", Values: func(o *Order) []string { return []string{o.UserID} }},
	store.Index[Order]{Name: "subscription", Unique: true, Values: func(o *Order) []string { return []string{o.SubscriptionID} }},
	store.Index[Order]{Name: "pending_plan", Values: func(o *Order) []string {
		if o.Status != Pending {
			return nil
		}
		return []string{o.PlanID}
	}},
)

// ErrOrderNotFound: no such order, or not the caller's.
var ErrOrderNotFound = fault.New(fault.NotFound, "order not found")

// PendingFor is how long an order waits to be paid.
const PendingFor = 24 * time.Hour

// maxPendingPerUser bounds a user's unpaid orders, so that ordering cannot
// fill the store.
const maxPendingPerUser = 10

// maxUnpaidPerDay bounds the orders a user placed in the last PendingFor
// and did not pay, canceled ones included: canceling frees a pending slot,
// so without it order-and-cancel filled the store and the audit log (and,
// with a checkout each, made a provider session each) without end.
const maxUnpaidPerDay = 30

// CreateOrder places user's order for plan planID.
func (s *Service) CreateOrder(user, planID string) (*Order, error) {
	var o *Order
	err := s.db.Update(func(tx *store.Tx) error {
		p, err := plans.Get(tx, planID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && p.Archived) {
			return fault.New(fault.Invalid, "plan_id names no plan on sale")
		}
		if err != nil {
			return err
		}
		now := s.now()
		ids, err := orders.IDsBy(tx, "user", user)
		if err != nil {
			return err
		}
		pending, today := 0, 0
		for _, id := range ids {
			cur, err := orders.Get(tx, id)
			if err != nil {
				return err
			}
			if cur.Status == Pending && now.Before(cur.ExpiresAt) {
				pending++
			}
			if cur.Status != Paid && now.Sub(cur.CreatedAt) < PendingFor {
				today++
			}
		}
		if pending >= maxPendingPerUser {
			return fault.New(fault.Conflict, "you have %d unpaid orders; pay or cancel one first", pending)
		}
		if today >= maxUnpaidPerDay {
			return fault.New(fault.Conflict, "you placed %d orders in the last %s without paying them; try again later", today, PendingFor)
		}
		o = &Order{ID: store.NewID("ord"), UserID: user, PlanID: p.ID, Plan: *p, Status: Pending,
			CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(PendingFor)}
		return orders.Insert(tx, o.ID, o)
	})
	return o, err
}

// Order returns the order with id; a user who is not its owner (and not
// an admin, visible == nil) gets ErrOrderNotFound.
func (s *Service) Order(id, visibleTo string) (*Order, error) {
	var o *Order
	err := s.db.View(func(tx *store.Tx) (err error) { o, err = orders.Get(tx, id); return err })
	if errors.Is(err, store.ErrNotFound) || (err == nil && visibleTo != "" && o.UserID != visibleTo) {
		return nil, ErrOrderNotFound
	}
	if err != nil {
		return nil, err
	}
	s.expire(o)
	return o, nil
}

// expire shows a pending order past its time as expired (the sweep
// records it; reads never show a stale pending).
func (s *Service) expire(o *Order) {
	if o.Status == Pending && !s.now().Before(o.ExpiresAt) {
		o.Status = Expired
	}
}

// OrderFilter narrows Orders; zero fields do not filter.
type OrderFilter struct {
	UserID string
	Status string
	PlanID string
}

// Orders returns a page of orders, newest first.
func (s *Service) Orders(f OrderFilter, page, pageSize int) ([]Order, int, error) {
	var items []Order
	var total int
	err := s.db.View(func(tx *store.Tx) (err error) {
		items, total, err = orders.Page(tx, page, pageSize, true, func(o *Order) bool {
			s.expire(o)
			return (f.UserID == "" || o.UserID == f.UserID) && (f.Status == "" || o.Status == f.Status) && (f.PlanID == "" || o.PlanID == f.PlanID)
		})
		return err
	})
	return items, total, err
}

// Cancel cancels a pending order; visibleTo limits it to its owner ("":
// an admin). Canceling a canceled order changes nothing and is not an
// error; a paid or expired one is a 409.
func (s *Service) Cancel(id, visibleTo string) (*Order, error) {
	var o *Order
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		if o, err = s.ownOrder(tx, id, visibleTo); err != nil {
			return err
		}
		s.expire(o)
		switch o.Status {
		case Canceled:
			return nil
		case Paid, Expired:
			return fault.New(fault.Conflict, "the order is %s; only a pending order can be canceled", o.Status)
		}
		now := s.now()
		o.Status, o.CanceledAt, o.UpdatedAt = Canceled, now, now
		return orders.Put(tx, o.ID, o)
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// MarkPaid records an admin's payment of a pending order by hand, with a
// reason (audited by the handler), and grants its entitlement.
func (s *Service) MarkPaid(id, admin, reason string) (*Order, error) {
	if reason == "" || len(reason) > 500 {
		return nil, fault.New(fault.Invalid, "reason is required (at most 500 characters)")
	}
	var o *Order
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		if o, err = s.ownOrder(tx, id, ""); err != nil {
			return err
		}
		s.expire(o)
		if o.Status != Pending {
			return fault.New(fault.Conflict, "the order is %s; only a pending order can be paid", o.Status)
		}
		return s.pay(tx, o, admin, reason)
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// pay moves o to paid and grants its plan to its user, within tx; the
// events report both.
func (s *Service) pay(tx *store.Tx, o *Order, by, reason string) error {
	now := s.now()
	o.Status, o.PaidAt, o.UpdatedAt, o.PaidBy, o.Reason = Paid, now, now, by, reason
	if err := orders.Put(tx, o.ID, o); err != nil {
		return err
	}
	p := o.Plan
	err := events.Emit(tx, events.Event{Type: events.OrderPaid, Time: now, Actor: actorOf(by, o.UserID), Recipient: o.UserID,
		Summary: fmt.Sprintf("Order %s for plan %q was paid.", o.ID, p.Name),
		Data:    map[string]string{"order": o.ID, "plan": p.ID, "amount": fmt.Sprint(p.Price), "currency": p.Currency}})
	if err != nil {
		return err
	}
	return s.grant(tx, o)
}

func actorOf(by, user string) string {
	if by == "provider" || by == "" {
		return user
	}
	return by
}

// ownOrder reads order id within tx; visibleTo limits it to its owner.
func (s *Service) ownOrder(tx *store.Tx, id, visibleTo string) (*Order, error) {
	o, err := orders.Get(tx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && visibleTo != "" && o.UserID != visibleTo) {
		return nil, ErrOrderNotFound
	}
	return o, err
}
