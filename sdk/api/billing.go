package api

import (
	"context"
	"net/http"
	"time"
)

// Billing takes payments through a payment provider (Stripe, ...). The
// gateway owns plans, orders, customers and entitlements; the plugin is a
// stateless adapter to the provider. Every call carries the provider
// settings the operator saved (Settings lists them; secrets included, as
// the gateway unseals them for the call), so the plugin keeps no state of
// its own and never logs them.
//
// Writes (CreateCheckout, CreatePortal, CancelSubscription) carry an
// idempotency key: the SDK answers a repeated call with the first answer,
// and a plugin passes the key on to its provider, so that a call retried
// after a plugin restart still charges once.
type Billing interface {
	// Settings describes the provider settings an operator saves, e.g. an
	// API key and a webhook signing secret (both Secret).
	Settings(ctx context.Context) ([]Setting, error)
	// CheckSettings validates saved settings before the gateway stores
	// them: a value of the wrong shape (and, where it is cheap, one the
	// provider refuses) is ErrInvalidArgument with a message that names
	// the setting and never echoes a secret.
	CheckSettings(ctx context.Context, settings map[string]string) error
	// CreateCheckout creates a hosted checkout session for an order of
	// the gateway's: a one-off payment or a subscription, by the plan's
	// interval.
	CreateCheckout(ctx context.Context, req CheckoutRequest) (Checkout, error)
	// CreatePortal creates a session of the provider's customer portal,
	// where a customer manages payment methods and subscriptions.
	CreatePortal(ctx context.Context, req PortalRequest) (Portal, error)
	// ListInvoices lists a customer's invoices, newest first.
	ListInvoices(ctx context.Context, req InvoicesRequest) ([]Invoice, error)
	// HandleWebhook verifies a provider webhook and translates it into
	// events. A webhook that fails verification (a bad signature, a stale
	// timestamp) is ErrPermissionDenied; a body that cannot be an event
	// (too large, not the provider's format) is ErrInvalidArgument; an
	// event of a type the plugin does not handle yields no events and no
	// error, so the gateway acknowledges it. The plugin does not drop
	// replays: the gateway does, by BillingEvent.ID.
	HandleWebhook(ctx context.Context, req WebhookRequest) ([]BillingEvent, error)
	// CancelSubscription cancels a subscription at once or at the end of
	// the paid period. An unknown subscription is ErrNotFound.
	CancelSubscription(ctx context.Context, req CancelRequest) error
}

// Plan intervals.
const (
	IntervalOnce  = "once"
	IntervalMonth = "month"
	IntervalYear  = "year"
)

// Plan is what an order buys, as the gateway defines it; the plugin turns
// it into the provider's price at checkout (no price needs to exist at
// the provider beforehand).
type Plan struct {
	// ID is the gateway's plan id; the plugin records it in the checkout's
	// metadata and it comes back in BillingEvent.PlanID.
	ID          string
	Name        string
	Description string
	// PriceMinor is the price in the currency's minor unit (cents).
	PriceMinor int64
	// Currency is an ISO 4217 code in lower case, as Stripe writes it: "eur".
	Currency string
	// Interval is IntervalOnce (a one-off payment), IntervalMonth or
	// IntervalYear (a subscription).
	Interval string
}

// Recurring says whether the plan is a subscription.
func (p Plan) Recurring() bool { return p.Interval == IntervalMonth || p.Interval == IntervalYear }

// CheckoutRequest asks for a checkout session for one order.
type CheckoutRequest struct {
	IdempotencyKey string
	// Settings are the provider settings as the operator saved them.
	Settings map[string]string
	// OrderID is the gateway's order; it comes back in BillingEvent.OrderID.
	OrderID string
	// UserID is the gateway's user; it comes back in BillingEvent.UserID.
	UserID string
	// CustomerEmail pre-fills the payer's email when CustomerID is empty.
	CustomerEmail string
	// CustomerID is the provider's customer, if the user already has one.
	CustomerID string
	Plan       Plan
	// SuccessURL and CancelURL are where the provider sends the payer
	// back after paying or giving up.
	SuccessURL string
	CancelURL  string
	// Metadata is extra metadata for the provider's objects; the keys the
	// plugin sets itself (order_id, user_id, plan_id) win.
	Metadata map[string]string
}

// Checkout is a created checkout session and where the payer goes.
type Checkout struct {
	// SessionID is the provider's session; it comes back in
	// BillingEvent.SessionID.
	SessionID string
	URL       string
	// CustomerID is the provider's customer, when the session has one yet.
	CustomerID string
	ExpiresAt  time.Time
}

// PortalRequest asks for a customer portal session.
type PortalRequest struct {
	IdempotencyKey string
	Settings       map[string]string
	// CustomerID is the provider's customer.
	CustomerID string
	// ReturnURL is where the portal's "back" link goes.
	ReturnURL string
}

// Portal is a created customer portal session.
type Portal struct {
	URL string
}

// InvoicesRequest asks for a customer's invoices.
type InvoicesRequest struct {
	Settings   map[string]string
	CustomerID string
	// Limit caps the answer; zero means the plugin's default.
	Limit int
}

// Invoice is one of a customer's invoices at the provider.
type Invoice struct {
	ID string
	// Number is the invoice number printed on it.
	Number string
	// Status is the provider's: draft, open, paid, uncollectible, void.
	Status          string
	AmountDueMinor  int64
	AmountPaidMinor int64
	Currency        string
	// HostedURL is the provider's page for the invoice; PDFURL its PDF.
	HostedURL      string
	PDFURL         string
	SubscriptionID string
	Created        time.Time
}

// WebhookRequest is a provider's webhook exactly as it arrived.
type WebhookRequest struct {
	// Settings hold the webhook signing secret.
	Settings map[string]string
	Header   http.Header
	// Body is byte for byte what arrived: signatures cover it.
	Body []byte
}

// BillingEventType says what happened, in provider-neutral terms.
type BillingEventType string

// Billing event types.
const (
	// EventCheckoutCompleted: the payer finished a checkout session. For a
	// one-off payment PaymentStatus says whether it is paid yet ("paid")
	// or will be settled later ("unpaid": a payment.succeeded or
	// payment.failed follows).
	EventCheckoutCompleted BillingEventType = "checkout.completed"
	// EventPaymentSucceeded: a delayed checkout payment settled.
	EventPaymentSucceeded BillingEventType = "payment.succeeded"
	// EventPaymentFailed: a delayed checkout payment failed.
	EventPaymentFailed BillingEventType = "payment.failed"
	// EventInvoicePaid: a subscription's invoice was paid (the first one
	// and each renewal).
	EventInvoicePaid BillingEventType = "invoice.paid"
	// EventInvoicePaymentFailed: paying an invoice failed.
	EventInvoicePaymentFailed BillingEventType = "invoice.payment_failed"
	// EventSubscriptionUpdated: a subscription changed (status, period,
	// cancellation at period end).
	EventSubscriptionUpdated BillingEventType = "subscription.updated"
	// EventSubscriptionDeleted: a subscription ended.
	EventSubscriptionDeleted BillingEventType = "subscription.deleted"
)

// BillingEvent is a verified fact from the payment provider. Fields that
// do not apply to the event's type are empty.
type BillingEvent struct {
	// ID is the provider's event id; the gateway processes each once.
	ID   string
	Type BillingEventType
	// OrderID, UserID and PlanID are the gateway's, from the metadata the
	// plugin set at checkout.
	OrderID string
	UserID  string
	PlanID  string
	// CustomerID, SubscriptionID, SessionID and InvoiceID are the
	// provider's.
	CustomerID     string
	SubscriptionID string
	SessionID      string
	InvoiceID      string
	// AmountMinor and Currency are what was paid or is due, in the
	// currency's minor unit and lower-case ISO 4217.
	AmountMinor int64
	Currency    string
	// Status is the status of the event's object: a session's (complete,
	// expired), an invoice's (paid, open) or a subscription's (active,
	// past_due, canceled, ...).
	Status string
	// PaymentStatus is a checkout session's: paid, unpaid or
	// no_payment_required.
	PaymentStatus string
	// CurrentPeriodEnd is when the subscription's paid period ends.
	CurrentPeriodEnd time.Time
	// CancelAtPeriodEnd says the subscription ends at CurrentPeriodEnd.
	CancelAtPeriodEnd bool
	OccurredAt        time.Time
	// Metadata is the metadata of the event's object.
	Metadata map[string]string
}

// CancelRequest asks to cancel a subscription.
type CancelRequest struct {
	IdempotencyKey string
	Settings       map[string]string
	// SubscriptionID is the provider's subscription.
	SubscriptionID string
	// AtPeriodEnd keeps the subscription until the paid period ends.
	AtPeriodEnd bool
}
