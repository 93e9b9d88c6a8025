package gateway

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/breakglass"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/nodes"
)

// fleetOps holds the cluster-lifecycle features built on the cluster
// registry: the node history observer and break-glass admin kubeconfigs.
type fleetOps struct {
	history    *nodes.History
	historyAPI *nodes.HistoryHandlers
	fleetNodes *nodes.FleetHandlers
	breakGlass *breakglass.Handlers
	// sweeper revokes break-glass access that is no longer held; it runs
	// as a component (components.go), as does history's observer.
	sweeper *breakglass.Service
}

// initFleetOps builds them; it runs after initClusters.
func (g *Gateway) initFleetOps() {
	svc := g.clusters
	// The observer reads every cluster as the gateway, as often as the
	// connection probe does; a change between two looks is one event.
	g.fleetOps.history = nodes.NewHistory(g.db, svc, nodes.HistoryOptions{
		Interval: g.cfg.Proxy.ProbeInterval.D(),
		Now:      g.clock,
		Logger:   g.log,
	})
	g.fleetOps.historyAPI = nodes.NewHistoryHandlers(g.fleetOps.history, func(ctx *fasthttp.RequestCtx, cluster string) bool {
		_, ok := svc.Access(authn.PrincipalFrom(ctx), cluster)
		return ok
	})
	g.fleetOps.fleetNodes = nodes.NewFleetHandlers(nodes.NewService(svc), g.fleetOps.history, func(p *identity.Principal) []string {
		names, _ := svc.FleetSelection(p, "", "", false) // no names, no selector: cannot fail
		return names
	})
	bg := breakglass.NewService(svc, g.identity, g.identity, g.audit, g.clock, g.log)
	svc.OnRoleChange(bg.AccessChanged)
	svc.OnUnregister(breakglass.Sweeper(), func(ctx context.Context, u clusters.Unregistered) {
		bg.Unregistering(ctx, u.Cluster, u.By.Username, breakglass.CallFunc(u.Call))
	})
	g.fleetOps.breakGlass = breakglass.NewHandlers(bg, g.authn)
	g.fleetOps.sweeper = bg
}

// fleetOpsRoutes are their entries in the route table.
func (g *Gateway) fleetOpsRoutes() []authn.Route {
	return []authn.Route{
		{Method: fasthttp.MethodGet, Path: "/api/v1/clusters/{name}/node-events", Permission: identity.PermClustersRead, Handler: g.fleetOps.historyAPI.Events},
		// The fleet's nodes: every cluster the caller reaches.
		{Method: fasthttp.MethodGet, Path: "/api/v1/nodes", Permission: identity.PermClustersRead, Handler: g.fleetOps.fleetNodes.Nodes},
		{Method: fasthttp.MethodGet, Path: "/api/v1/node-events", Permission: identity.PermClustersRead, Handler: g.fleetOps.fleetNodes.Events},
		// POST /api/v1/clusters/{name}/kubeconfig with a password comes
		// to breakGlass.AdminKubeconfig through kubeconfigRoutes.
	}
}
