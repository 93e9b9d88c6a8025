package clusters

import (
	"context"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/store"
)

// A user's plan replaces the default quota, read in the provisioning
// transaction; users without one keep the default.
func TestPlanQuotaReplacesTheDefault(t *testing.T) {
	clock := &fakeClock{t: start}
	s, _ := eventService(t, clock, Quota{MaxClusters: 1})
	plans := map[string]Quota{"usr_paid": {MaxClusters: 3}}
	s.opts.Lifecycle.QuotaFor = func(_ *store.Tx, user string) (Quota, bool, error) {
		q, ok := plans[user]
		return q, ok, nil
	}
	provision := func(user, name string) error {
		p := &identity.Principal{UserID: user, Username: user, Permissions: []string{identity.PermClustersWrite}}
		_, err := s.Provision(context.Background(), p, ProvisionSpec{Name: name, Provisioner: "local"}, audit.Event{})
		return err
	}
	for i, name := range []string{"p-1", "p-2", "p-3"} {
		if err := provision("usr_paid", name); err != nil {
			t.Fatalf("cluster %d within the plan's 3: %v", i+1, err)
		}
	}
	if err := provision("usr_paid", "p-4"); !fault.Is(err, fault.QuotaExceeded) {
		t.Errorf("a 4th past the plan's 3: %v, want quota exceeded", err)
	}
	if err := provision("usr_free", "f-1"); err != nil {
		t.Fatal(err)
	}
	if err := provision("usr_free", "f-2"); !fault.Is(err, fault.QuotaExceeded) {
		t.Errorf("a 2nd without a plan: %v, want the default's quota exceeded", err)
	}
	// The plan ends: the default applies again.
	delete(plans, "usr_paid")
	if err := provision("usr_paid", "p-5"); !fault.Is(err, fault.QuotaExceeded) {
		t.Errorf("after the plan ended: %v, want quota exceeded", err)
	}
	n, _, err := s.Usage("usr_paid")
	if err != nil || n != 3 {
		t.Errorf("usage %d %v, want 3 clusters", n, err)
	}
}
