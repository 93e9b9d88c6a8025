package plugintest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
)

// MemoryKV is an in-memory host.KVBackend with TTLs, for tests.
type MemoryKV struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]memEntry
}

type memEntry struct {
	value   []byte
	expires time.Time
}

var _ host.KVBackend = (*MemoryKV)(nil)

// NewMemoryKV returns an empty store.
func NewMemoryKV() *MemoryKV { return &MemoryKV{now: time.Now, entries: map[string]memEntry{}} }

func (m *MemoryKV) live(key string) (memEntry, bool) {
	e, ok := m.entries[key]
	if ok && !e.expires.IsZero() && !m.now().Before(e.expires) {
		delete(m.entries, key)
		return memEntry{}, false
	}
	return e, ok
}

// Get implements host.KVBackend.
func (m *MemoryKV) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	if !ok {
		return nil, fmt.Errorf("key %q: %w", key, sdk.ErrNotFound)
	}
	return slices.Clone(e.value), nil
}

// Put implements host.KVBackend.
func (m *MemoryKV) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := memEntry{value: slices.Clone(value)}
	if ttl > 0 {
		e.expires = m.now().Add(ttl)
	}
	m.entries[key] = e
	return nil
}

// Delete implements host.KVBackend.
func (m *MemoryKV) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// List implements host.KVBackend.
func (m *MemoryKV) List(_ context.Context, prefix, startAfter string, limit int) ([]sdk.KVEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.entries {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			if _, ok := m.live(k); ok {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	more := false
	if limit > 0 && len(keys) > limit {
		keys, more = keys[:limit], true
	}
	out := make([]sdk.KVEntry, len(keys))
	for i, k := range keys {
		out[i] = sdk.KVEntry{Key: k, Value: slices.Clone(m.entries[k].value)}
	}
	return out, more, nil
}

// Expires returns when key expires (zero for never) and whether it exists.
func (m *MemoryKV) Expires(key string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	return e.expires, ok
}

// MemoryEvents is a host.EventSink that keeps every event, for tests.
type MemoryEvents struct {
	mu     sync.Mutex
	events []sdk.Event
}

var _ host.EventSink = (*MemoryEvents)(nil)

// NewMemoryEvents returns an empty sink.
func NewMemoryEvents() *MemoryEvents { return &MemoryEvents{} }

// Emit implements host.EventSink.
func (m *MemoryEvents) Emit(_ context.Context, ev sdk.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
	return nil
}

// Events returns the events received so far.
func (m *MemoryEvents) Events() []sdk.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// MemoryBilling is an sdk.Billing backed by a fake payment provider in
// memory, for tests of the billing contract and of hosts that drive it.
// Like a real billing plugin it keeps no business state: its settings come
// with every call (SettingAPIKey, "fk_..."; SettingWebhookSecret), and a
// webhook's body carries the whole event (JSON of BillingWebhookEvent),
// signed with the webhook secret (X-Signature: hex HMAC-SHA256 of the
// body; see BillingWebhook). It records the writes it was asked for, so a
// test can see what a host sent.
type MemoryBilling struct {
	mu       sync.Mutex
	seq      int
	checkout []sdk.CheckoutRequest
	portals  []sdk.PortalRequest
	cancels  []sdk.CancelRequest
}

var _ sdk.Billing = (*MemoryBilling)(nil)

// NewMemoryBilling returns a fake provider that has done nothing yet.
func NewMemoryBilling() *MemoryBilling { return &MemoryBilling{} }

// The settings of MemoryBilling.
const (
	SettingAPIKey        = "api_key"
	SettingWebhookSecret = "webhook_secret"
)

// Settings implements sdk.Billing.
func (m *MemoryBilling) Settings(context.Context) ([]sdk.Setting, error) {
	return []sdk.Setting{
		{Name: SettingAPIKey, Description: "API key of the fake provider (fk_...)", Required: true, Secret: true},
		{Name: SettingWebhookSecret, Description: "Secret that signs the fake provider's webhooks", Required: true, Secret: true},
	}, nil
}

// CheckSettings implements sdk.Billing.
func (m *MemoryBilling) CheckSettings(_ context.Context, settings map[string]string) error {
	return checkMemoryBillingSettings(settings)
}

func checkMemoryBillingSettings(settings map[string]string) error {
	for _, name := range []string{SettingAPIKey, SettingWebhookSecret} {
		if settings[name] == "" {
			return fmt.Errorf("setting %q is required: %w", name, sdk.ErrInvalidArgument)
		}
	}
	if !strings.HasPrefix(settings[SettingAPIKey], "fk_") {
		// The value is a secret: say what is wrong, never what it is.
		return fmt.Errorf("setting %q is not an API key of the fake provider (fk_...): %w", SettingAPIKey, sdk.ErrInvalidArgument)
	}
	return nil
}

// CreateCheckout implements sdk.Billing: each call is a new session
// ("cs_fake_<n>"); a request without a customer gets "cus_fake_<user>".
func (m *MemoryBilling) CreateCheckout(_ context.Context, req sdk.CheckoutRequest) (sdk.Checkout, error) {
	if err := checkMemoryBillingSettings(req.Settings); err != nil {
		return sdk.Checkout{}, err
	}
	m.mu.Lock()
	m.seq++
	id := fmt.Sprintf("cs_fake_%d", m.seq)
	m.checkout = append(m.checkout, req)
	m.mu.Unlock()
	customer := req.CustomerID
	if customer == "" {
		customer = "cus_fake_" + req.UserID
	}
	return sdk.Checkout{SessionID: id, URL: "https://pay.example.invalid/checkout/" + id, CustomerID: customer, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// CreatePortal implements sdk.Billing.
func (m *MemoryBilling) CreatePortal(_ context.Context, req sdk.PortalRequest) (sdk.Portal, error) {
	if err := checkMemoryBillingSettings(req.Settings); err != nil {
		return sdk.Portal{}, err
	}
	m.mu.Lock()
	m.portals = append(m.portals, req)
	m.mu.Unlock()
	return sdk.Portal{URL: "https://pay.example.invalid/portal/" + req.CustomerID}, nil
}

// ListInvoices implements sdk.Billing: every customer has one paid invoice.
func (m *MemoryBilling) ListInvoices(_ context.Context, req sdk.InvoicesRequest) ([]sdk.Invoice, error) {
	if err := checkMemoryBillingSettings(req.Settings); err != nil {
		return nil, err
	}
	return []sdk.Invoice{{
		ID: "in_fake_" + req.CustomerID, Number: "FAKE-0001", Status: "paid", AmountDueMinor: 900, AmountPaidMinor: 900, Currency: "eur",
		HostedURL: "https://pay.example.invalid/invoice/1", PDFURL: "https://pay.example.invalid/invoice/1.pdf",
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}}, nil
}

// CancelSubscription implements sdk.Billing: subscriptions are the ids
// that start with "sub_"; any other is sdk.ErrNotFound.
func (m *MemoryBilling) CancelSubscription(_ context.Context, req sdk.CancelRequest) error {
	if err := checkMemoryBillingSettings(req.Settings); err != nil {
		return err
	}
	if !strings.HasPrefix(req.SubscriptionID, "sub_") {
		return fmt.Errorf("subscription %q: %w", req.SubscriptionID, sdk.ErrNotFound)
	}
	m.mu.Lock()
	m.cancels = append(m.cancels, req)
	m.mu.Unlock()
	return nil
}

// BillingWebhookEvent is the body of MemoryBilling's webhooks: Type is an
// sdk.BillingEventType, or anything else for an event it ignores.
type BillingWebhookEvent struct {
	ID                string    `json:"id"`
	Type              string    `json:"type"`
	OrderID           string    `json:"order_id,omitempty"`
	UserID            string    `json:"user_id,omitempty"`
	PlanID            string    `json:"plan_id,omitempty"`
	CustomerID        string    `json:"customer_id,omitempty"`
	SubscriptionID    string    `json:"subscription_id,omitempty"`
	SessionID         string    `json:"session_id,omitempty"`
	InvoiceID         string    `json:"invoice_id,omitempty"`
	AmountMinor       int64     `json:"amount_minor,omitempty"`
	Currency          string    `json:"currency,omitempty"`
	Status            string    `json:"status,omitempty"`
	PaymentStatus     string    `json:"payment_status,omitempty"`
	CurrentPeriodEnd  time.Time `json:"current_period_end,omitzero"`
	CancelAtPeriodEnd bool      `json:"cancel_at_period_end,omitempty"`
	OccurredAt        time.Time `json:"occurred_at,omitzero"`
}

// BillingWebhook returns the headers and body of a MemoryBilling webhook
// carrying e, signed with secret.
func BillingWebhook(secret string, e BillingWebhookEvent) (http.Header, []byte) {
	body, _ := json.Marshal(e)
	return http.Header{"Content-Type": {"application/json"}, "X-Signature": {signMemoryBilling(secret, body)}}, body
}

func signMemoryBilling(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// HandleWebhook implements sdk.Billing.
func (m *MemoryBilling) HandleWebhook(_ context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	secret := req.Settings[SettingWebhookSecret]
	if secret == "" {
		return nil, fmt.Errorf("setting %q is required: %w", SettingWebhookSecret, sdk.ErrInvalidArgument)
	}
	sig, _ := hex.DecodeString(req.Header.Get("X-Signature"))
	want, _ := hex.DecodeString(signMemoryBilling(secret, req.Body))
	if len(sig) == 0 || !hmac.Equal(sig, want) {
		return nil, fmt.Errorf("webhook signature does not verify: %w", sdk.ErrPermissionDenied)
	}
	var e BillingWebhookEvent
	if err := json.Unmarshal(req.Body, &e); err != nil || e.ID == "" {
		return nil, fmt.Errorf("webhook body is not an event of the fake provider: %w", sdk.ErrInvalidArgument)
	}
	switch t := sdk.BillingEventType(e.Type); t {
	case sdk.EventCheckoutCompleted, sdk.EventPaymentSucceeded, sdk.EventPaymentFailed, sdk.EventInvoicePaid,
		sdk.EventInvoicePaymentFailed, sdk.EventSubscriptionUpdated, sdk.EventSubscriptionDeleted:
		occurred := e.OccurredAt
		if occurred.IsZero() {
			occurred = time.Now().UTC().Truncate(time.Second)
		}
		return []sdk.BillingEvent{{
			ID: e.ID, Type: t, OrderID: e.OrderID, UserID: e.UserID, PlanID: e.PlanID, CustomerID: e.CustomerID,
			SubscriptionID: e.SubscriptionID, SessionID: e.SessionID, InvoiceID: e.InvoiceID, AmountMinor: e.AmountMinor,
			Currency: e.Currency, Status: e.Status, PaymentStatus: e.PaymentStatus, CurrentPeriodEnd: e.CurrentPeriodEnd,
			CancelAtPeriodEnd: e.CancelAtPeriodEnd, OccurredAt: occurred,
		}}, nil
	}
	return nil, nil
}

// Checkouts returns the checkout requests received so far.
func (m *MemoryBilling) Checkouts() []sdk.CheckoutRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.checkout)
}

// Portals returns the portal requests received so far.
func (m *MemoryBilling) Portals() []sdk.PortalRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.portals)
}

// Cancels returns the cancellations received so far.
func (m *MemoryBilling) Cancels() []sdk.CancelRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cancels)
}

// MemoryBillingCase is the billing conformance suite's case for
// MemoryBilling.
func MemoryBillingCase() BillingCase {
	return BillingCase{
		Settings:       map[string]string{SettingAPIKey: "fk_conformance", SettingWebhookSecret: "whsec_conformance"},
		Plan:           sdk.Plan{ID: "starter", Name: "Starter", PriceMinor: 900, Currency: "eur", Interval: sdk.IntervalOnce},
		RecurringPlan:  sdk.Plan{ID: "pro", Name: "Pro", PriceMinor: 2900, Currency: "eur", Interval: sdk.IntervalMonth},
		CustomerID:     "cus_conformance",
		SubscriptionID: "sub_conformance",
		Webhook: func(_ *testing.T, settings map[string]string, orderID, userID, planID string) (http.Header, []byte) {
			return BillingWebhook(settings[SettingWebhookSecret], BillingWebhookEvent{
				ID: "evt_conformance", Type: string(sdk.EventCheckoutCompleted), OrderID: orderID, UserID: userID, PlanID: planID,
				SessionID: "cs_fake_1", AmountMinor: 900, Currency: "eur", Status: "complete", PaymentStatus: "paid",
			})
		},
	}
}
