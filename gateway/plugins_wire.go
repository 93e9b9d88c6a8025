package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/sdk"
)

// initPlugins builds the plugin host (no process runs yet), registers its
// permission and metrics, and makes /readyz depend on every required
// plugin.
func (g *Gateway) initPlugins() error {
	// The route table uses plugins:admin; roles may grant it only once it
	// is registered, here rather than in an init() of pluginhost.
	identity.RegisterPermission(pluginhost.PermAdmin, "see plugins and their state, and reload their configuration")
	opts := pluginOptions(g.cfg, g.log, nil)
	opts.DB, opts.Logger, opts.Audit, opts.Clock = g.db, g.log, g.audit, g.clock
	reattach, err := reattachPlugins(os.Getenv(sdk.EnvReattach), opts.Plugins)
	if err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	opts.Reattach = reattach
	pins := discoveredPins(g.cfg, opts.Plugins)
	opts.Reload = func() ([]pluginhost.Plugin, error) {
		c, err := g.cfg.Reload()
		if err != nil {
			return nil, reloadConfigError(err)
		}
		return pluginOptions(c, g.log, pins).Plugins, nil
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

// reattachPlugins reads BERTH_PLUGIN_REATTACH, which a plugin run by hand
// with -debug prints: plugin name → how to reach it. Each name must be a
// declared plugin, so a typo does not silently start the real binary.
func reattachPlugins(env string, declared []pluginhost.Plugin) (map[string]sdk.ReattachInfo, error) {
	if env == "" {
		return nil, nil
	}
	var m map[string]sdk.ReattachInfo
	if err := json.Unmarshal([]byte(env), &m); err != nil {
		return nil, fmt.Errorf("%s is not the JSON a plugin prints in debug mode: %w", sdk.EnvReattach, err)
	}
	for name, info := range m {
		if !slices.ContainsFunc(declared, func(p pluginhost.Plugin) bool { return p.Name == name }) {
			return nil, fmt.Errorf("%s names plugin %q, which plugins.instances does not declare", sdk.EnvReattach, name)
		}
		if _, err := info.Config(); err != nil {
			return nil, fmt.Errorf("%s: plugin %q: %w", sdk.EnvReattach, name, err)
		}
	}
	return m, nil
}

// pluginOptions translates the plugins section of the configuration, whose
// loading supplied the defaults, into the plugin host's options, with the
// first-party plugins found installed (pinned to pins' digests, when
// found where they were at start).
func pluginOptions(cfg *config.Config, log *slog.Logger, pins map[string]string) pluginhost.Options {
	c := cfg.Plugins
	o := pluginhost.Options{
		StartTimeout:      c.StartTimeout.D(),
		CallTimeout:       c.CallTimeout.D(),
		CallWait:          c.CallWait.D(),
		HealthInterval:    c.HealthInterval.D(),
		HealthTimeout:     c.HealthTimeout.D(),
		RestartBackoffMin: c.RestartBackoffMin.D(),
		RestartBackoffMax: c.RestartBackoffMax.D(),
		MaxFailures:       c.MaxFailures,
	}
	for _, p := range c.Instances {
		o.Plugins = append(o.Plugins, pluginhost.Plugin{
			Name: p.Name, Path: p.Path, SHA256: p.SHA256, Args: p.Args, Env: p.Env,
			Required: p.Required, Capabilities: p.Capabilities, Config: p.Config,
		})
	}
	if c.Discover {
		o.Plugins = append(o.Plugins, discoverPlugins(cfg, o.Plugins, pins, log)...)
	}
	return o
}

// discoveredPins are the digests of the first-party plugins found at
// start, by path: those pluginOptions appended after the declared ones.
// A reload keeps them, so an executable swapped after the start is
// refused then too (restart berth to upgrade one).
func discoveredPins(cfg *config.Config, plugins []pluginhost.Plugin) map[string]string {
	pins := map[string]string{}
	for _, p := range plugins[len(cfg.Plugins.Instances):] {
		pins[p.Path] = p.SHA256
	}
	return pins
}

// firstParty are the plugins Berth ships, by executable name.
var firstParty = []struct {
	file, name, capability string
	config                 func(*config.Config) map[string]any
}{
	{"berth-plugin-notify", "notify", "notifier", func(c *config.Config) map[string]any {
		m := map[string]any{"allow_private_targets": c.Notifications.AllowPrivateTargets}
		if c.Notifications.CAFile != "" {
			m["ca_file"] = c.Notifications.CAFile
		}
		return m
	}},
	{"berth-plugin-billing-stripe", billingPlugin, "billing", func(*config.Config) map[string]any { return nil }},
}

// discoverPlugins returns the first-party plugins installed in
// plugins.dir or beside the berth executable that declared lacks, so that
// installing one is all an operator does. Each is pinned to the SHA-256
// its executable had at start (pins), or has now when it was not there
// then: a file swapped later is refused at its next start or reload, as
// a declared plugin's would be.
func discoverPlugins(cfg *config.Config, declared []pluginhost.Plugin, pins map[string]string, log *slog.Logger) []pluginhost.Plugin {
	var dirs []string
	if cfg.Plugins.Dir != "" {
		dirs = append(dirs, cfg.Plugins.Dir)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dirs = append(dirs, filepath.Dir(exe))
		}
	}
	var out []pluginhost.Plugin
	for _, fp := range firstParty {
		if slices.ContainsFunc(declared, func(p pluginhost.Plugin) bool { return p.Name == fp.name }) {
			continue
		}
		for _, dir := range dirs {
			path, err := filepath.EvalSymlinks(filepath.Join(dir, fp.file))
			if err != nil {
				continue
			}
			// The plugin gets every channel's secrets: one that someone
			// else could have put here, or could swap, is not started.
			if err := checkTrusted(path); err != nil {
				log.Warn("plugins: not starting a first-party plugin that others could replace; fix its owner and mode", "plugin", fp.name, "problem", err)
				continue
			}
			sum, err := fileSHA256(path)
			if err != nil {
				continue
			}
			if pinned, ok := pins[path]; ok {
				sum = pinned
			}
			out = append(out, pluginhost.Plugin{Name: fp.name, Path: path, SHA256: sum,
				Capabilities: []string{fp.capability}, Config: fp.config(cfg)})
			break
		}
	}
	return out
}

// fileSHA256 is the hex SHA-256 of an executable regular file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
