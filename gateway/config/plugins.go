package config

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Plugins configures the plugin host: how plugins are started, watched and
// restarted, the durable notification queue, and the plugins themselves.
type Plugins struct {
	// StartTimeout bounds one start of a plugin: process start, handshake,
	// GetInfo, config validation and Configure.
	StartTimeout Duration `yaml:"start_timeout"`
	// CallTimeout is the deadline of a plugin call whose context has none.
	CallTimeout Duration `yaml:"call_timeout"`
	// CallWait is how long a call waits for a plugin that is (re)starting
	// before it fails with an unavailable error.
	CallWait Duration `yaml:"call_wait"`
	// HealthInterval is how often each plugin's Health is called.
	HealthInterval Duration `yaml:"health_interval"`
	// HealthTimeout bounds one health check; a plugin that does not answer
	// twice in a row is restarted.
	HealthTimeout Duration `yaml:"health_timeout"`
	// RestartBackoffMin and RestartBackoffMax bound the jittered
	// exponential delay between restarts.
	RestartBackoffMin Duration `yaml:"restart_backoff_min"`
	RestartBackoffMax Duration `yaml:"restart_backoff_max"`
	// MaxFailures is how many restarts in a row may fail before the
	// plugin's capabilities are marked degraded (the circuit opens).
	MaxFailures int          `yaml:"max_failures"`
	Notify      PluginNotify `yaml:"notify"`
	// Discover starts Berth's first-party plugins found beside the berth
	// executable or in Dir without an Instances entry.
	Discover bool   `yaml:"discover"`
	Dir      string `yaml:"dir"`
	// Instances are the plugins to run.
	Instances []Plugin `yaml:"instances"`
}

// PluginNotify configures the durable queue of notifications.
type PluginNotify struct {
	// MaxAttempts is how many times a notification is tried before it is
	// marked dead.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryMin and RetryMax bound the jittered exponential delay between
	// attempts.
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
	// DeadRetention is how long dead notifications are kept for
	// inspection.
	DeadRetention Duration `yaml:"dead_retention"`
}

// Plugin declares one plugin process.
type Plugin struct {
	// Name is the plugin's name in Berth: in logs, metrics, the API and
	// the rest of the configuration.
	Name string `yaml:"name"`
	// Path is the plugin executable.
	Path string `yaml:"path"`
	// SHA256 is the hex SHA-256 of the executable, checked before every
	// start.
	SHA256 string `yaml:"sha256"`
	// Args are the executable's command-line arguments.
	Args []string `yaml:"args"`
	// Env is the plugin's whole environment: "NAME" copies the variable
	// from the gateway's environment (when set), "NAME=value" sets it.
	// Nothing else of the gateway's environment is passed on.
	Env []string `yaml:"env"`
	// Required plugins must be running for the gateway to start and to be
	// ready.
	Required bool `yaml:"required"`
	// Capabilities the gateway expects the plugin to offer; a plugin that
	// lacks one is refused.
	Capabilities []string `yaml:"capabilities"`
	// Config is the plugin's configuration object, sent to it as JSON.
	// It may hold secrets: it is never logged.
	Config map[string]any `yaml:"config"`
}

// pluginKeys are the keys of one plugins.instances entry.
var pluginKeys = []string{"name", "path", "sha256", "args", "env", "required", "capabilities", "config"}

// UnmarshalYAML decodes one plugin entry strictly: an unknown key (a typo
// such as "sha265") is an error rather than a plugin started unchecked.
func (p *Plugin) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping with name, path, sha256, …; got a %s", kindName(node.Kind))
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if k := node.Content[i].Value; !slices.Contains(pluginKeys, k) {
			return fmt.Errorf("unknown key %q (line %d)", k, node.Content[i].Line)
		}
	}
	type plain Plugin
	return node.Decode((*plain)(p))
}

var (
	pluginNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	pluginCaps   = []string{"provisioner", "billing", "notifier", "dns"}
)

func (c *Config) validatePlugins() error {
	p := &c.Plugins
	for _, d := range []struct {
		key string
		v   Duration
		min time.Duration
	}{
		{"plugins.start_timeout", p.StartTimeout, time.Second},
		{"plugins.call_timeout", p.CallTimeout, time.Millisecond},
		{"plugins.call_wait", p.CallWait, 0},
		{"plugins.health_interval", p.HealthInterval, 10 * time.Millisecond},
		{"plugins.health_timeout", p.HealthTimeout, time.Millisecond},
		{"plugins.restart_backoff_min", p.RestartBackoffMin, time.Millisecond},
		{"plugins.notify.retry_min", p.Notify.RetryMin, time.Millisecond},
	} {
		if d.v.D() < d.min {
			return &Error{d.key, fmt.Sprintf("must be at least %s", d.min)}
		}
	}
	if p.RestartBackoffMax < p.RestartBackoffMin {
		return &Error{"plugins.restart_backoff_max", "must not be less than plugins.restart_backoff_min"}
	}
	if p.Notify.RetryMax < p.Notify.RetryMin {
		return &Error{"plugins.notify.retry_max", "must not be less than plugins.notify.retry_min"}
	}
	if p.MaxFailures < 1 {
		return &Error{"plugins.max_failures", "must be at least 1"}
	}
	if p.Notify.MaxAttempts < 1 {
		return &Error{"plugins.notify.max_attempts", "must be at least 1"}
	}
	if p.Dir != "" && !filepath.IsAbs(p.Dir) {
		return &Error{"plugins.dir", "must be an absolute path"}
	}
	seen := map[string]bool{}
	for i := range p.Instances {
		if err := p.Instances[i].validate(fmt.Sprintf("plugins.instances[%d]", i), seen); err != nil {
			return err
		}
	}
	return nil
}

func (p *Plugin) validate(key string, seen map[string]bool) error {
	if !pluginNameRE.MatchString(p.Name) {
		return &Error{key + ".name", fmt.Sprintf("%q is not a plugin name (lower-case letters, digits, '.', '_', '-'; up to 63)", p.Name)}
	}
	if seen[p.Name] {
		return &Error{key + ".name", fmt.Sprintf("plugin %q is declared twice", p.Name)}
	}
	seen[p.Name] = true
	if strings.TrimSpace(p.Path) == "" {
		return &Error{key + ".path", "must not be empty"}
	}
	if !filepath.IsAbs(p.Path) {
		// Resolved against whatever directory the gateway was started in,
		// a relative path would run a different file from another one.
		return &Error{key + ".path", fmt.Sprintf("%q is not an absolute path", p.Path)}
	}
	if sum, err := hex.DecodeString(p.SHA256); err != nil || len(sum) != 32 {
		return &Error{key + ".sha256", "must be the 64 hex digits of the executable's SHA-256 (sha256sum <path>)"}
	}
	for j, e := range p.Env {
		name, _, _ := strings.Cut(e, "=")
		if !envNameRE.MatchString(name) {
			return &Error{fmt.Sprintf("%s.env[%d]", key, j), "want NAME or NAME=value"}
		}
	}
	for j, c := range p.Capabilities {
		if !slices.Contains(pluginCaps, c) {
			return &Error{fmt.Sprintf("%s.capabilities[%d]", key, j), fmt.Sprintf("unknown capability %q (want provisioner, billing, notifier or dns)", c)}
		}
	}
	if _, err := json.Marshal(p.Config); err != nil {
		return &Error{key + ".config", "must be an object that can be written as JSON"}
	}
	return nil
}

// Plugin returns the declaration of the plugin called name.
func (p *Plugins) Plugin(name string) (Plugin, bool) {
	for _, d := range p.Instances {
		if d.Name == name {
			return d, true
		}
	}
	return Plugin{}, false
}
