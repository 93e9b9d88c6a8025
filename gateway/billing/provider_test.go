package billing

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
)

// These tests use the SDK's in-memory billing provider (a fake payment
// provider that signs its webhooks with HMAC) in place of the Stripe
// plugin, whose own tests run against stripe-mock.

const (
	apiKey  = "fk_test_billing_key_0001"
	whsec   = "whsec_fake_billing_secret_0001"
	webhook = "/api/v1/billing/webhooks/stripe"
)

func providerFixture(t *testing.T) *fixture {
	t.Helper()
	identity.RegisterPermission(PermAdmin, "test")
	f := &fixture{now: time.Now().UTC().Truncate(time.Second)}
	f.env = apitest.NewWith(t, apitest.Options{Now: func() time.Time { return f.now }})
	f.env.Secret(apiKey, whsec)
	_, f.admin = f.env.User(t, "boss", identity.RoleAdmin)
	u, tok := f.env.User(t, "ann")
	f.ann, f.annID = tok, u.ID
	_, f.bob = f.env.User(t, "bob")
	f.mem = plugintest.NewMemoryBilling()
	f.svc = New(Options{DB: f.env.DB, Box: f.env.Box, Now: func() time.Time { return f.now }, PublicURL: "https://berth.example.com",
		DefaultLimits: Entitlements{MaxClusters: 1, MaxCPU: "4", MaxMemory: "8Gi"},
		Provider: func() (pluginclient.Billing, error) {
			if f.down {
				return nil, errors.New("plugin billing-stripe is restarting")
			}
			return f.mem, nil
		}})
	f.env.Serve(t, Routes(NewHandlers(f.svc, f.env.Authn, f.env.Audit)))
	return f
}

func (f *fixture) hook(t *testing.T, e plugintest.BillingWebhookEvent, secret string) (int, map[string]any) {
	t.Helper()
	header, body := plugintest.BillingWebhook(secret, e)
	status, out, _ := f.env.Do(t, "POST", webhook, "", body, func(r *http.Request) {
		for k, v := range header {
			r.Header[k] = v
		}
	})
	m := map[string]any{}
	if len(out) > 0 {
		m = apitest.Decode[map[string]any](t, out)
	}
	return status, m
}

func TestProviderSettingsAreWriteOnly(t *testing.T) {
	f := providerFixture(t)
	if status, _ := f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": "not-a-key", "webhook_secret": whsec}); status != http.StatusBadRequest {
		t.Errorf("a key the plugin refuses: %d, want 400", status)
	}
	if status, _ := f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "color": "blue"}); status != http.StatusBadRequest {
		t.Errorf("an unknown setting: %d, want 400", status)
	}
	status, v := f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	if status != http.StatusOK || v["api_key_configured"] != true || v["webhook_secret_configured"] != true || v["api_key"] != nil {
		t.Errorf("saved: %d %v", status, v)
	}
	if status, _ := f.do(t, "GET", "/api/v1/billing/settings", f.ann, nil); status != http.StatusForbidden {
		t.Errorf("a member reads the settings: %d", status)
	}
}

// The whole path with the fake provider: checkout, a signed
// checkout.completed that pays the order and grants the plan, replays
// that change nothing, refusals, and the subscription's end.
func TestCheckoutAndWebhooks(t *testing.T) {
	f := providerFixture(t)
	planID := f.plan(t, team)
	_, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	id := o["id"].(string)
	if status, body := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.ann, nil); status != http.StatusConflict || !strings.Contains(body["message"].(string), "settings") {
		t.Errorf("checkout before billing is set up: %d %v, want 409", status, body)
	}
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.bob, nil); status != http.StatusNotFound {
		t.Errorf("bob checks out ann's order: %d, want 404", status)
	}
	status, c := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.ann, nil)
	if status != http.StatusOK || !strings.HasPrefix(c["checkout_url"].(string), "https://pay.example.invalid/checkout/") {
		t.Fatalf("checkout: %d %v", status, c)
	}
	paid := plugintest.BillingWebhookEvent{ID: "evt_1", Type: "checkout.completed", OrderID: id, UserID: f.annID, PlanID: planID,
		CustomerID: "cus_fake_" + f.annID, SubscriptionID: "sub_1", AmountMinor: 4900, Currency: "eur", PaymentStatus: "paid",
		CurrentPeriodEnd: f.now.AddDate(0, 1, 0)}
	eventstest.Take(t, f.env.DB)

	// Refusals change nothing.
	if status, _ := f.hook(t, paid, "whsec_wrong"); status != http.StatusBadRequest {
		t.Errorf("a bad signature: %d, want 400", status)
	}
	cheap := paid
	cheap.ID, cheap.AmountMinor = "evt_cheap", 1
	if status, _ := f.hook(t, cheap, whsec); status != http.StatusBadRequest {
		t.Errorf("an amount that does not match: %d, want 400", status)
	}
	dollars := paid
	dollars.ID, dollars.Currency = "evt_usd", "usd"
	if status, _ := f.hook(t, dollars, whsec); status != http.StatusBadRequest {
		t.Errorf("a currency that does not match: %d, want 400", status)
	}
	other := paid
	other.ID, other.UserID = "evt_other", "usr_someone_else"
	if status, _ := f.hook(t, other, whsec); status != http.StatusBadRequest {
		t.Errorf("another user's order: %d, want 400", status)
	}
	if o, _ := f.svc.Order(id, ""); o.Status != Pending {
		t.Fatalf("refused webhooks changed the order: %s", o.Status)
	}
	if got := eventstest.Take(t, f.env.DB); len(got) != 0 {
		t.Errorf("refused webhooks emitted %+v", got)
	}

	// The real one pays; its replay is accepted and changes nothing.
	status, out := f.hook(t, paid, whsec)
	if status != http.StatusOK || out["applied"] != float64(1) {
		t.Fatalf("checkout.completed: %d %v", status, out)
	}
	status, out = f.hook(t, paid, whsec)
	if status != http.StatusOK || out["applied"] != float64(0) {
		t.Errorf("replay: %d %v", status, out)
	}
	got := eventstest.Take(t, f.env.DB)
	if len(got) != 2 || got[0].Type != events.OrderPaid || got[0].Recipient != f.annID {
		t.Errorf("events: %+v", got)
	}
	e, ok, _ := f.svc.Entitlement(f.annID)
	if !ok || e.Limits.MaxClusters != 5 || !e.ValidUntil.Equal(f.now.AddDate(0, 1, 0)) {
		t.Fatalf("entitlement: %+v %v", e, ok)
	}
	if o, _ := f.svc.Order(id, ""); o.Status != Paid || o.PaidBy != "provider" || o.SubscriptionID != "sub_1" {
		t.Errorf("order after payment: %+v", o)
	}

	// The customer the payment made can manage it and see invoices; bob
	// has none.
	status, portal := f.do(t, "POST", "/api/v1/billing/portal", f.ann, nil)
	if status != http.StatusOK || portal["portal_url"] != "https://pay.example.invalid/portal/cus_fake_"+f.annID {
		t.Errorf("portal: %d %v", status, portal)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/portal", f.bob, nil); status != http.StatusConflict {
		t.Errorf("portal without a customer: %d, want 409", status)
	}
	_, inv := f.do(t, "GET", "/api/v1/billing/invoices", f.ann, nil)
	if items := inv["items"].([]any); len(items) != 1 || items[0].(map[string]any)["amount_paid"] != float64(900) {
		t.Errorf("invoices: %v", inv)
	}
	_, inv = f.do(t, "GET", "/api/v1/billing/invoices", f.bob, nil)
	if items := inv["items"].([]any); len(items) != 0 {
		t.Errorf("bob's invoices: %v", inv)
	}

	// A renewal moves the end; an unknown type is ignored; the
	// subscription's end withdraws the plan.
	renewed := plugintest.BillingWebhookEvent{ID: "evt_2", Type: "invoice.paid", SubscriptionID: "sub_1", AmountMinor: 4900, Currency: "eur", CurrentPeriodEnd: f.now.AddDate(0, 2, 0)}
	if status, _ := f.hook(t, renewed, whsec); status != http.StatusOK {
		t.Errorf("invoice.paid: %d", status)
	}
	if e, _, _ := f.svc.Entitlement(f.annID); !e.ValidUntil.Equal(f.now.AddDate(0, 2, 0)) {
		t.Errorf("after a renewal: valid until %s", e.ValidUntil)
	}
	if status, out := f.hook(t, plugintest.BillingWebhookEvent{ID: "evt_3", Type: "customer.created"}, whsec); status != http.StatusOK || out["applied"] != float64(0) {
		t.Errorf("an unknown event type: %d %v, want 200 and nothing applied", status, out)
	}
	ended := plugintest.BillingWebhookEvent{ID: "evt_4", Type: "subscription.deleted", SubscriptionID: "sub_1"}
	if status, _ := f.hook(t, ended, whsec); status != http.StatusOK {
		t.Errorf("subscription.deleted: %d", status)
	}
	if _, ok, _ := f.svc.Entitlement(f.annID); ok {
		t.Error("the plan outlived its subscription")
	}
	got = eventstest.Take(t, f.env.DB)
	if len(got) != 2 || got[0].Type != events.SubscriptionEnded || got[1].Type != events.EntitlementChanged {
		t.Errorf("events at the end: %+v", got)
	}
}
