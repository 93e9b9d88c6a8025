package gateway

import (
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/billing"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// initBilling builds plans, orders and entitlements; a user's plan sets
// their provisioning quota (planQuota), the configured quota being the
// default.
func (g *Gateway) initBilling() {
	identity.RegisterPermission(billing.PermAdmin, "manage billing plans and every user's orders")
	q := g.cfg.Provisioning.Quota
	g.billing = billing.New(billing.Options{DB: g.db, Now: g.clock, Box: g.box, PublicURL: g.cfg.PublicURL, Log: g.log,
		Provider: func() (pluginclient.Billing, error) { return g.plugins.Billing(billingPlugin) },
		Email: func(user string) string {
			if u, err := g.identity.GetUser(user); err == nil {
				return u.Email
			}
			return ""
		},
		DefaultLimits: billing.Entitlements{MaxClusters: q.MaxClusters, MaxCPU: q.MaxCPU, MaxMemory: q.MaxMemory},
		Usage: func(user string) (billing.Usage, error) {
			n, total, err := g.clusters.Usage(user)
			return billing.Usage{Clusters: n, CPUMillicores: total.CPUMillicores, MemoryBytes: total.MemoryBytes}, err
		},
	})
	g.billingAPI = billing.NewHandlers(g.billing, g.authn, g.audit)
}

// billingPlugin is the plugin that talks to the payment provider: the
// first-party berth-plugin-billing-stripe, found beside the binary, or a
// plugins.instances entry of that name.
const billingPlugin = "billing-stripe"

// billingRoutes is billing's block of the route table.
func (g *Gateway) billingRoutes() []authn.Route { return billing.Routes(g.billingAPI) }

// planQuota is the quota of user's plan in force, read in the provisioning
// transaction.
func (g *Gateway) planQuota(tx *store.Tx, user string) (clusters.Quota, bool, error) {
	l, ok, err := g.billing.LimitsOf(tx, user)
	if err != nil || !ok {
		return clusters.Quota{}, false, err
	}
	return clusters.Quota{MaxClusters: l.MaxClusters, MaxCPUMillicores: l.CPUMillicores(), MaxMemoryBytes: l.MemoryBytes()}, true, nil
}
