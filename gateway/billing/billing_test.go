package billing

import (
	"net/http"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk/plugintest"
)

type fixture struct {
	env   *apitest.Env
	svc   *Service
	now   time.Time
	admin string
	ann   string // a member's token
	annID string
	bob   string
	// mem is the provider of providerFixture; down makes it unavailable.
	mem  *plugintest.MemoryBilling
	down bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	identity.RegisterPermission(PermAdmin, "test")
	f := &fixture{now: time.Now().UTC().Truncate(time.Second)}
	f.env = apitest.NewWith(t, apitest.Options{Now: func() time.Time { return f.now }})
	_, f.admin = f.env.User(t, "boss", identity.RoleAdmin)
	u, tok := f.env.User(t, "ann")
	f.ann, f.annID = tok, u.ID
	_, f.bob = f.env.User(t, "bob")
	f.svc = New(Options{DB: f.env.DB, Now: func() time.Time { return f.now }, DefaultLimits: Entitlements{MaxClusters: 1},
		Usage: func(string) (Usage, error) { return Usage{Clusters: 1}, nil }})
	f.env.Serve(t, Routes(NewHandlers(f.svc, f.env.Authn, f.env.Audit)))
	eventstest.Take(t, f.env.DB)
	return f
}

func (f *fixture) do(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	status, out, _ := f.env.Do(t, method, path, token, body)
	m := map[string]any{}
	if len(out) > 0 {
		m = apitest.Decode[map[string]any](t, out)
	}
	return status, m
}

func (f *fixture) plan(t *testing.T, body map[string]any) string {
	t.Helper()
	status, p := f.do(t, "POST", "/api/v1/billing/plans", f.admin, body)
	if status != http.StatusCreated {
		t.Fatalf("create plan: %d %v", status, p)
	}
	return p["id"].(string)
}

var team = map[string]any{"name": "Team", "price": 4900, "currency": "eur", "interval": "month", "entitlements": map[string]any{"max_clusters": 5, "max_cpu": "64", "max_memory": "256Gi"}}

func TestPlanValidation(t *testing.T) {
	f := newFixture(t)
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range team {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"negative price", with("price", -1)},
		{"fractional price", with("price", 49.5)},
		{"no price", with("price", nil)},
		{"price too large", with("price", 1e12)},
		{"unknown currency", with("currency", "xyz")},
		{"upper-case currency", with("currency", "EUR")},
		{"bad interval", with("interval", "week")},
		{"no name", with("name", "")},
		{"bad cpu", with("entitlements", map[string]any{"max_cpu": "lots"})},
		{"negative clusters", with("entitlements", map[string]any{"max_clusters": -1})},
		{"unknown entitlement", with("entitlements", map[string]any{"max_gpus": 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := f.do(t, "POST", "/api/v1/billing/plans", f.admin, tc.body); status != http.StatusBadRequest {
				t.Errorf("status %d (%v), want 400", status, body)
			}
		})
	}
	if ps, _ := f.svc.Plans(true); len(ps) != 0 {
		t.Errorf("refused plans were stored: %+v", ps)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/plans", f.ann, team); status != http.StatusForbidden {
		t.Errorf("a member creates a plan: %d, want 403", status)
	}
	f.plan(t, team)
	if status, _ := f.do(t, "POST", "/api/v1/billing/plans", f.admin, team); status != http.StatusConflict {
		t.Errorf("a second plan called Team: %d, want 409", status)
	}
	status, list := f.do(t, "GET", "/api/v1/billing/plans", f.ann, nil)
	if status != http.StatusOK || len(list["items"].([]any)) != 1 {
		t.Errorf("a member lists plans: %d %v", status, list)
	}
}

// The order's state machine, the admin's payment by hand, the entitlement
// it grants and its events; other users' orders are invisible.
func TestOrderLifecycle(t *testing.T) {
	f := newFixture(t)
	planID := f.plan(t, team)
	status, o := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	if status != http.StatusCreated || o["status"] != Pending || o["user_id"] != f.annID {
		t.Fatalf("order: %d %v", status, o)
	}
	id := o["id"].(string)
	if status, _ := f.do(t, "GET", "/api/v1/billing/orders/"+id, f.bob, nil); status != http.StatusNotFound {
		t.Errorf("bob reads ann's order: %d, want 404", status)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/cancel", f.bob, nil); status != http.StatusNotFound {
		t.Errorf("bob cancels ann's order: %d, want 404", status)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/pay", f.ann, map[string]any{"reason": "trust me"}); status != http.StatusForbidden {
		t.Errorf("ann pays her own order by hand: %d, want 403", status)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/pay", f.admin, map[string]any{}); status != http.StatusBadRequest {
		t.Errorf("pay without a reason: %d, want 400", status)
	}
	_, ent := f.do(t, "GET", "/api/v1/billing/entitlement", f.ann, nil)
	if ent["active"] != false || ent["limits"].(map[string]any)["max_clusters"] != float64(1) {
		t.Errorf("before paying: %v (want the default limits)", ent)
	}
	status, o = f.do(t, "POST", "/api/v1/billing/orders/"+id+"/pay", f.admin, map[string]any{"reason": "bank transfer 2026-12-07"})
	if status != http.StatusOK || o["status"] != Paid || o["reason"] != "bank transfer 2026-12-07" {
		t.Fatalf("pay: %d %v", status, o)
	}
	got := eventstest.Take(t, f.env.DB)
	if len(got) != 2 || got[0].Type != events.OrderPaid || got[0].Recipient != f.annID || got[1].Type != events.EntitlementChanged {
		t.Errorf("events: %+v", got)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/pay", f.admin, map[string]any{"reason": "again"}); status != http.StatusConflict {
		t.Errorf("paying a paid order: %d, want 409", status)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id+"/cancel", f.ann, nil); status != http.StatusConflict {
		t.Errorf("canceling a paid order: %d, want 409", status)
	}
	if len(eventstest.Take(t, f.env.DB)) != 0 {
		t.Error("refused transitions emitted events")
	}
	_, ent = f.do(t, "GET", "/api/v1/billing/entitlement", f.ann, nil)
	lim := ent["limits"].(map[string]any)
	if ent["active"] != true || lim["max_clusters"] != float64(5) || lim["max_memory"] != "256Gi" || ent["used"].(map[string]any)["clusters"] != float64(1) {
		t.Errorf("after paying: %v", ent)
	}
	var e *Entitlement
	f.env.DB.View(func(tx *store.Tx) (err error) { e, _, err = entitlementOf(tx, f.annID, f.now); return err })
	if e == nil || !e.ValidUntil.Equal(f.now.AddDate(0, 1, 0)) || e.Limits.CPUMillicores() != 64000 {
		t.Errorf("entitlement %+v", e)
	}
	// Cancel and expiry.
	_, o2 := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	id2 := o2["id"].(string)
	status, o2 = f.do(t, "POST", "/api/v1/billing/orders/"+id2+"/cancel", f.ann, nil)
	if status != http.StatusOK || o2["status"] != Canceled {
		t.Errorf("cancel: %d %v", status, o2)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id2+"/cancel", f.ann, nil); status != http.StatusOK {
		t.Errorf("canceling twice: %d, want 200 (no change)", status)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders/"+id2+"/pay", f.admin, map[string]any{"reason": "x"}); status != http.StatusConflict {
		t.Errorf("paying a canceled order: %d, want 409", status)
	}
	_, o3 := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	// Lists: ann sees her own; bob none of hers; an admin all, filtered.
	_, mine := f.do(t, "GET", "/api/v1/billing/orders", f.ann, nil)
	_, bobs := f.do(t, "GET", "/api/v1/billing/orders", f.bob, nil)
	_, paid := f.do(t, "GET", "/api/v1/billing/orders?status=paid", f.admin, nil)
	if mine["total"] != float64(3) || bobs["total"] != float64(0) || paid["total"] != float64(1) {
		t.Errorf("lists: ann %v, bob %v, admin paid %v", mine["total"], bobs["total"], paid["total"])
	}
	if status, _ := f.do(t, "GET", "/api/v1/billing/orders?user_id="+f.annID, f.bob, nil); status != http.StatusForbidden {
		t.Errorf("bob lists ann's orders: %d, want 403", status)
	}

	// A day later the unpaid order has expired; a month later the
	// hand-paid month is over (the tokens have expired by then: the
	// service is asked directly).
	f.now = f.now.Add(PendingFor)
	if o, _ := f.svc.Order(o3["id"].(string), ""); o.Status != Expired {
		t.Errorf("an unpaid order after %s: %v", PendingFor, o.Status)
	}
	f.now = f.now.AddDate(0, 1, 0)
	if _, ok, _ := f.svc.Entitlement(f.annID); ok {
		t.Error("the entitlement outlived its month")
	}
}

func TestOrderRefusals(t *testing.T) {
	f := newFixture(t)
	planID := f.plan(t, team)
	for _, body := range []map[string]any{{"plan_id": "plan_nope"}, {}} {
		if status, _ := f.do(t, "POST", "/api/v1/billing/orders", f.ann, body); status != http.StatusBadRequest {
			t.Errorf("order %v: %d, want 400", body, status)
		}
	}
	for range maxPendingPerUser {
		f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID})
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders", f.ann, map[string]any{"plan_id": planID}); status != http.StatusConflict {
		t.Errorf("order past %d unpaid: %d, want 409", maxPendingPerUser, status)
	}
	// A plan someone holds is archived, not deleted; one nobody holds goes.
	status, p := f.do(t, "DELETE", "/api/v1/billing/plans/"+planID, f.admin, nil)
	if status != http.StatusOK || p["archived"] != true {
		t.Errorf("delete a plan with pending orders: %d %v, want archived", status, p)
	}
	if status, _ := f.do(t, "POST", "/api/v1/billing/orders", f.bob, map[string]any{"plan_id": planID}); status != http.StatusBadRequest {
		t.Errorf("ordering an archived plan: %d, want 400", status)
	}
	if status, _ := f.do(t, "GET", "/api/v1/billing/plans/"+planID, f.bob, nil); status != http.StatusNotFound {
		t.Errorf("a member reads an archived plan: %d, want 404", status)
	}
	free := f.plan(t, map[string]any{"name": "Free", "price": 0, "currency": "usd", "interval": "once"})
	if status, _ := f.do(t, "DELETE", "/api/v1/billing/plans/"+free, f.admin, nil); status != http.StatusNoContent {
		t.Errorf("delete an unheld plan: %d, want 204", status)
	}
}
