package gateway

import (
	"context"
	"fmt"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/pluginhost"
)

// initPlugins builds the plugin host (no process runs yet), registers its
// metrics, and makes /readyz depend on every required plugin.
func (g *Gateway) initPlugins() error {
	h, err := pluginhost.New(pluginhost.Options{
		DB:     g.db,
		Config: g.cfg.Plugins,
		Logger: g.log,
		Audit:  g.audit,
		Reload: func() (config.Plugins, error) {
			c, err := g.cfg.Reload()
			if err != nil {
				return config.Plugins{}, err
			}
			return c.Plugins, nil
		},
	})
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	g.plugins = h
	g.metrics.Register(h.Collectors()...)
	for name, check := range h.ReadyChecks() {
		g.ready.Add("plugin:"+name, check)
	}
	return nil
}

// startPlugins starts every configured plugin; it fails only when a
// required one does not start.
func (g *Gateway) startPlugins(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Plugins.StartTimeout.D()+g.cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	if err := g.plugins.Start(ctx); err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	return nil
}

// stopPlugins drains plugin calls until ctx ends, then stops every plugin
// process.
func (g *Gateway) stopPlugins(ctx context.Context) error {
	if err := g.plugins.Stop(ctx); err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	return nil
}
