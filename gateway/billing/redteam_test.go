package billing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
)

// paidMonth sets billing up, has ann order and pay team's month through
// the fake provider (subscription sub_1, customer cus_fake_<ann>), and
// returns the order's id.
func (f *fixture) paidMonth(t *testing.T) string {
	t.Helper()
	planID := f.plan(t, team)
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	_, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	id := o["id"].(string)
	if status, c := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.ann, nil); status != http.StatusOK {
		t.Fatalf("checkout: %d %v", status, c)
	}
	paid := plugintest.BillingWebhookEvent{ID: "evt_paid_" + id, Type: "checkout.completed", OrderID: id, UserID: f.annID, PlanID: planID,
		CustomerID: "cus_fake_" + f.annID, SubscriptionID: "sub_1", AmountMinor: 4900, Currency: "eur", PaymentStatus: "paid",
		CurrentPeriodEnd: f.now.AddDate(0, 1, 0)}
	if status, out := f.hook(t, paid, whsec); status != http.StatusOK || out["applied"] != float64(1) {
		t.Fatalf("checkout.completed: %d %v", status, out)
	}
	return id
}

// A subscription's period advances at renewal before the renewal is paid
// (Stripe sends customer.subscription.updated with the new period, then
// tries the card an hour later), and it keeps advancing while the
// subscription is past_due or unpaid. Only a paid invoice may move the
// entitlement's end later; otherwise a card that always fails keeps the
// plan for free, period after period.
func TestSubscriptionUpdatedDoesNotExtendUnpaid(t *testing.T) {
	f := providerFixture(t)
	id := f.paidMonth(t)
	paidUntil := f.now.AddDate(0, 1, 0)
	for i, status := range []string{"active", "past_due", "unpaid"} {
		upd := plugintest.BillingWebhookEvent{ID: "evt_upd_" + status, Type: "subscription.updated", OrderID: id, UserID: f.annID,
			SubscriptionID: "sub_1", CustomerID: "cus_fake_" + f.annID, Currency: "eur", AmountMinor: 4900, Status: status,
			CurrentPeriodEnd: f.now.AddDate(0, 2+i, 0)}
		if code, out := f.hook(t, upd, whsec); code != http.StatusOK {
			t.Fatalf("subscription.updated (%s): %d %v", status, code, out)
		}
		if e, _, _ := f.svc.Entitlement(f.annID); e == nil || !e.ValidUntil.Equal(paidUntil) {
			t.Errorf("subscription.updated (%s) with an unpaid period moved the end to %v, want %v", status, e.ValidUntil, paidUntil)
		}
	}
	// The renewal's paid invoice does move it.
	renewed := plugintest.BillingWebhookEvent{ID: "evt_renewed", Type: "invoice.paid", OrderID: id, UserID: f.annID, SubscriptionID: "sub_1",
		CustomerID: "cus_fake_" + f.annID, AmountMinor: 4900, Currency: "eur", Status: "paid", CurrentPeriodEnd: f.now.AddDate(0, 2, 0)}
	if code, _ := f.hook(t, renewed, whsec); code != http.StatusOK {
		t.Fatalf("invoice.paid: %d", code)
	}
	if e, _, _ := f.svc.Entitlement(f.annID); !e.ValidUntil.Equal(f.now.AddDate(0, 2, 0)) {
		t.Errorf("after the paid renewal: valid until %v", e.ValidUntil)
	}
	// An update may still bring the end closer (the provider's own end
	// replaces an estimate).
	closer := plugintest.BillingWebhookEvent{ID: "evt_closer", Type: "subscription.updated", OrderID: id, SubscriptionID: "sub_1",
		Status: "active", CurrentPeriodEnd: f.now.AddDate(0, 2, -1)}
	f.hook(t, closer, whsec)
	if e, _, _ := f.svc.Entitlement(f.annID); !e.ValidUntil.Equal(f.now.AddDate(0, 2, -1)) {
		t.Errorf("an earlier end from the provider: valid until %v", e.ValidUntil)
	}
}

// An event about a subscription is checked against the order it names as
// a payment is: another subscription's renewal must not extend this
// order's plan, nor its end withdraw it, nor another customer's or user's.
func TestSubscriptionEventsMatchTheOrder(t *testing.T) {
	f := providerFixture(t)
	id := f.paidMonth(t)
	paidUntil := f.now.AddDate(0, 1, 0)
	base := plugintest.BillingWebhookEvent{OrderID: id, UserID: f.annID, SubscriptionID: "sub_1", CustomerID: "cus_fake_" + f.annID,
		AmountMinor: 4900, Currency: "eur", Status: "paid", CurrentPeriodEnd: f.now.AddDate(1, 0, 0)}
	for _, tc := range []struct{ name, sub, customer, user string }{
		{"another subscription", "sub_other", "", ""},
		{"another customer", "", "cus_other", ""},
		{"another user", "", "", "usr_other"},
	} {
		for _, typ := range []string{"invoice.paid", "subscription.deleted"} {
			e := base
			e.ID, e.Type = "evt_"+typ+"_"+tc.name, typ
			if tc.sub != "" {
				e.SubscriptionID = tc.sub
			}
			if tc.customer != "" {
				e.CustomerID = tc.customer
			}
			if tc.user != "" {
				e.UserID = tc.user
			}
			if code, _ := f.hook(t, e, whsec); code != http.StatusBadRequest {
				t.Errorf("%s for %s: %d, want 400", typ, tc.name, code)
			}
			if ent, ok, _ := f.svc.Entitlement(f.annID); !ok || !ent.ValidUntil.Equal(paidUntil) {
				t.Errorf("%s for %s changed the entitlement: %+v %v", typ, tc.name, ent, ok)
			}
		}
	}
}

// A Stripe account is often shared: other products' subscriptions, Payment
// Links and invoices send their events to every endpoint subscribed to the
// type. An event that names no order of Berth's is not a mismatch but
// someone else's: refusing it (400) makes Stripe retry it for days and
// then disable the endpoint, and Berth's own renewals stop arriving. It
// is acknowledged and changes nothing.
func TestWebhookIgnoresOtherProductsEvents(t *testing.T) {
	f := providerFixture(t)
	f.paidMonth(t)
	for _, e := range []plugintest.BillingWebhookEvent{
		{ID: "evt_foreign_renewal", Type: "invoice.paid", SubscriptionID: "sub_other_product", CustomerID: "cus_x", AmountMinor: 100, Currency: "usd", CurrentPeriodEnd: f.now.AddDate(1, 0, 0)},
		{ID: "evt_foreign_end", Type: "subscription.deleted", SubscriptionID: "sub_other_product"},
		{ID: "evt_payment_link", Type: "checkout.completed", CustomerID: "cus_x", AmountMinor: 100, Currency: "usd", PaymentStatus: "paid"},
		{ID: "evt_other_install", Type: "checkout.completed", OrderID: "ord_of_another_berth", AmountMinor: 100, Currency: "usd", PaymentStatus: "paid"},
	} {
		if code, out := f.hook(t, e, whsec); code != http.StatusOK || out["applied"] != float64(0) {
			t.Errorf("%s (%s) names no order of Berth's: %d %v, want 200 and nothing applied", e.ID, e.Type, code, out)
		}
	}
	if e, ok, _ := f.svc.Entitlement(f.annID); !ok || !e.ValidUntil.Equal(f.now.AddDate(0, 1, 0)) {
		t.Errorf("foreign events changed ann's entitlement: %+v %v", e, ok)
	}
}

// Stripe may deliver one event twice at once (a retry racing a slow first
// attempt). It is applied once: one payment, one order.paid, and one of
// the two answers says it applied it.
func TestConcurrentDeliveryAppliesOnce(t *testing.T) {
	f := providerFixture(t)
	planID := f.plan(t, team)
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	for round := range 5 {
		_, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
		id := o["id"].(string)
		paid := plugintest.BillingWebhookEvent{ID: "evt_race_" + id, Type: "checkout.completed", OrderID: id, UserID: f.annID,
			AmountMinor: 4900, Currency: "eur", PaymentStatus: "paid"}
		eventstest.Take(t, f.env.DB)
		const n = 6
		applied := make(chan float64, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, out := f.hook(t, paid, whsec)
				if code != http.StatusOK {
					t.Errorf("delivery: %d %v", code, out)
				}
				a, _ := out["applied"].(float64)
				applied <- a
			}()
		}
		wg.Wait()
		close(applied)
		sum := 0.0
		for a := range applied {
			sum += a
		}
		paidEvents := 0
		for _, e := range eventstest.Take(t, f.env.DB) {
			if e.Type == events.OrderPaid {
				paidEvents++
			}
		}
		if sum != 1 || paidEvents != 1 {
			t.Errorf("round %d: %d concurrent deliveries: applied %v in all, %d order.paid; want 1 and 1", round, n, sum, paidEvents)
		}
	}
}

// A scoped API key (the cluster:<name> key in a downloaded kubeconfig, a
// CI key scoped to clusters:read) is narrower than its owner and is handed
// around with the file: it must not spend, cancel or manage the owner's
// money. The customer portal it could open cancels the subscription and
// changes the card; the invoices show the billing address.
func TestScopedKeyCannotActOnBilling(t *testing.T) {
	f := providerFixture(t)
	id := f.paidMonth(t)
	planID := f.plan(t, map[string]any{"name": "Solo", "price": 900, "currency": "eur", "interval": "month"})
	_, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	pending := o["id"].(string)
	owner := &identity.Principal{UserID: f.annID, Username: "ann", Permissions: []string{identity.PermClustersRead}}
	for _, scopes := range [][]string{{"cluster:prod"}, {identity.PermClustersRead}} {
		_, key, err := f.env.IDs.CreateAPIKey(context.Background(), owner, identity.NewAPIKey{Name: "k-" + scopes[0], Scopes: scopes}, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct{ method, path string }{
			{"POST", "/api/v1/billing/orders"},
			{"POST", "/api/v1/billing/orders/" + pending + "/checkout"},
			{"POST", "/api/v1/billing/orders/" + pending + "/cancel"},
			{"POST", "/api/v1/billing/portal"},
			{"GET", "/api/v1/billing/invoices"},
		} {
			if status, body := f.do(t, r.method, r.path, key, map[string]any{"plan_id": planID}); status != http.StatusForbidden {
				t.Errorf("a key scoped to %v: %s %s: %d %v, want 403", scopes, r.method, r.path, status, body)
			}
		}
		// Reading what one has stays possible.
		if status, _ := f.do(t, "GET", "/api/v1/billing/entitlement", key, nil); status != http.StatusOK {
			t.Errorf("a key scoped to %v reads the entitlement: %d, want 200", scopes, status)
		}
		if status, _ := f.do(t, "GET", "/api/v1/billing/orders/"+id, key, nil); status != http.StatusOK {
			t.Errorf("a key scoped to %v reads an order: %d, want 200", scopes, status)
		}
	}
	if o, _ := f.svc.Order(pending, ""); o.Status != Pending {
		t.Errorf("the pending order is now %s", o.Status)
	}
}

// endpointBilling is the fake provider with a plain setting that says
// where its API is, as the Stripe plugin's api_base does; it records the
// settings it is asked to check.
type endpointBilling struct {
	*plugintest.MemoryBilling
	mu      sync.Mutex
	checked []map[string]string
}

func (b *endpointBilling) Settings(ctx context.Context) ([]sdk.Setting, error) {
	sts, err := b.MemoryBilling.Settings(ctx)
	return append(sts, sdk.Setting{Name: "api_base", Description: "where the provider's API is"}), err
}

func (b *endpointBilling) CheckSettings(ctx context.Context, s map[string]string) error {
	b.mu.Lock()
	b.checked = append(b.checked, maps.Clone(s))
	b.mu.Unlock()
	return b.MemoryBilling.CheckSettings(ctx, s)
}

// Secrets are write-only, so a billing admin cannot read the Stripe key;
// nor may they send it elsewhere by changing only api_base: the check of
// the settings would present the kept key to a server of theirs. Changing
// a plain setting needs the secrets again.
func TestChangingTheProviderEndpointNeedsTheSecretsAgain(t *testing.T) {
	f := providerFixture(t)
	b := &endpointBilling{MemoryBilling: plugintest.NewMemoryBilling()}
	f.svc = New(Options{DB: f.env.DB, Box: f.env.Box, Now: func() time.Time { return f.now }, PublicURL: "https://berth.example.com",
		Provider: func() (pluginclient.Billing, error) { return b, nil }})
	f.env.Serve(t, Routes(NewHandlers(f.svc, f.env.Authn, f.env.Audit)))
	if status, body := f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec, "api_base": "https://pay.example"}); status != http.StatusOK {
		t.Fatalf("save: %d %v", status, body)
	}
	b.checked = nil
	if status, body := f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_base": "https://attacker.example"}); status != http.StatusBadRequest {
		t.Errorf("api_base changed keeping the secrets: %d %v, want 400", status, body)
	}
	for _, s := range b.checked {
		if s["api_key"] != "" && s["api_base"] == "https://attacker.example" {
			t.Errorf("the kept key went to the plugin with the new api_base: %v", slices.Sorted(maps.Keys(s)))
		}
	}
	if v, _ := f.svc.SettingsView(); v["api_base"] != "https://pay.example" {
		t.Errorf("api_base is now %v", v["api_base"])
	}
	// With the secrets sent again, or rotating a secret alone, or sending
	// a plain setting unchanged, it is fine.
	for _, in := range []map[string]string{
		{"api_base": "https://pay2.example", "api_key": apiKey, "webhook_secret": whsec},
		{"api_key": apiKey},
		{"api_base": "https://pay2.example"},
	} {
		if status, body := f.do(t, "PUT", "/api/v1/billing/settings", f.admin, in); status != http.StatusOK {
			t.Errorf("%v: %d %v, want 200", slices.Sorted(maps.Keys(in)), status, body)
		}
	}
}

// At most maxPendingPerUser orders wait unpaid, but canceling frees a
// slot: order-and-cancel in a loop filled the store with orders and audit
// events without end (and, with a checkout each, made a Stripe session
// each). Unpaid orders of the last day count, canceled ones included.
func TestOrderAndCancelIsBounded(t *testing.T) {
	f := newFixture(t)
	planID := f.plan(t, team)
	placed := 0
	for range 200 {
		status, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
		if status != http.StatusCreated {
			if status != http.StatusConflict {
				t.Fatalf("order %d: %d %v, want 201 or 409", placed, status, o)
			}
			break
		}
		placed++
		f.do(t, "POST", "/api/v1/billing/orders/"+o["id"].(string)+"/cancel", f.ann, nil)
	}
	if placed > maxUnpaidPerDay {
		t.Errorf("ann placed and canceled %d orders in a day, want at most %d", placed, maxUnpaidPerDay)
	}
	// Bob is not held back by ann, and ann may order again a day later.
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders", f.bob, map[string]any{"plan_id": planID}); status != http.StatusCreated {
		t.Errorf("bob orders: %d", status)
	}
	f.now = f.now.Add(PendingFor)
	if _, err := f.svc.CreateOrder(f.annID, planID); err != nil {
		t.Errorf("ann orders a day later: %v", err)
	}
}

// Each checkout, portal and invoice list is a call to the provider on the
// operator's account, whose rate limit (Stripe's: 100 a second live, 25 in
// test mode) every user shares. The API's own limit lets one user make 20
// a second; within it a single user could spend the whole account's limit
// and have everyone's checkouts refused. Each user's provider calls are
// bounded on their own.
func TestProviderCallsAreBoundedPerUser(t *testing.T) {
	f := providerFixture(t)
	mem := plugintest.NewMemoryBilling()
	f.svc = New(Options{DB: f.env.DB, Box: f.env.Box, Now: func() time.Time { return f.now }, PublicURL: "https://berth.example.com",
		Provider: func() (pluginclient.Billing, error) { return mem, nil }})
	f.env.Serve(t, Routes(NewHandlers(f.svc, f.env.Authn, f.env.Audit)))
	f.paidMonth(t)
	before := len(mem.Portals()) + len(mem.Checkouts())
	tooMany := 0
	for range 100 {
		status, _ := f.do(t, "POST", "/api/v1/billing/portal", f.ann, nil)
		if status == http.StatusTooManyRequests {
			tooMany++
		}
		f.do(t, "GET", "/api/v1/billing/invoices", f.ann, nil)
	}
	calls := len(mem.Portals()) + len(mem.Checkouts()) - before
	if calls > providerBurst || tooMany == 0 {
		t.Errorf("100 portals and invoice lists in an instant: %d portal sessions at the provider, %d refused; want at most %d", calls, tooMany, providerBurst)
	}
	// Bob still gets his turn; ann hers again later.
	planID := f.plan(t, map[string]any{"name": "Solo", "price": 900, "currency": "eur", "interval": "month"})
	_, o := f.do(t, "POST", "/api/v1/billing/orders", f.bob, map[string]any{"plan_id": planID})
	if status, body := f.do(t, "POST", "/api/v1/billing/orders/"+o["id"].(string)+"/checkout", f.bob, nil); status != http.StatusOK {
		t.Errorf("bob's checkout after ann's spree: %d %v", status, body)
	}
	f.now = f.now.Add(time.Minute)
	if status, body := f.do(t, "POST", "/api/v1/billing/portal", f.ann, nil); status != http.StatusOK {
		t.Errorf("ann's portal a minute later: %d %v", status, body)
	}
}

// countingBilling counts the webhooks the fake provider is asked to verify.
type countingBilling struct {
	*plugintest.MemoryBilling
	mu       sync.Mutex
	webhooks int
}

func (b *countingBilling) HandleWebhook(ctx context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	b.mu.Lock()
	b.webhooks++
	b.mu.Unlock()
	return b.MemoryBilling.HandleWebhook(ctx, req)
}

// The webhook is public: anyone can post to it. What it refuses before a
// signature verifies is nobody's act, and writing each to the audit log
// let an anonymous flood fill the store (and, with audit.max_events, push
// the real events out). Only a verified event that does not match its
// order is audited. A body over the 1 MiB limit is refused before the
// settings are unsealed and the body is copied to the plugin.
func TestAnonymousWebhookRefusalsAreNotAudited(t *testing.T) {
	f := providerFixture(t)
	b := &countingBilling{MemoryBilling: plugintest.NewMemoryBilling()}
	f.svc = New(Options{DB: f.env.DB, Box: f.env.Box, Now: func() time.Time { return f.now }, PublicURL: "https://berth.example.com",
		Provider: func() (pluginclient.Billing, error) { return b, nil }})
	f.env.Serve(t, Routes(NewHandlers(f.svc, f.env.Authn, f.env.Audit)))
	id := f.paidMonth(t)
	refusals := func() int { return len(f.env.Events(t, audit.Query{Action: "billing.webhook", Limit: 100})) }
	for i := range 20 {
		e := plugintest.BillingWebhookEvent{ID: fmt.Sprintf("evt_forged_%d", i), Type: "checkout.completed", OrderID: id}
		if status, _ := f.hook(t, e, "whsec_guess"); status != http.StatusBadRequest {
			t.Errorf("a forged webhook: %d, want 400", status)
		}
		f.env.Do(t, "POST", webhook, "", []byte("not json"))
	}
	if n := refusals(); n != 0 {
		t.Errorf("40 anonymous refusals wrote %d audit events, want 0", n)
	}
	b.webhooks = 0
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	if status, _, _ := f.env.Do(t, "POST", webhook, "", big); status != http.StatusBadRequest {
		t.Errorf("a body over 1 MiB: %d, want 400", status)
	}
	if b.webhooks != 0 {
		t.Error("a body over 1 MiB went to the plugin")
	}
	// A verified event that does not match its order is still audited.
	cheap := plugintest.BillingWebhookEvent{ID: "evt_cheap", Type: "checkout.completed", OrderID: id, AmountMinor: 1, Currency: "eur", PaymentStatus: "paid"}
	if status, _ := f.hook(t, cheap, whsec); status != http.StatusBadRequest {
		t.Errorf("a mismatch: %d, want 400", status)
	}
	if n := refusals(); n != 1 {
		t.Errorf("a verified mismatch: %d audit events, want 1", n)
	}
}

// What a signed event cannot do: pay with an unpaid checkout, pay a
// different amount or currency (upper case included) asynchronously, pay
// an order twice, or pay for a plan as it was edited after the order. An
// event refused because the plugin was down is applied when Stripe
// retries it; an event id once applied is never applied again, whatever
// the body.
func TestWebhookMoneyChecksHold(t *testing.T) {
	f := providerFixture(t)
	down := false
	mem := plugintest.NewMemoryBilling()
	f.svc = New(Options{DB: f.env.DB, Box: f.env.Box, Now: func() time.Time { return f.now }, PublicURL: "https://berth.example.com",
		Provider: func() (pluginclient.Billing, error) {
			if down {
				return nil, errors.New("plugin exited")
			}
			return mem, nil
		}})
	f.env.Serve(t, Routes(NewHandlers(f.svc, f.env.Authn, f.env.Audit)))
	planID := f.plan(t, team)
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	_, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	id := o["id"].(string)
	// The plan is made cheaper and bigger after the order: the order
	// keeps what it bought at the price it was offered.
	f.do(t, "PUT", "/api/v1/billing/plans/"+planID, f.admin, map[string]any{"name": "Team", "price": 100, "currency": "eur", "interval": "month",
		"entitlements": map[string]any{"max_clusters": 50}})
	ev := func(evID, typ string, amount int64, currency, payment string) plugintest.BillingWebhookEvent {
		return plugintest.BillingWebhookEvent{ID: evID, Type: typ, OrderID: id, UserID: f.annID, AmountMinor: amount, Currency: currency, PaymentStatus: payment}
	}
	for _, tc := range []struct {
		e    plugintest.BillingWebhookEvent
		want int
	}{
		{ev("evt_unpaid", "checkout.completed", 4900, "eur", "unpaid"), http.StatusOK},
		{ev("evt_new_price", "checkout.completed", 100, "eur", "paid"), http.StatusBadRequest},
		{ev("evt_async_cheap", "payment.succeeded", 100, "eur", "paid"), http.StatusBadRequest},
		{ev("evt_upper", "payment.succeeded", 4900, "EUR", "paid"), http.StatusBadRequest},
		{ev("evt_yen", "payment.succeeded", 49, "jpy", "paid"), http.StatusBadRequest},
	} {
		if status, out := f.hook(t, tc.e, whsec); status != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.e.ID, status, out, tc.want)
		}
		if o, _ := f.svc.Order(id, ""); o.Status != Pending {
			t.Fatalf("%s made the order %s", tc.e.ID, o.Status)
		}
	}
	// Plugin down: 503, so Stripe retries; the retry applies.
	paid := ev("evt_async_ok", "payment.succeeded", 4900, "eur", "paid")
	down = true
	if status, _ := f.hook(t, paid, whsec); status != http.StatusServiceUnavailable {
		t.Errorf("plugin down: %d, want 503", status)
	}
	down = false
	eventstest.Take(t, f.env.DB)
	if status, out := f.hook(t, paid, whsec); status != http.StatusOK || out["applied"] != float64(1) {
		t.Fatalf("the retry: %d %v", status, out)
	}
	if got := eventstest.Take(t, f.env.DB); len(got) != 2 || got[0].Type != events.OrderPaid || got[0].Data["amount"] != "4900" {
		t.Errorf("events of the payment: %+v", got)
	}
	if e, ok, _ := f.svc.Entitlement(f.annID); !ok || e.Limits.MaxClusters != 5 {
		t.Errorf("the entitlement is not what was bought: %+v", e)
	}
	// Paid again by another event, or the same id with another body:
	// nothing more.
	again := ev("evt_completed_late", "checkout.completed", 4900, "eur", "paid")
	reused := ev("evt_async_ok", "checkout.completed", 4900, "eur", "paid")
	for _, e := range []plugintest.BillingWebhookEvent{again, reused} {
		if status, _ := f.hook(t, e, whsec); status != http.StatusOK {
			t.Errorf("%s: %d", e.ID, status)
		}
	}
	if got := eventstest.Take(t, f.env.DB); len(got) != 0 {
		t.Errorf("a second payment of a paid order: %+v", got)
	}
}
