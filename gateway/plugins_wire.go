package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/pluginhost"
)

// initPlugins builds the plugin host (no process runs yet), registers its
// permission and metrics, and makes /readyz depend on every required
// plugin.
func (g *Gateway) initPlugins() error {
	// The route table uses plugins:admin; roles may grant it only once it
	// is registered, here rather than in an init() of pluginhost.
	identity.RegisterPermission(pluginhost.PermAdmin, "see plugins and their state, and reload their configuration")
	opts := pluginOptions(g.cfg.Plugins)
	opts.DB, opts.Logger, opts.Audit, opts.Clock = g.db, g.log, g.audit, g.clock
	opts.Reload = func() ([]pluginhost.Plugin, error) {
		c, err := g.cfg.Reload()
		if err != nil {
			return nil, reloadConfigError(err)
		}
		return pluginOptions(c.Plugins).Plugins, nil
	}
	h, err := pluginhost.New(opts)
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

// pluginOptions translates the plugins section of the configuration, whose
// loading supplied the defaults, into the plugin host's options.
func pluginOptions(c config.Plugins) pluginhost.Options {
	o := pluginhost.Options{
		StartTimeout:      c.StartTimeout.D(),
		CallTimeout:       c.CallTimeout.D(),
		CallWait:          c.CallWait.D(),
		HealthInterval:    c.HealthInterval.D(),
		HealthTimeout:     c.HealthTimeout.D(),
		RestartBackoffMin: c.RestartBackoffMin.D(),
		RestartBackoffMax: c.RestartBackoffMax.D(),
		MaxFailures:       c.MaxFailures,
		Notify: pluginhost.NotifyOptions{
			MaxAttempts:   c.Notify.MaxAttempts,
			RetryMin:      c.Notify.RetryMin.D(),
			RetryMax:      c.Notify.RetryMax.D(),
			DeadRetention: c.Notify.DeadRetention.D(),
		},
	}
	for _, p := range c.Instances {
		o.Plugins = append(o.Plugins, pluginhost.Plugin{
			Name: p.Name, Path: p.Path, SHA256: p.SHA256, Args: p.Args, Env: p.Env,
			Required: p.Required, Capabilities: p.Capabilities, Config: p.Config,
		})
	}
	return o
}

// reloadConfigError explains a configuration that does not load when a
// plugin reload re-reads it: the key and the problem, never the file's
// path.
func reloadConfigError(err error) error {
	var ce *config.Error
	switch {
	case errors.As(err, &ce) && ce.Key != "":
		return fault.Wrap(fault.Invalid, err, "the configuration does not load: %s: %s", ce.Key, ce.Problem)
	case errors.As(err, &ce):
		return fault.Wrap(fault.Invalid, err, "the configuration file cannot be read")
	}
	return err
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
