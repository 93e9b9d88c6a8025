package gateway

import (
	"context"
	"fmt"
	"net"

	"github.com/berthgw/berth/gateway/breakglass"
	"github.com/berthgw/berth/gateway/lifecycle"
)

// addComponents lists, in start order, everything that runs between Serve
// and shutdown; each may use those before it, and shutdown stops them in
// reverse. Background loops are components of their own, so that a later
// change can run exactly one of each across replicas. The store is opened
// by New and closed after the last of them stops.
func (g *Gateway) addComponents() {
	c := &g.components
	c.Add("store gc", lifecycle.NewLoop(func(ctx context.Context) {
		g.db.RunGCEvery(ctx, g.cfg.Store.GCInterval.D())
	}))
	// On etcd, other replicas' writes reach this one's caches (grants,
	// and whatever OnChange feeds, such as open streams) through the
	// store's commit hooks.
	c.Add("store changes", lifecycle.NewLoop(func(ctx context.Context) {
		if err := g.db.FollowChanges(ctx); err != nil {
			g.log.Error("following the store's changes", "err", err)
		}
	}))
	// Plugins before what calls them: the DNS provider answers ACME
	// challenges, operations call provisioners, and both stop before the
	// plugins do.
	c.Add("plugins", lifecycle.Hooks{OnStart: g.startPlugins, OnStop: g.stopPlugins})
	c.Add("notification outbox", lifecycle.NewLoop(g.plugins.RunOutbox))
	// Certificates need the bound addresses before any handshake or
	// challenge can reach them; renewals run until Stop.
	c.Add("tls certificates", lifecycle.Hooks{
		OnStart: func(context.Context) error { return tlsConfigError(g.edge.Start(g.HTTPAddr(), g.HTTPSAddr())) },
		OnStop:  func(context.Context) error { g.edge.Stop(); return nil },
	})
	c.Add("cluster probes", lifecycle.Hooks{
		OnStart: func(context.Context) error { g.clusters.Start(); return nil },
		OnStop:  func(context.Context) error { g.clusters.Stop(); return nil },
	})
	c.Add("node history", lifecycle.Hooks{
		OnStart: func(context.Context) error { g.fleetOps.history.Start(); return nil },
		OnStop:  func(context.Context) error { g.fleetOps.history.Stop(); return nil },
	})
	c.Add("break-glass sweep", lifecycle.NewLoop(func(ctx context.Context) {
		g.fleetOps.sweeper.Run(ctx, breakglass.SweepInterval)
	}))
	// Operations pause before their plugins stop, to resume at the next
	// start.
	c.Add("operations", lifecycle.Hooks{
		OnStart: func(context.Context) error { g.operations.Start(g.clusters.Executor()); return nil },
		OnStop:  func(context.Context) error { g.operations.Stop(); return nil },
	})
	c.Add("audit purge", lifecycle.NewLoop(func(ctx context.Context) {
		g.audit.Run(ctx, g.cfg.Audit.PurgeInterval.D())
	}))
	c.Add("signing-key rotation", lifecycle.NewLoop(g.identity.RunSigningKeys))
	// Listen binds the admin socket after New; look it up at start.
	c.Add("admin socket", lifecycle.Hooks{
		OnStart: func(ctx context.Context) error { return g.admin.Start(ctx) },
		OnStop:  func(ctx context.Context) error { return g.admin.Stop(ctx) },
	})
	// Last to start, first to stop: requests are served only when all the
	// rest runs, and in-flight ones finish before any of it stops.
	c.Add("http server", lifecycle.Hooks{OnStart: g.startServer, OnStop: g.stopServer})
}

// startServer serves the listeners Listen bound; a listener's failure
// reaches Serve through serveErrs.
func (g *Gateway) startServer(context.Context) error {
	for _, ln := range []net.Listener{g.httpLn, g.httpsLn} {
		if ln != nil {
			go func() { g.serveErrs <- g.server.Serve(ln) }()
		}
	}
	return nil
}

// stopServer stops accepting and lets in-flight requests finish until
// ctx ends.
func (g *Gateway) stopServer(ctx context.Context) error {
	if err := g.server.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("drain connections: %w", err)
	}
	return nil
}
