package billing

import (
	"context"
	"net/http"
	"testing"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk/plugintest"
)

// payFor orders plan for ann, checks it out and pays it with a signed
// checkout.completed for subscription sub; it returns the order id.
func (f *fixture) payFor(t *testing.T, plan, sub string, price int64) string {
	t.Helper()
	status, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": plan})
	if status != http.StatusCreated {
		t.Fatalf("order: %d %v", status, o)
	}
	id := o["id"].(string)
	if status, c := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.ann, nil); status != http.StatusOK {
		t.Fatalf("checkout: %d %v", status, c)
	}
	paid := plugintest.BillingWebhookEvent{ID: "evt_" + id, Type: "checkout.completed", OrderID: id, UserID: f.annID, PlanID: plan,
		CustomerID: "cus_fake_" + f.annID, SubscriptionID: sub, AmountMinor: price, Currency: "eur", PaymentStatus: "paid"}
	if status, out := f.hook(t, paid, whsec); status != http.StatusOK || out["applied"] != float64(1) {
		t.Fatalf("checkout.completed: %d %v", status, out)
	}
	return id
}

// Buying a new plan replaces the old one at once; the old subscription
// would go on charging, so it is canceled at the provider — and when the
// provider is down, later, without losing it.
func TestReplacedSubscriptionIsCanceled(t *testing.T) {
	f := providerFixture(t)
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	small := f.plan(t, map[string]any{"name": "Small", "price": 900, "currency": "eur", "interval": "month", "entitlements": map[string]any{"max_clusters": 2}})
	big := f.plan(t, team)
	first := f.payFor(t, small, "sub_small", 900)
	if left := f.svc.CancelReplaced(context.Background()); left != 0 || len(f.mem.Cancels()) != 0 {
		t.Fatalf("a first plan queued %d cancellations, sent %v", left, f.mem.Cancels())
	}

	second := f.payFor(t, big, "sub_big", 4900)
	if e, _, _ := f.svc.Entitlement(f.annID); e.OrderID != second || e.Limits.MaxClusters != 5 {
		t.Fatalf("the new plan is not in force: %+v", e)
	}
	f.down = true
	if left := f.svc.CancelReplaced(context.Background()); left != 1 {
		t.Fatalf("with the provider down %d cancellations are queued, want 1", left)
	}
	f.down = false
	// Not due yet: the failed attempt waits before the next.
	if left := f.svc.CancelReplaced(context.Background()); left != 1 || len(f.mem.Cancels()) != 0 {
		t.Fatalf("retried at once: %d left, %v sent", left, f.mem.Cancels())
	}
	f.now = f.now.Add(cancelRetryMin)
	if left := f.svc.CancelReplaced(context.Background()); left != 0 {
		t.Fatalf("after the wait %d cancellations are left", left)
	}
	c := f.mem.Cancels()
	if len(c) != 1 || c[0].SubscriptionID != "sub_small" || c[0].AtPeriodEnd || c[0].IdempotencyKey == "" {
		t.Fatalf("cancellations sent: %+v", c)
	}

	// The provider's confirmation ends the old subscription; the new
	// plan stays.
	ended := plugintest.BillingWebhookEvent{ID: "evt_small_ended", Type: "subscription.deleted", SubscriptionID: "sub_small"}
	if status, _ := f.hook(t, ended, whsec); status != http.StatusOK {
		t.Fatalf("subscription.deleted: %d", status)
	}
	if e, ok, _ := f.svc.Entitlement(f.annID); !ok || e.OrderID != second {
		t.Errorf("the old subscription's end took the new plan: %+v %v (first order %s)", e, ok, first)
	}
}

// A second checkout of one order sends the user to the same page: one
// session per order, and no second call the provider would refuse.
func TestSecondCheckoutReturnsTheSamePage(t *testing.T) {
	f := providerFixture(t)
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	_, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": f.plan(t, team)})
	id := o["id"].(string)
	_, first := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.ann, nil)
	f.down = true // the second needs no provider
	status, again := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/checkout", f.ann, nil)
	if status != http.StatusOK || again["checkout_url"] != first["checkout_url"] || first["checkout_url"] == nil {
		t.Errorf("second checkout: %d %v, first %v", status, again, first)
	}
	if n := len(f.mem.Checkouts()); n != 1 {
		t.Errorf("%d sessions made for one order", n)
	}
}

// A plan's limits replace the default's; what it leaves out stays the
// default, so a plan that names only clusters does not lift CPU and
// memory limits.
func TestPlanLimitsOverTheDefault(t *testing.T) {
	f := providerFixture(t)
	f.do(t, "PUT", "/api/v1/billing/settings", f.admin, map[string]string{"api_key": apiKey, "webhook_secret": whsec})
	_, v := f.do(t, "GET", "/api/v1/billing/entitlement", f.ann, nil)
	if l := v["limits"].(map[string]any); l["max_clusters"] != float64(1) || l["max_cpu"] != "4" {
		t.Fatalf("default limits: %v", v)
	}
	only := f.plan(t, map[string]any{"name": "Clusters", "price": 500, "currency": "eur", "interval": "once", "entitlements": map[string]any{"max_clusters": 3}})
	f.payFor(t, only, "", 500)
	_, v = f.do(t, "GET", "/api/v1/billing/entitlement", f.ann, nil)
	l := v["limits"].(map[string]any)
	if v["active"] != true || l["max_clusters"] != float64(3) || l["max_cpu"] != "4" || l["max_memory"] != "8Gi" {
		t.Errorf("limits with a clusters-only plan: %v", v)
	}
	var got Entitlements
	f.env.DB.View(func(tx *store.Tx) (err error) { got, _, err = f.svc.LimitsOf(tx, f.annID); return err })
	if got.MaxClusters != 3 || got.CPUMillicores() != 4000 || got.MemoryBytes() != 8<<30 {
		t.Errorf("the quota in force: %+v", got)
	}
}
