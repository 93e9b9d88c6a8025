package gateway

import (
	"fmt"
	"net"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/join"
	"github.com/berthgw/berth/gateway/nodes"
	"github.com/berthgw/berth/gateway/operations"
	"github.com/berthgw/berth/proxy"
	"github.com/berthgw/berth/proxy/listquery"
)

// initClusters builds the cluster registry, the proxy over its connection
// pools, and the route that sends /proxy/clusters/ traffic through it.
func (g *Gateway) initClusters() error {
	pc := g.cfg.Proxy
	m := clusters.NewMetrics()
	g.metrics.Register(m.Collectors()...)
	pool := proxy.NewPool(proxy.PoolOptions{
		MaxConnsPerCluster: pc.MaxConnsPerCluster,
		Streams:            proxy.StreamLimits{PerCluster: pc.MaxStreamsPerCluster, PerPrincipal: pc.MaxStreamsPerUser},
	})
	g.pool = pool
	px := proxy.New(proxy.Options{
		Pool:               pool,
		RequestTimeout:     pc.RequestTimeout.D(),
		StreamWriteTimeout: pc.StreamWriteTimeout.D(),
		ListLimits:         listquery.Limits{MaxBytes: pc.MaxListBytes, MaxItems: pc.MaxListItems},
		MaxPageSize:        pc.MaxPageSize,
		MaxConcurrentLists: pc.MaxConcurrentLists,
		ListMemoryBudget:   pc.ListMemoryBudget,
		ListTimeBudget:     pc.ListTimeBudget.D(),
		// Bodies stream to the cluster, under the same bound as the API's.
		MaxRequestBodyBytes: int64(g.cfg.Limits.MaxBodyBytes),
		BodyRate:            g.bodyRate(),
		BodyTimeout:         g.cfg.Limits.ReadTimeout.D(),
		Observer:            m,
		Logger:              g.log,
	})
	g.metrics.Register(listMetrics(px)...)
	prov := g.cfg.Provisioning
	g.operations = operations.NewService(g.db, operations.Options{
		Workers:     prov.Workers,
		Timeout:     prov.OperationTimeout.D(),
		MaxAttempts: prov.MaxAttempts,
		RetryMin:    prov.RetryMin.D(),
		RetryMax:    prov.RetryMax.D(),
		Retention:   prov.Retention.D(),
		Logger:      g.log.With("component", "operations"),
		Clock:       g.clock,
	})
	svc, err := clusters.NewService(g.db, g.box, pool, g.audit, g.identity, g.log, clusters.Options{
		ImpersonatePrefix: pc.ImpersonatePrefix,
		OmitExtras:        !pc.ImpersonateExtras,
		ProbeInterval:     pc.ProbeInterval.D(),
		RecheckInterval:   pc.StreamRecheckInterval.D(),
		Now:               g.clock,
		Lifecycle: clusters.Lifecycle{
			Operations:         g.operations,
			Provisioner:        g.plugins.Provisioner,
			DefaultProvisioner: prov.Provisioner,
			Quota: clusters.Quota{
				MaxClusters:      prov.Quota.MaxClusters,
				MaxCPUMillicores: prov.Quota.CPUMillicores(),
				MaxMemoryBytes:   prov.Quota.MemoryBytes(),
			},
			QuotaFor: g.planQuota,
		},
	})
	if err != nil {
		return fmt.Errorf("clusters: %w", err)
	}
	g.clusters = svc
	g.operations.Use(svc.Executor())
	g.identity.OnSigningKeysWithdrawn(svc.RecheckStreams)
	g.operationsAPI = operations.NewHandlers(g.operations, g.authn, g.audit, func(p *identity.Principal, cluster string) bool {
		_, ok := svc.Access(p, cluster)
		return ok
	})
	g.proxyRoute = clusters.NewProxyRoute(svc, g.authn, px, g.audit)
	g.clusterAPI = clusters.NewHandlers(svc, g.authn, g.identity, g.kubeconfigServer, g.CertificatePEM, pc.KubeconfigTTL.D())

	g.nodesAPI = nodes.NewHandlers(nodes.NewService(svc), g.authn, g.audit, func(ctx *fasthttp.RequestCtx, cluster string) bool {
		_, ok := svc.Access(authn.PrincipalFrom(ctx), cluster)
		return ok
	})
	// Join-token digests are keyed by a key derived from the secret key,
	// so a copy of the store alone cannot test guesses offline.
	joinKey := g.box.Derive("berth join-token digests")
	g.joinSvc = join.NewService(g.db, svc, g.audit, joinKey, g.clock)
	g.joinAPI = join.NewHandlers(g.joinSvc, g.authn, g.publicURL)
	return nil
}

// publicURL is where the client of ctx reaches Berth: the configured
// public_url; else the host the client used, on the HTTPS listener's port
// (a listener bound to 0.0.0.0 says nothing useful to a client).
func (g *Gateway) publicURL(ctx *fasthttp.RequestCtx) string {
	if g.cfg.PublicURL != "" {
		return g.cfg.PublicURL
	}
	host := string(ctx.Host())
	if ctx.IsTLS() || g.HTTPSAddr() == "" {
		scheme := map[bool]string{true: "https", false: "http"}[ctx.IsTLS()]
		return scheme + "://" + host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	_, port, _ := net.SplitHostPort(g.HTTPSAddr())
	return "https://" + net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// clusterRoutes are the cluster registry's entries in the route table.
func (g *Gateway) clusterRoutes() []authn.Route {
	h := g.clusterAPI
	const get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
	read, write := identity.PermClustersRead, identity.PermClustersWrite
	return append(g.kubeconfigRoutes(), []authn.Route{
		{Method: get, Path: "/api/v1/clusters", Permission: read, Handler: h.List},
		{Method: post, Path: "/api/v1/clusters", Permission: write, Handler: h.Create},
		{Method: get, Path: "/api/v1/clusters/{name}", Permission: read, Handler: h.Get},
		{Method: put, Path: "/api/v1/clusters/{name}", Permission: write, Handler: h.Update},
		{Method: del, Path: "/api/v1/clusters/{name}", Permission: write, Handler: h.Delete},
		{Method: post, Path: "/api/v1/clusters/{name}/test", Permission: read, Handler: h.Test},
		{Method: get, Path: "/api/v1/clusters/{name}/operations", Permission: read, Handler: g.operationsAPI.ListForCluster},
		{Method: get, Path: "/api/v1/operations", Permission: read, Handler: g.operationsAPI.List},
		{Method: get, Path: "/api/v1/operations/{id}", Permission: read, Handler: g.operationsAPI.Get},
		{Method: post, Path: "/api/v1/operations/{id}/cancel", Permission: write, Handler: g.operationsAPI.Cancel},
		{Method: get, Path: "/api/v1/clusters/{name}/members", Permission: write, Handler: h.Members},
		{Method: post, Path: "/api/v1/clusters/{name}/members", Permission: write, Handler: h.AddMember},
		{Method: put, Path: "/api/v1/clusters/{name}/members/{id}", Permission: write, Handler: h.SetMemberRole},
		{Method: del, Path: "/api/v1/clusters/{name}/members/{id}", Permission: write, Handler: h.RemoveMember},
		{Method: post, Path: "/api/v1/clusters/{name}/join-tokens", Permission: write, Handler: g.joinAPI.Create},
		{Method: get, Path: "/api/v1/clusters/{name}/join-tokens", Permission: write, Handler: g.joinAPI.List},
		{Method: del, Path: "/api/v1/join-tokens/{id}", Permission: write, Handler: g.joinAPI.Revoke},
		{Method: get, Path: "/join", Permission: authn.Public, AddrScope: join.AddrScope, Handler: g.joinAPI.Script},
		{Method: get, Path: "/api/v1/clusters/{name}/nodes", Permission: read, Handler: g.nodesAPI.List},
		{Method: get, Path: "/api/v1/clusters/{name}/nodes/{node}", Permission: read, Handler: g.nodesAPI.Get},
		{Method: post, Path: "/api/v1/clusters/{name}/nodes/{node}/cordon", Permission: read, Handler: g.nodesAPI.Cordon},
		{Method: post, Path: "/api/v1/clusters/{name}/nodes/{node}/uncordon", Permission: read, Handler: g.nodesAPI.Uncordon},
		{Method: post, Path: "/api/v1/clusters/{name}/nodes/{node}/drain", Permission: read, Handler: g.nodesAPI.Drain},
	}...)
}
