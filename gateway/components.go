package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/berthgw/berth/gateway/breakglass"
	"github.com/berthgw/berth/gateway/join"
	"github.com/berthgw/berth/gateway/lifecycle"
	"github.com/berthgw/berth/gateway/store"
)

// addComponents lists, in start order, everything that runs between Serve
// and shutdown; each may use those before it, and shutdown stops them in
// reverse. The store is opened by New and closed after the last of them
// stops. Work that must happen once across replicas (probes, sweeps,
// operations, the outbox) is in duties, run by the replica that leads.
func (g *Gateway) addComponents() {
	c := &g.components
	c.Add("store gc", lifecycle.NewLoop(func(ctx context.Context) {
		g.db.RunGCEvery(ctx, g.cfg.Store.GCInterval.D())
	}))
	// On etcd, other replicas' writes reach this one's caches (grants,
	// signing keys, clusters, and whatever OnChange feeds, such as open
	// streams) through the store's commit hooks.
	c.Add("store changes", lifecycle.NewLoop(func(ctx context.Context) {
		if err := g.db.FollowChanges(ctx); err != nil {
			g.log.Error("following the store's changes", "err", err)
		}
	}))
	// Plugins before what calls them: the DNS provider answers ACME
	// challenges, operations call provisioners, and both stop before the
	// plugins do.
	c.Add("plugins", lifecycle.Hooks{OnStart: g.startPlugins, OnStop: g.stopPlugins})
	// Certificates need the bound addresses before any handshake or
	// challenge can reach them; renewals run until Stop (on every replica:
	// certmagic's locks in the shared store keep them from ordering one
	// certificate twice).
	c.Add("tls certificates", lifecycle.Hooks{
		OnStart: func(context.Context) error { return tlsConfigError(g.edge.Start(g.HTTPAddr(), g.HTTPSAddr())) },
		OnStop:  func(context.Context) error { g.edge.Stop(); return nil },
	})
	// Open streams are this process's: every replica checks its own.
	c.Add("stream checks", lifecycle.Hooks{
		OnStart: func(context.Context) error { g.clusters.Start(); return nil },
		OnStop:  func(context.Context) error { g.clusters.Stop(); return nil },
	})
	c.Add("leader duties", &leaderDuties{db: g.db, duties: g.duties(), log: g.log})
	// Listen binds the admin socket after New; look it up at start.
	c.Add("admin socket", lifecycle.Hooks{
		OnStart: func(ctx context.Context) error { return g.admin.Start(ctx) },
		OnStop:  func(ctx context.Context) error { return g.admin.Stop(ctx) },
	})
	// Last to start, first to stop: requests are served only when all the
	// rest runs, and in-flight ones finish before any of it stops.
	c.Add("http server", lifecycle.Hooks{OnStart: g.startServer, OnStop: g.stopServer})
}

// duties is the work that must happen once across replicas, in start
// order. Each may start again after it stopped: a replica that loses the
// lead stops its duties, and starts them when it leads again.
func (g *Gateway) duties() *lifecycle.Sequence {
	d := &lifecycle.Sequence{}
	d.Add("notification outbox", lifecycle.NewLoop(g.notify.Run))
	d.Add("cluster probes", lifecycle.NewLoop(g.clusters.RunProbes))
	d.Add("node history", lifecycle.NewLoop(g.fleetOps.history.Run))
	d.Add("break-glass sweep", lifecycle.NewLoop(func(ctx context.Context) {
		g.fleetOps.sweeper.Run(ctx, breakglass.SweepInterval)
	}))
	// Operations pause when they stop, to resume at the next start, here
	// or on the replica that leads next.
	d.Add("operations", lifecycle.Hooks{
		OnStart: func(context.Context) error { g.operations.Start(); return nil },
		OnStop:  func(context.Context) error { g.operations.Stop(); return nil },
	})
	d.Add("join-token sweep", lifecycle.NewLoop(func(ctx context.Context) {
		g.joinSvc.Run(ctx, join.SweepInterval, g.log)
	}))
	d.Add("audit purge", lifecycle.NewLoop(func(ctx context.Context) {
		g.audit.Run(ctx, g.cfg.Audit.PurgeInterval.D())
	}))
	d.Add("dns reconciler", lifecycle.NewLoop(g.hostnames.Run))
	d.Add("replaced subscriptions", lifecycle.NewLoop(g.billing.RunCancellations))
	d.Add("signing-key rotation", lifecycle.NewLoop(g.identity.RunSigningKeys))
	return d
}

// leaderDuties runs the duties: at once on Badger, whose store no other
// process shares; on etcd, while this replica leads (store.Lead).
type leaderDuties struct {
	db     *store.DB
	duties *lifecycle.Sequence
	log    *slog.Logger
	loop   *lifecycle.Loop
}

func (l *leaderDuties) Start(ctx context.Context) error {
	if !l.db.Replicated() {
		return l.duties.Start(ctx)
	}
	l.loop = lifecycle.NewLoop(func(ctx context.Context) {
		l.db.Lead(ctx, "duties", func(ctx context.Context) {
			if err := l.duties.Start(ctx); err != nil {
				l.log.Error("starting the leader's duties", "err", err)
			}
			<-ctx.Done()
			if err := l.duties.Stop(context.WithoutCancel(ctx)); err != nil {
				l.log.Error("stopping the leader's duties", "err", err)
			}
		})
	})
	return l.loop.Start(ctx)
}

func (l *leaderDuties) Stop(ctx context.Context) error {
	if l.loop == nil {
		return l.duties.Stop(ctx)
	}
	return l.loop.Stop(ctx)
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
	done := make(chan error, 1)
	go func() { done <- g.server.ShutdownWithContext(ctx) }()
	// Watches, followed logs and exec sessions never finish by
	// themselves: end them, and any that start while the listeners close,
	// so the drain waits only for ordinary requests and their clients
	// watch again elsewhere at once.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if n := g.pool.EndStreams(); n > 0 {
			g.log.Info("ended streams for shutdown", "streams", n)
		}
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("drain connections: %w", err)
			}
			return nil
		case <-tick.C:
		}
	}
}
