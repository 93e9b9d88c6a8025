package gateway

import (
	"testing"

	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/store"
)

// Through the gateway: an admin's plan, a user's order paid by hand, and
// the provisioning quota the clusters service reads for that user.
func TestBillingPlanSetsTheQuota(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.login(t, "admin", adminPassword).AccessToken
	u := ag.createUser(t, admin, "carol", "carol-password-123")
	carol := ag.login(t, "carol", "carol-password-123").AccessToken
	plan := decode[map[string]any](t, ag.must(t, 201, "POST", "/api/v1/billing/plans", map[string]any{
		"name": "Team", "price": 4900, "currency": "eur", "interval": "year",
		"entitlements": map[string]any{"max_clusters": 5, "max_cpu": "16", "max_memory": "64Gi"}}, bearer(admin)))
	quota := func() (clusters.Quota, bool) {
		var q clusters.Quota
		var ok bool
		if err := ag.db.View(func(tx *store.Tx) (err error) { q, ok, err = ag.planQuota(tx, u.ID); return err }); err != nil {
			t.Fatal(err)
		}
		return q, ok
	}
	if _, ok := quota(); ok {
		t.Fatal("a plan's quota before any order")
	}
	order := decode[map[string]any](t, ag.must(t, 201, "POST", "/api/v1/billing/orders", map[string]any{"plan_id": plan["id"]}, bearer(carol)))
	ag.must(t, 200, "POST", "/api/v1/billing/orders/"+order["id"].(string)+"/pay", map[string]any{"reason": "invoice 2026-118 paid by transfer"}, bearer(admin))
	q, ok := quota()
	if !ok || q.MaxClusters != 5 || q.MaxCPUMillicores != 16000 || q.MaxMemoryBytes != 64<<30 {
		t.Errorf("quota after paying: %+v %v", q, ok)
	}
	ent := decode[map[string]any](t, ag.must(t, 200, "GET", "/api/v1/billing/entitlement", nil, bearer(carol)))
	if ent["active"] != true {
		t.Errorf("entitlement: %v", ent)
	}
}
