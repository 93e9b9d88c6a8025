// Package pluginhost runs Berth's plugins: it starts every plugin declared
// under plugins.instances with go-plugin (AutoMTLS, a pinned SHA-256, an
// allowlisted environment), checks each plugin's configuration against its
// JSON Schema and its own ValidateConfig before Configure, supervises the
// processes (health checks, exit watch, restarts with jittered exponential
// backoff and a circuit breaker), and hands the rest of the gateway typed
// clients whose calls go through that supervision. It also serves the host
// side of the plugins' callbacks (a Badger key-value store per plugin and
// an event sink) and a durable notification queue.
//
// Calls to a plugin that is restarting wait up to plugins.call_wait, then
// fail as unavailable. Every error the host's clients return carries a
// fault kind (fault.Unavailable for that one, so billing and other gating
// calls fail closed with a 503); callers test kinds with fault.Is, never
// the host's own errors.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// PermAdmin lets a principal list plugins and reload their configuration.
// The gateway registers it with identity where it wires the host.
const PermAdmin = "plugins:admin"

// AuditCategory groups the host's audit events.
const AuditCategory = "plugins"

// State is where a plugin is in its life.
type State string

// Plugin states.
const (
	// StateStarting: the first start (or a start after reload) is under way.
	StateStarting State = "starting"
	// StateRunning: the plugin is configured and takes calls.
	StateRunning State = "running"
	// StateRestarting: the plugin exited or stopped answering and is being
	// started again after a backoff delay; calls wait briefly for it.
	StateRestarting State = "restarting"
	// StateDegraded: max_failures restarts in a row failed; the circuit is
	// open and calls fail at once, while restarts go on at the longest
	// backoff.
	StateDegraded State = "degraded"
	// StateFailed: the plugin was refused (checksum, handshake, protocol
	// version, configuration, missing capability) and is not retried
	// until its configuration is reloaded.
	StateFailed State = "failed"
	// StateStopped: the host has shut the plugin down.
	StateStopped State = "stopped"
)

// Options are what a Host is built from. The gateway fills them from the
// plugins section of its configuration, which supplies the defaults.
type Options struct {
	// DB keeps the plugins' key-value stores and the notification queue.
	DB *store.DB
	// Plugins are the plugins to run, in order.
	Plugins []Plugin
	// StartTimeout bounds one start of a plugin: process start, handshake,
	// GetInfo, config validation and Configure.
	StartTimeout time.Duration
	// CallTimeout is the deadline of a plugin call whose context has none.
	CallTimeout time.Duration
	// CallWait is how long a call waits for a plugin that is (re)starting
	// before it fails as unavailable.
	CallWait time.Duration
	// HealthInterval is how often each plugin's Health is called.
	HealthInterval time.Duration
	// HealthTimeout bounds one health check; a plugin that does not answer
	// twice in a row is restarted.
	HealthTimeout time.Duration
	// RestartBackoffMin and RestartBackoffMax bound the jittered
	// exponential delay between restarts.
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// MaxFailures is how many restarts in a row may fail before the
	// plugin is marked degraded (the circuit opens).
	MaxFailures int
	// Logger receives the host's logs and the plugins' own, re-logged with
	// the plugin's name; nil discards them.
	Logger *slog.Logger
	// Audit records reloads and state changes; nil records nothing.
	Audit *audit.Log
	// Reload returns the plugins as declared now, for POST
	// /api/v1/plugins/{name}/reload; nil re-applies Plugins. An error that
	// carries a fault kind (a configuration that does not load) is
	// answered with its message.
	Reload func() ([]Plugin, error)
	// LookupEnv resolves the names in a plugin's env allowlist; nil means
	// os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Clock stamps plugin states; nil means time.Now.
	Clock func() time.Time
	// Reattach names plugins already running in debug mode (started by
	// hand with -debug; the gateway takes them from BERTH_PLUGIN_REATTACH):
	// the host attaches to each instead of starting its executable, so no
	// checksum is checked for it, and leaves it running when it stops.
	Reattach map[string]sdk.ReattachInfo
}

// Plugin declares one plugin process.
type Plugin struct {
	// Name is the plugin's name in Berth: in logs, metrics, the API and
	// the rest of the configuration.
	Name string
	// Path is the plugin executable.
	Path string
	// SHA256 is the hex SHA-256 of the executable, checked before every
	// start.
	SHA256 string
	// Args are the executable's command-line arguments.
	Args []string
	// Env is the plugin's whole environment: "NAME" copies the variable
	// from the gateway's environment (when set), "NAME=value" sets it.
	Env []string
	// Required plugins must be running for the gateway to start and to be
	// ready.
	Required bool
	// Capabilities the plugin must offer; a plugin that lacks one is
	// refused.
	Capabilities []string
	// Config is the plugin's configuration object, sent to it as JSON. It
	// may hold secrets: it is never logged.
	Config map[string]any
}

// Host runs and supervises the configured plugins. It is safe for
// concurrent use.
type Host struct {
	opts      Options
	db        *store.DB
	log       *slog.Logger
	audit     *audit.Log
	reload    func() ([]Plugin, error)
	lookupEnv func(string) (string, bool)
	metrics   *metrics
	bus       *eventBus

	mu        sync.RWMutex
	instances []*instance
	started   bool
	stopped   bool
}

// New builds a host for the configured plugins; nothing runs until Start.
func New(opts Options) (*Host, error) {
	if opts.DB == nil {
		return nil, errors.New("pluginhost: Options.DB is required")
	}
	if opts.HealthInterval <= 0 {
		// The gateway's configuration always sets it; zero would stop
		// every plugin's supervisor at its first start.
		return nil, errors.New("pluginhost: Options.HealthInterval must be positive")
	}
	h := &Host{
		opts: opts, db: opts.DB, log: opts.Logger, audit: opts.Audit,
		reload: opts.Reload, lookupEnv: opts.LookupEnv,
		metrics: newMetrics(), bus: newEventBus(),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "pluginhost")
	if h.lookupEnv == nil {
		h.lookupEnv = os.LookupEnv
	}
	if h.reload == nil {
		plugins := opts.Plugins
		h.reload = func() ([]Plugin, error) { return plugins, nil }
	}
	for _, spec := range opts.Plugins {
		h.instances = append(h.instances, newInstance(h, spec))
	}
	return h, nil
}

// Collectors returns the host's Prometheus collectors, for the gateway's
// metrics registry.
func (h *Host) Collectors() []prometheus.Collector { return h.metrics.collectors() }

// Start starts every plugin and waits for the first start of each
// required one to end; optional plugins go on starting in the background,
// so one that hangs does not hold the gateway up (calls to it wait up to
// call_wait meanwhile). A plugin that fails is logged and left failed (or
// restarting); only a required plugin that is not running makes Start
// fail, after stopping the others.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.started {
		h.mu.Unlock()
		return errors.New("pluginhost: already started")
	}
	h.started = true
	insts := slices.Clone(h.instances)
	h.mu.Unlock()

	for name := range h.opts.Reattach {
		// A development aid; an operator must see it was in force.
		h.log.Warn("attaching to a plugin running in debug mode instead of starting its executable; its checksum is not checked",
			"plugin", name, "env", sdk.EnvReattach)
	}
	firsts := make([]<-chan error, len(insts))
	for i, in := range insts {
		firsts[i] = in.startSupervisor()
	}
	var errs []error
	for i, in := range insts {
		if !in.required() {
			// Its failure is logged by its state change.
			continue
		}
		var err error
		select {
		case err = <-firsts[i]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("required plugin %q did not start: %w", in.name, err))
		}
	}
	if len(errs) > 0 {
		_ = h.Stop(context.Background())
		return errors.Join(errs...)
	}
	return nil
}

// Stop drains and stops: new calls are refused, calls in flight may finish
// until ctx ends, then every plugin process is stopped (asked to exit,
// then killed). It is safe to call more than once.
func (h *Host) Stop(ctx context.Context) error {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil
	}
	h.stopped = true
	insts := slices.Clone(h.instances)
	h.mu.Unlock()

	for _, in := range insts {
		in.drain()
	}
	drained := make(chan struct{})
	go func() {
		for _, in := range insts {
			in.calls.Wait()
		}
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("plugin calls still running at shutdown: %w", ctx.Err())
		h.log.Warn("stopping plugins with calls still running", "err", ctx.Err())
	}
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Go(func() {
			in.stopSupervisor()
			in.setState(StateStopped, nil)
		})
	}
	wg.Wait()
	return err
}

// Status is what the API shows of one plugin.
type Status struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Capabilities are those the plugin reported at its last start, or,
	// before it has reported any, those it is declared with.
	Capabilities    []string  `json:"capabilities"`
	ProtocolVersion int       `json:"protocol_version"`
	SDKVersion      string    `json:"sdk_version,omitempty"`
	State           State     `json:"state"`
	Since           time.Time `json:"since"`
	Required        bool      `json:"required"`
	// Restarts counts every start after the first: after a crash, a
	// failed health check or a failed start.
	Restarts int `json:"restarts"`
	// Health is the last answer to a health check (one is made as the
	// plugin starts): serving, degraded, not_serving or unknown.
	Health string `json:"health"`
	// Channels are a notifier's channels, as it listed them at its start.
	Channels []string `json:"channels,omitempty"`
	// LastError says why the plugin is not running; it is cleared when
	// the plugin runs again.
	LastError string `json:"last_error,omitempty"`
	// RecentErrors are the plugin's last errors, newest last, kept when
	// it recovers.
	RecentErrors []ErrorRecord `json:"recent_errors,omitempty"`
}

// ErrorRecord is one error a plugin had, and when.
type ErrorRecord struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

// List returns every plugin's status, in configuration order.
func (h *Host) List() []Status {
	h.mu.RLock()
	insts := slices.Clone(h.instances)
	h.mu.RUnlock()
	out := make([]Status, len(insts))
	for i, in := range insts {
		out[i] = in.status()
	}
	return out
}

// Get returns one plugin's status, or a fault.NotFound error.
func (h *Host) Get(name string) (Status, error) {
	in, err := h.instance(name)
	if err != nil {
		return Status{}, classify(err)
	}
	return in.status(), nil
}

func (h *Host) instance(name string) (*instance, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, in := range h.instances {
		if in.name == name {
			return in, nil
		}
	}
	return nil, fmt.Errorf("plugin %q: %w", name, errUnknownPlugin)
}

// ReadyChecks returns one readiness check per required plugin, keyed by
// plugin name: it fails while the plugin is not running or reports that
// it is not serving.
func (h *Host) ReadyChecks() map[string]func() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	checks := map[string]func() error{}
	for _, in := range h.instances {
		if !in.required() {
			continue
		}
		checks[in.name] = func() error {
			st := in.status()
			if st.State != StateRunning {
				return fmt.Errorf("plugin %q is %s", in.name, st.State)
			}
			if st.Health == sdk.HealthNotServing.String() {
				return fmt.Errorf("plugin %q reports not serving", in.name)
			}
			return nil
		}
	}
	return checks
}

// Subscribe calls fn with every event any plugin emits, until cancel is
// called. fn runs on the plugin's callback and must return quickly (hand
// work to a goroutine or channel of your own).
func (h *Host) Subscribe(fn func(Event)) (cancel func()) { return h.bus.subscribe(fn) }

// RecentEvents returns the last events plugins emitted (up to 1000),
// oldest first.
func (h *Host) RecentEvents() []Event { return h.bus.recent() }

// Reload reads the plugin's declaration again (Options.Reload) and applies
// it. When only its config object changed and the plugin runs, the new
// config is validated (schema and ValidateConfig) and applied with
// Configure in place; an invalid one is refused and the old one stays.
// Otherwise the plugin is restarted with the new declaration. A plugin
// newly added to the configuration is started.
func (h *Host) Reload(ctx context.Context, name string) (Status, error) {
	h.mu.RLock()
	stopped := h.stopped
	h.mu.RUnlock()
	if stopped {
		return Status{}, &unavailableError{Plugin: name, State: StateStopped}
	}
	plugins, err := h.reload()
	if err != nil {
		return Status{}, fmt.Errorf("reload plugin %q: %w", name, err)
	}
	i := slices.IndexFunc(plugins, func(p Plugin) bool { return p.Name == name })
	if i < 0 {
		return Status{}, fmt.Errorf("plugin %q is not in the configuration: %w", name, errUnknownPlugin)
	}
	spec := plugins[i]
	in, err := h.instance(name)
	if err != nil {
		in = newInstance(h, spec)
		h.mu.Lock()
		h.instances = append(h.instances, in)
		h.mu.Unlock()
	}
	err = in.reload(ctx, spec)
	return in.status(), err
}

// env builds a plugin's whole environment from its allowlist: "NAME"
// copies the gateway's variable when set, "NAME=value" sets one. The
// plugin's log level follows the gateway's unless the allowlist sets it.
func (h *Host) env(spec Plugin) []string {
	var env []string
	level := false
	for _, e := range spec.Env {
		name, _, literal := strings.Cut(e, "=")
		if name == sdk.EnvLogLevel {
			level = true
		}
		if literal {
			env = append(env, e)
		} else if v, ok := h.lookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	if !level {
		env = append(env, sdk.EnvLogLevel+"="+strings.ToLower(hclogLevel(h.log).String()))
	}
	return env
}

func (h *Host) recordAudit(ctx context.Context, e audit.Event) {
	if h.audit == nil {
		return
	}
	e.Category = AuditCategory
	e.ResourceType = "plugin"
	h.audit.Record(ctx, e)
}

// NamedNotifier is a notifier plugin and its name.
type NamedNotifier struct {
	Name string
	pluginclient.Notifier
}

// Notifier returns the notifier client of the plugin called name. Its
// calls go through the supervisor.
func (h *Host) Notifier(name string) (pluginclient.Notifier, error) {
	in, err := h.capable(name, sdk.CapabilityNotifier)
	if err != nil {
		return nil, err
	}
	return notifierClient{in}, nil
}

// Notifiers returns every plugin that offers (or, not yet started, is
// declared to offer) the notifier capability, in configuration order.
func (h *Host) Notifiers() []NamedNotifier {
	h.mu.RLock()
	insts := slices.Clone(h.instances)
	h.mu.RUnlock()
	var out []NamedNotifier
	for _, in := range insts {
		if in.offers(sdk.CapabilityNotifier) {
			out = append(out, NamedNotifier{Name: in.name, Notifier: notifierClient{in}})
		}
	}
	return out
}

// Provisioner returns the provisioner client of the plugin called name.
// Its calls go through the supervisor; WatchOperation streams too, but a
// stream does not survive a plugin restart: watch again after an error
// of kind fault.Unavailable.
func (h *Host) Provisioner(name string) (pluginclient.Provisioner, error) {
	in, err := h.capable(name, sdk.CapabilityProvisioner)
	if err != nil {
		return nil, err
	}
	return provisionerClient{in}, nil
}

// Billing returns the billing client of the plugin called name. Calls to
// a plugin that is not running fail as fault.Unavailable: billing fails
// closed.
func (h *Host) Billing(name string) (pluginclient.Billing, error) {
	in, err := h.capable(name, sdk.CapabilityBilling)
	if err != nil {
		return nil, err
	}
	return billingClient{in}, nil
}

// DNS returns the DNS provider client of the plugin called name.
func (h *Host) DNS(name string) (pluginclient.DNSProvider, error) {
	in, err := h.capable(name, sdk.CapabilityDNS)
	if err != nil {
		return nil, err
	}
	return dnsClient{in}, nil
}

// capable returns the plugin called name if it offers c; the error is a
// fault.NotFound for an unknown plugin and a fault.Invalid for one without
// the capability.
func (h *Host) capable(name string, c sdk.Capability) (*instance, error) {
	in, err := h.instance(name)
	if err != nil {
		return nil, classify(err)
	}
	if !in.offers(c) {
		return nil, missing(name, c)
	}
	return in, nil
}

// now reads the host's clock.
func (h *Host) now() time.Time {
	if h.opts.Clock != nil {
		return h.opts.Clock()
	}
	return time.Now()
}
