package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// ErrMismatch: a provider event's amount, currency or customer does not
// match the order it names; it is refused (and audited by the handler).
var ErrMismatch = errors.New("the provider's event does not match the order")

// MaxWebhookBody is the largest webhook body Berth reads, the Stripe
// plugin's own limit: Stripe's events are a few kilobytes.
const MaxWebhookBody = 1 << 20

// errForeign: a provider event that names no order of Berth's (another
// product on the same provider account, another Berth's order). It is
// acknowledged and ignored: refused, the provider would retry it for days
// and then disable the endpoint, and Berth's own events with it.
var errForeign = errors.New("the provider's event is about no order of Berth's")

// Webhook verifies a provider webhook through the plugin (the body is
// passed exactly as it arrived) and applies its events, each once: a
// replayed event id is accepted and changes nothing. It returns how many
// events were applied.
func (s *Service) Webhook(ctx context.Context, header http.Header, body []byte) (int, error) {
	if len(body) > MaxWebhookBody {
		// Refused before the settings are unsealed and the body copied to
		// the plugin: anyone can post here.
		return 0, fault.New(fault.Invalid, "the webhook's body is over %d bytes", MaxWebhookBody)
	}
	var settings map[string]string
	if err := s.db.View(func(tx *store.Tx) (err error) { settings, err = s.settings(tx); return err }); err != nil {
		return 0, err
	}
	b, err := s.provider()
	if err != nil {
		return 0, err
	}
	evs, err := b.HandleWebhook(ctx, sdk.WebhookRequest{Settings: settings, Header: header, Body: body})
	switch {
	case errors.Is(err, sdk.ErrPermissionDenied):
		return 0, fault.Wrap(fault.Invalid, err, "the webhook's signature does not verify")
	case errors.Is(err, sdk.ErrInvalidArgument), errors.Is(err, sdk.ErrFailedPrecondition):
		return 0, fault.Wrap(fault.Invalid, err, "the webhook is not one Berth can read: %s", pluginMessage(err))
	case err != nil:
		return 0, err
	}
	applied := 0
	for _, e := range evs {
		done, err := s.apply(e)
		if err != nil {
			return applied, err
		}
		if done {
			applied++
		}
	}
	return applied, nil
}

// apply records e as processed and makes its change, in one transaction:
// false when e was processed before.
func (s *Service) apply(e sdk.BillingEvent) (bool, error) {
	if e.ID == "" {
		return false, fault.New(fault.Invalid, "a provider event without an id")
	}
	applied := false
	err := s.db.Update(func(tx *store.Tx) error {
		// The store runs this again after a conflict (the same event
		// delivered twice at once): only the attempt that commits counts.
		applied = false
		now := s.now()
		err := processedEvents.Insert(tx, e.ID, &processed{At: now, ExpiresAt: now.AddDate(1, 0, 0)})
		if errors.Is(err, store.ErrExists) {
			return nil // a replay
		}
		if err != nil {
			return err
		}
		switch e.Type {
		case sdk.EventCheckoutCompleted, sdk.EventPaymentSucceeded:
			err = s.checkoutPaid(tx, e)
		case sdk.EventPaymentFailed, sdk.EventInvoicePaymentFailed:
			err = s.paymentFailed(tx, e)
		case sdk.EventInvoicePaid, sdk.EventSubscriptionUpdated:
			err = s.periodChanged(tx, e)
		case sdk.EventSubscriptionDeleted:
			err = s.subscriptionEnded(tx, e)
		default:
			return nil // a type Berth does not act on
		}
		if errors.Is(err, errForeign) {
			return nil // recorded as processed, so its retries cost nothing
		}
		applied = err == nil
		return err
	})
	return applied, err
}

// orderOf finds the order e is about: by its order id, else by its
// subscription. The ids e carries must be the order's: the order id
// comes from metadata, and another subscription's renewal or end, or
// another customer's or user's, must not act on this order's plan.
func orderOf(tx *store.Tx, e sdk.BillingEvent) (*Order, error) {
	var o *Order
	var err error
	switch {
	case e.OrderID != "":
		o, err = orders.Get(tx, e.OrderID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("order %q: %w", e.OrderID, errForeign)
		}
	case e.SubscriptionID != "":
		// Berth's subscriptions carry their order id in metadata; one
		// without it that no order knows is someone else's.
		o, _, err = orders.GetBy(tx, "subscription", e.SubscriptionID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("subscription %q: %w", e.SubscriptionID, errForeign)
		}
	default:
		return nil, fmt.Errorf("the event names no order: %w", errForeign)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case e.UserID != "" && e.UserID != o.UserID:
		return nil, fmt.Errorf("order %s belongs to another user: %w", o.ID, ErrMismatch)
	case o.CustomerID != "" && e.CustomerID != "" && e.CustomerID != o.CustomerID:
		return nil, fmt.Errorf("order %s's customer is not the provider's: %w", o.ID, ErrMismatch)
	case o.SubscriptionID != "" && e.SubscriptionID != "" && e.SubscriptionID != o.SubscriptionID:
		return nil, fmt.Errorf("order %s's subscription is not the event's: %w", o.ID, ErrMismatch)
	}
	return o, nil
}

// checkoutPaid pays the order a completed, paid checkout is for, after
// checking the money and the customer match it.
func (s *Service) checkoutPaid(tx *store.Tx, e sdk.BillingEvent) error {
	o, err := orderOf(tx, e)
	if err != nil {
		return err
	}
	if e.AmountMinor != o.Plan.Price || e.Currency != o.Plan.Currency {
		return fmt.Errorf("order %s costs %d %s, the provider reports %d %s: %w", o.ID, o.Plan.Price, o.Plan.Currency, e.AmountMinor, e.Currency, ErrMismatch)
	}
	if e.SubscriptionID != "" {
		o.SubscriptionID = e.SubscriptionID
	}
	if e.CustomerID != "" {
		o.CustomerID = e.CustomerID
		v := e.CustomerID
		if err := customers.Put(tx, o.UserID, &v); err != nil {
			return err
		}
	}
	if e.Type == sdk.EventCheckoutCompleted && e.PaymentStatus != "paid" && e.PaymentStatus != "no_payment_required" {
		// An asynchronous payment (a bank debit): paid when it succeeds.
		o.UpdatedAt = s.now()
		return orders.Put(tx, o.ID, o)
	}
	s.expire(o)
	if o.Status == Paid {
		return nil
	}
	if o.Status != Pending {
		// Paid after it was canceled or expired: keep the money's record.
		o.Reason = fmt.Sprintf("paid through the provider after it was %s", o.Status)
	}
	if err := s.pay(tx, o, "provider", o.Reason); err != nil {
		return err
	}
	if !e.CurrentPeriodEnd.IsZero() {
		return s.setPeriodEnd(tx, o, e)
	}
	return nil
}

// paymentFailed reports a failed payment to the buyer and operators.
func (s *Service) paymentFailed(tx *store.Tx, e sdk.BillingEvent) error {
	o, err := orderOf(tx, e)
	if err != nil {
		return err
	}
	reason := e.Status
	if reason == "" {
		reason = "the payment failed"
	}
	return events.Emit(tx, events.Event{Type: events.PaymentFailed, Time: s.now(), Actor: o.UserID, Recipient: o.UserID,
		Summary: fmt.Sprintf("The payment for order %s (plan %q) failed.", o.ID, o.Plan.Name),
		Data:    map[string]string{"order": o.ID, "plan": o.PlanID, "reason": reason}})
}

// periodChanged moves the entitlement's end to the provider's period end.
// Only a paid invoice moves it later. A subscription's period advances at
// renewal before the renewal is paid (subscription.updated comes first,
// the charge after), and it keeps advancing while the subscription is
// past_due or unpaid: an update may bring the end closer, never grant a
// period nobody paid for.
func (s *Service) periodChanged(tx *store.Tx, e sdk.BillingEvent) error {
	o, err := orderOf(tx, e)
	if err != nil {
		return err
	}
	if e.CurrentPeriodEnd.IsZero() {
		return nil
	}
	ent, err := s.orderEntitlement(tx, o)
	if err != nil || ent == nil {
		return err
	}
	if e.Type != sdk.EventInvoicePaid && !e.CurrentPeriodEnd.Before(ent.ValidUntil) {
		return nil
	}
	return s.setPeriodEnd(tx, o, e)
}

// orderEntitlement is o's user's entitlement if o granted it, else nil.
func (s *Service) orderEntitlement(tx *store.Tx, o *Order) (*Entitlement, error) {
	ent, err := entitlements.Get(tx, o.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ent.OrderID != o.ID) {
		return nil, nil // the user's entitlement comes from another order now
	}
	return ent, err
}

// setPeriodEnd moves the end of the entitlement o granted to e's period
// end; callers have checked e pays for it.
func (s *Service) setPeriodEnd(tx *store.Tx, o *Order, e sdk.BillingEvent) error {
	ent, err := s.orderEntitlement(tx, o)
	if err != nil || ent == nil {
		return err
	}
	ent.ValidUntil = e.CurrentPeriodEnd.UTC()
	return entitlements.Put(tx, o.UserID, ent)
}

// subscriptionEnded withdraws the entitlement the subscription granted.
func (s *Service) subscriptionEnded(tx *store.Tx, e sdk.BillingEvent) error {
	o, err := orderOf(tx, e)
	if err != nil {
		return err
	}
	now := s.now()
	if err := events.Emit(tx, events.Event{Type: events.SubscriptionEnded, Time: now, Actor: o.UserID, Recipient: o.UserID,
		Summary: fmt.Sprintf("The subscription to plan %q ended.", o.Plan.Name),
		Data:    map[string]string{"order": o.ID, "plan": o.PlanID}}); err != nil {
		return err
	}
	ent, err := entitlements.Get(tx, o.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ent.OrderID != o.ID) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := entitlements.Delete(tx, o.UserID); err != nil {
		return err
	}
	return events.Emit(tx, events.Event{Type: events.EntitlementChanged, Time: now, Actor: o.UserID, Recipient: o.UserID,
		Summary: fmt.Sprintf("Plan %q is no longer in force for user %s.", o.Plan.Name, o.UserID),
		Data:    map[string]string{"user": o.UserID, "plan": "", "valid_until": ""}})
}
