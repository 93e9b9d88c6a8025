package api

import (
	"context"
	"net/http"
	"time"
)

// Billing sells plans through a payment provider.
type Billing interface {
	ListPlans(ctx context.Context) ([]Plan, error)
	// CreateCheckout creates an order and a hosted checkout session for it.
	CreateCheckout(ctx context.Context, req CheckoutRequest) (Checkout, error)
	// HandleWebhook verifies a provider webhook and translates it into
	// events. A webhook that fails verification is sdk.ErrPermissionDenied; one
	// the plugin does not care about yields no events and no error.
	HandleWebhook(ctx context.Context, req WebhookRequest) ([]BillingEvent, error)
	// Cancel cancels an order's subscription.
	Cancel(ctx context.Context, req CancelRequest) error
	// GetEntitlement says what a user may use now. A user without a plan
	// gets an inactive Entitlement, not an error.
	GetEntitlement(ctx context.Context, userID string) (Entitlement, error)
}

// Plan is something a user can buy.
type Plan struct {
	ID          string
	Name        string
	Description string
	// PriceMinor is the price in the currency's minor unit (cents).
	PriceMinor int64
	// Currency is an ISO 4217 code, e.g. "EUR".
	Currency string
	// Interval is "month", "year", or "" for one-off purchases.
	Interval string
	// Limits are quotas, e.g. "clusters": 3.
	Limits map[string]int64
}

// CheckoutRequest asks for a checkout session.
type CheckoutRequest struct {
	IdempotencyKey string
	UserID         string
	PlanID         string
	Quantity       int
	SuccessURL     string
	CancelURL      string
	Metadata       map[string]string
}

// Checkout is a created order and where the user pays for it.
type Checkout struct {
	OrderID   string
	URL       string
	ExpiresAt time.Time
}

// WebhookRequest is a provider's webhook exactly as it arrived.
type WebhookRequest struct {
	IdempotencyKey string
	Header         http.Header
	// Body is byte for byte what arrived: signatures cover it.
	Body []byte
}

// BillingEventType says what happened.
type BillingEventType string

// Billing event types.
const (
	EventOrderPaid             BillingEventType = "order.paid"
	EventOrderFailed           BillingEventType = "order.failed"
	EventSubscriptionRenewed   BillingEventType = "subscription.renewed"
	EventSubscriptionCancelled BillingEventType = "subscription.canceled"
	EventRefunded              BillingEventType = "refunded"
)

// BillingEvent is a verified fact from the payment provider.
type BillingEvent struct {
	// ID is the provider's event id; the host drops duplicates by it.
	ID          string
	Type        BillingEventType
	OrderID     string
	UserID      string
	PlanID      string
	AmountMinor int64
	Currency    string
	OccurredAt  time.Time
	Metadata    map[string]string
}

// CancelRequest asks to cancel an order's subscription.
type CancelRequest struct {
	IdempotencyKey string
	OrderID        string
	// AtPeriodEnd keeps the subscription until the paid period ends.
	AtPeriodEnd bool
}

// Entitlement is what a user may use.
type Entitlement struct {
	UserID     string
	PlanID     string
	Active     bool
	ValidUntil time.Time
	Limits     map[string]int64
}
