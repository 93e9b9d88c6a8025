package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// exitPoll is how often a running plugin's process is checked for exit.
// go-plugin notices the exit at once (it waits on the process); this only
// bounds how long the supervisor takes to see it when no call does.
const exitPoll = 100 * time.Millisecond

// healthMisses is how many health checks in a row may fail before the
// plugin is restarted: one slow answer on a busy machine is not a hang.
const healthMisses = 2

// errExited is the reason a supervisor restarts a plugin whose process
// is gone.
var errExited = errors.New("plugin process exited")

// proc is one running plugin process and its typed clients.
type proc struct {
	p        *pluginclient.Plugin
	info     sdk.Info
	notifier pluginclient.Notifier
	billing  pluginclient.Billing
	prov     pluginclient.Provisioner
	dns      pluginclient.DNSProvider
	// channels are the notifier's channel names, read at start, for
	// routing queued notifications.
	channels []string
	// health is the answer to the health check made at start.
	health sdk.HealthStatus
}

// supervisor is one run of an instance's supervising goroutine.
type supervisor struct {
	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	kick   chan struct{}
	once   sync.Once
}

func (s *supervisor) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until the supervisor is stopped; false means stopped.
func (s *supervisor) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// instance is one configured plugin: its declaration, its current
// process, its state and the goroutine that supervises it.
type instance struct {
	h    *Host
	name string
	log  *slog.Logger
	hlog hclog.Logger
	kv   *KV
	sink *sink

	reloadMu sync.Mutex
	// calls counts calls in flight, for the drain at shutdown.
	calls sync.WaitGroup

	mu       sync.Mutex
	spec     Plugin
	state    State
	since    time.Time
	cur      *proc
	info     sdk.Info
	proto    int
	restarts int
	fails    int
	lastErr  string
	history  []ErrorRecord
	health   sdk.HealthStatus
	channels []string
	// firstDone is closed when the current supervisor's first start
	// has ended, either way.
	firstDone chan struct{}
	draining  bool
	sup       *supervisor
	// changed is closed and replaced at every state change, waking the
	// calls that wait for a (re)starting plugin.
	changed chan struct{}
}

func newInstance(h *Host, spec Plugin) *instance {
	log := h.log.With("plugin", spec.Name)
	in := &instance{
		h: h, name: spec.Name, log: log,
		hlog: newHCLog(log, hclogLevel(log)),
		kv:   newKV(h.db, spec.Name),
		sink: &sink{plugin: spec.Name, bus: h.bus, log: log},
		spec: spec, state: StateStarting, since: h.now(),
		changed: make(chan struct{}), firstDone: make(chan struct{}),
	}
	h.metrics.setState(spec.Name, StateStarting)
	return in
}

func (in *instance) required() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.spec.Required
}

// offers reports whether the plugin offers c: by what it reported at its
// last start, or, before any start, by its declaration.
func (in *instance) offers(c sdk.Capability) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.info.Name != "" {
		return in.info.Has(c)
	}
	return slices.Contains(in.spec.Capabilities, string(c))
}

func (in *instance) status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	caps := make([]string, len(in.info.Capabilities))
	for i, c := range in.info.Capabilities {
		caps[i] = string(c)
	}
	if in.info.Name == "" {
		// Not started yet (or refused before it said): what it is
		// declared to offer.
		caps = slices.Clone(in.spec.Capabilities)
	}
	return Status{
		Name: in.name, Version: in.info.Version, Capabilities: caps,
		ProtocolVersion: in.proto, SDKVersion: in.info.SDKVersion,
		State: in.state, Since: in.since.UTC(), Required: in.spec.Required,
		Restarts: in.restarts, Health: in.health.String(), LastError: in.lastErr,
		Channels: slices.Clone(in.channels), RecentErrors: slices.Clone(in.history),
	}
}

// redact replaces the executable's path in a message with its base name:
// errors from exec and go-plugin quote it, and the API must not show
// internal paths.
func (in *instance) redact(msg string) string {
	in.mu.Lock()
	path := in.spec.Path
	in.mu.Unlock()
	msg = tidy(msg)
	if path == "" {
		return msg
	}
	return strings.ReplaceAll(msg, path, filepath.Base(path))
}

// setState moves the plugin to s, recording err (when not nil) as its last
// error, and logs, audits and counts the change.
func (in *instance) setState(s State, err error) {
	msg := ""
	if err != nil {
		msg = in.redact(err.Error())
	}
	in.mu.Lock()
	from := in.state
	in.state = s
	if err != nil {
		in.lastErr = msg
		in.recordErrorLocked(msg)
	}
	if s == StateRunning {
		// Running again: what went wrong before is history now.
		in.lastErr = ""
	}
	if from != s {
		in.since = in.h.now()
	}
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
	in.reportHealth(from, s, msg)
	if from == s {
		return
	}
	in.h.metrics.setState(in.name, s)
	level := slog.LevelInfo
	if s == StateFailed || s == StateDegraded || s == StateRestarting {
		level = slog.LevelWarn
	}
	args := []any{"from", string(from), "to", string(s)}
	if msg != "" {
		args = append(args, "err", msg)
	}
	in.log.Log(context.Background(), level, "plugin state changed", args...)
	result := audit.ResultSuccess
	if s == StateFailed || s == StateDegraded || s == StateRestarting {
		result = audit.ResultFailure
	}
	details := map[string]string{"from": string(from), "to": string(s)}
	if msg != "" {
		details["error"] = msg
	}
	in.h.recordAudit(context.Background(), audit.Event{Action: "state_change", ResourceID: in.name, Result: result, Reason: string(s), Details: details})
}

// maxHistory is how many of a plugin's errors its status keeps.
const maxHistory = 10

func (in *instance) recordErrorLocked(msg string) {
	in.history = append(in.history, ErrorRecord{At: in.h.now().UTC(), Error: msg})
	if len(in.history) > maxHistory {
		in.history = slices.Clone(in.history[len(in.history)-maxHistory:])
	}
}

// startSupervisor starts the supervising goroutine; the channel receives
// the result of its first start.
func (in *instance) startSupervisor() <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	s := &supervisor{ctx: ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	first := make(chan error, 1)
	firstDone := make(chan struct{})
	in.mu.Lock()
	in.sup = s
	in.draining = false
	in.firstDone = firstDone
	in.mu.Unlock()
	in.setState(StateStarting, nil)
	go in.supervise(s, first)
	return first
}

// stopSupervisor stops the supervising goroutine, which stops the plugin
// process, and waits for both.
func (in *instance) stopSupervisor() {
	in.mu.Lock()
	s := in.sup
	in.sup = nil
	in.mu.Unlock()
	if s == nil {
		return
	}
	s.once.Do(func() {
		s.cancel()
		close(s.stop)
	})
	<-s.done
}

// kickSupervisor asks the supervisor to look at the process now (a call
// saw the connection drop).
func (in *instance) kickSupervisor() {
	in.mu.Lock()
	s := in.sup
	in.mu.Unlock()
	if s != nil {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// drain refuses new calls; calls in flight go on.
func (in *instance) drain() {
	in.mu.Lock()
	in.draining = true
	close(in.changed)
	in.changed = make(chan struct{})
	in.mu.Unlock()
}

func (in *instance) backoff(fails int) time.Duration {
	lo, hi := in.h.opts.RestartBackoffMin, in.h.opts.RestartBackoffMax
	return jittered(lo, hi, fails)
}

// jittered is an exponential delay doubling from lo to hi over attempts,
// with jitter in [d/2, d] so that plugins (or notifications) that failed
// together do not retry in lockstep.
func jittered(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// supervise starts the plugin, watches it, and restarts it when it exits
// or stops answering, until stopped or the plugin is refused.
func (in *instance) supervise(s *supervisor, first chan<- error) {
	defer close(s.done)
	in.mu.Lock()
	firstDone := in.firstDone
	in.mu.Unlock()
	report := func(err error) {
		if first != nil {
			first <- err
			first = nil
			close(firstDone)
		}
	}
	ran := false
	for {
		pr, err := in.start(s)
		if s.stopped() {
			if pr != nil {
				pr.p.Kill()
			}
			report(errors.New("plugin host stopped"))
			return
		}
		if err != nil {
			if permanent(err) || (!ran && refused(err)) {
				in.setState(StateFailed, err)
				report(err)
				return
			}
			in.mu.Lock()
			in.fails++
			in.restarts++ // the next attempt is a restart too
			fails := in.fails
			in.mu.Unlock()
			in.h.metrics.restarts.WithLabelValues(in.name).Inc()
			next := StateRestarting
			if fails >= in.h.opts.MaxFailures {
				next = StateDegraded
			}
			in.setState(next, err)
			report(err)
			if !s.sleep(in.backoff(fails)) {
				return
			}
			continue
		}
		ran = true
		in.install(pr)
		report(nil)
		reason := in.watch(s, pr)
		in.mu.Lock()
		in.cur = nil
		in.mu.Unlock()
		pr.p.Kill()
		if s.stopped() {
			return
		}
		in.mu.Lock()
		in.restarts++
		in.fails++
		fails := in.fails
		in.mu.Unlock()
		in.h.metrics.restarts.WithLabelValues(in.name).Inc()
		next := StateRestarting
		if fails >= in.h.opts.MaxFailures {
			next = StateDegraded
		}
		in.setState(next, reason)
		if !s.sleep(in.backoff(fails)) {
			return
		}
	}
}

// permanent reports refusals that a restart cannot cure.
func permanent(err error) bool {
	return errors.Is(err, plugin.ErrChecksumsDoNotMatch) ||
		errors.Is(err, sdk.ErrIncompatibleProtocol) ||
		errors.Is(err, sdk.ErrInvalidConfig) ||
		errors.Is(err, errNoCapability) ||
		errors.Is(err, errExecutable)
}

// errExecutable: the configured path is not an executable file. Checked
// before each start rather than read from exec's errors, because a
// connection error (a vanished socket) can wrap ENOENT too.
var errExecutable = errors.New("not an executable file")

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plugin executable %s: %w (%w)", filepath.Base(path), errExecutable, errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin executable %s: %w", filepath.Base(path), errExecutable)
	}
	return nil
}

// refused reports a plugin process that exited during the handshake: it
// refused to run (a wrong cookie, a binary that is not a Berth plugin).
// At a plugin's first start that is final; later it may be a crash.
func refused(err error) bool {
	var early *pluginclient.EarlyOutputError
	if errors.As(err, &early) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "plugin exited before we could connect") ||
		strings.Contains(msg, "Unrecognized remote plugin message")
}

// tidy drops go-plugin's generic troubleshooting paragraph from a start
// error (architecture, dynamic libraries, file modes and owners), which
// buries the plugin's own explanation that follows it.
func tidy(msg string) string {
	i := strings.Index(msg, "\nThis usually means")
	if i < 0 {
		return msg
	}
	rest := msg[i:]
	if j := strings.Index(rest, "; the plugin said:"); j >= 0 {
		return strings.TrimSpace(msg[:i]) + rest[j:]
	}
	return strings.TrimSpace(msg[:i])
}

// configJSON is the plugin's config object as JSON; none is {}.
func configJSON(c map[string]any) ([]byte, error) {
	if c == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b, nil
}

// start runs one start of the plugin: process and handshake, then the
// checks of its capabilities and configuration, then Configure.
func (in *instance) start(s *supervisor) (*proc, error) {
	in.mu.Lock()
	spec := in.spec
	in.mu.Unlock()
	cfg := in.h.opts
	pc := pluginclient.Config{
		Name:         in.name,
		Host:         host.Services{KV: in.kv, Events: in.sink},
		Logger:       in.hlog,
		StartTimeout: cfg.StartTimeout,
		CallTimeout:  cfg.CallTimeout,
	}
	if info, ok := cfg.Reattach[in.name]; ok {
		// A plugin run by hand with -debug: there is no executable to
		// start, so none to check.
		pc.Reattach = &info
	} else {
		if err := checkExecutable(spec.Path); err != nil {
			return nil, err
		}
		pc.Path, pc.Args, pc.Env, pc.SHA256 = spec.Path, spec.Args, in.h.env(spec), spec.SHA256
	}
	ctx, cancel := context.WithTimeout(s.ctx, cfg.StartTimeout)
	defer cancel()
	// timedOut names the limit when the start ran out of time: the
	// error of the step that was cut short (a gRPC stream reset, a
	// killed handshake) does not say why it was cut.
	timedOut := func(step string, err error) error {
		if ctx.Err() == context.DeadlineExceeded && s.ctx.Err() == nil {
			return fmt.Errorf("plugin %q: start_timeout (%s) exceeded during %s: %w", in.name, cfg.StartTimeout, step, context.DeadlineExceeded)
		}
		return err
	}
	p, err := pluginclient.Start(ctx, pc)
	if err != nil {
		return nil, timedOut("the handshake", err)
	}
	pr, step, err := in.prepare(ctx, p, spec)
	if err != nil {
		p.Kill()
		return nil, timedOut(step, err)
	}
	return pr, nil
}

// prepare checks a started plugin against its declaration and configures
// it; on failure, step says what it was doing.
func (in *instance) prepare(ctx context.Context, p *pluginclient.Plugin, spec Plugin) (_ *proc, step string, _ error) {
	info := p.Info()
	in.mu.Lock()
	in.info, in.proto = info, p.ProtocolVersion()
	in.mu.Unlock()
	if err := in.validate(ctx, p, spec); err != nil {
		return nil, "ValidateConfig", err
	}
	raw, err := configJSON(spec.Config)
	if err != nil {
		return nil, "Configure", err
	}
	if err := p.Base().Configure(ctx, raw); err != nil {
		if errors.Is(err, sdk.ErrInvalidConfig) {
			return nil, "Configure", &configError{Plugin: in.name, Problems: []string{pluginProblem(err)}}
		}
		return nil, "Configure", fmt.Errorf("plugin %q: %w", in.name, err)
	}
	pr := &proc{p: p, info: info, health: sdk.HealthUnknown}
	if info.Has(sdk.CapabilityNotifier) {
		if pr.notifier, err = p.Notifier(); err != nil {
			return nil, "ListChannels", err
		}
		chans, err := pr.notifier.ListChannels(ctx)
		if err != nil {
			return nil, "ListChannels", fmt.Errorf("plugin %q: %w", in.name, err)
		}
		for _, c := range chans {
			pr.channels = append(pr.channels, c.Name)
		}
	}
	if info.Has(sdk.CapabilityBilling) {
		if pr.billing, err = p.Billing(); err != nil {
			return nil, "start", err
		}
	}
	if info.Has(sdk.CapabilityProvisioner) {
		if pr.prov, err = p.Provisioner(); err != nil {
			return nil, "start", err
		}
	}
	if info.Has(sdk.CapabilityDNS) {
		if pr.dns, err = p.DNS(); err != nil {
			return nil, "start", err
		}
	}
	// The status shows health from the start, not "unknown" until the
	// first periodic check; a plugin that does not answer this one is
	// still started (the periodic checks judge it).
	hctx, cancel := context.WithTimeout(ctx, in.h.opts.HealthTimeout)
	if hs, err := p.Base().Health(hctx); err == nil {
		pr.health = hs.Status
	}
	cancel()
	return pr, "", nil
}

// pluginProblem is a plugin's refusal of its config without the words
// the layers added on the way ("ValidateConfig: invalid config: …"): the
// configError around it says "invalid config" once.
func pluginProblem(err error) string {
	msg := err.Error()
	for _, p := range []string{"ValidateConfig: ", "Configure: ", sdk.ErrInvalidConfig.Error() + ": "} {
		msg = strings.TrimPrefix(msg, p)
	}
	// A plugin's own Validate often ends "…: %w" with ErrInvalidConfig.
	return strings.TrimSuffix(msg, ": "+sdk.ErrInvalidConfig.Error())
}

// validate checks the declared capabilities and the config object: first
// against the plugin's JSON Schema here, then with the plugin's own
// ValidateConfig (rules a schema cannot say).
func (in *instance) validate(ctx context.Context, p *pluginclient.Plugin, spec Plugin) error {
	info := p.Info()
	for _, c := range spec.Capabilities {
		if !info.Has(sdk.Capability(c)) {
			return fmt.Errorf("plugin %q is declared with the %s capability but offers only %v: %w", in.name, c, info.Capabilities, errNoCapability)
		}
	}
	raw, err := configJSON(spec.Config)
	if err != nil {
		return err
	}
	if err := validateSchema(in.name, info.ConfigSchema, raw); err != nil {
		return err
	}
	if err := p.Base().ValidateConfig(ctx, raw); err != nil {
		if errors.Is(err, sdk.ErrInvalidConfig) {
			return &configError{Plugin: in.name, Problems: []string{pluginProblem(err)}}
		}
		return fmt.Errorf("plugin %q: %w", in.name, err)
	}
	return nil
}

// install makes pr the process calls go to.
func (in *instance) install(pr *proc) {
	in.mu.Lock()
	in.cur = pr
	in.health = pr.health
	in.channels = pr.channels
	in.mu.Unlock()
	in.setState(StateRunning, nil)
}

// watch returns when the plugin's process exits, it fails health checks
// healthMisses times in a row, or the supervisor is stopped (nil).
func (in *instance) watch(s *supervisor, pr *proc) error {
	health := time.NewTicker(in.h.opts.HealthInterval)
	defer health.Stop()
	exit := time.NewTicker(exitPoll)
	defer exit.Stop()
	misses := 0
	for {
		select {
		case <-s.stop:
			return nil
		case <-s.kick:
			if pr.p.Exited() {
				return errExited
			}
		case <-exit.C:
			if pr.p.Exited() {
				return errExited
			}
		case <-health.C:
			ctx, cancel := context.WithTimeout(s.ctx, in.h.opts.HealthTimeout)
			hs, err := pr.p.Base().Health(ctx)
			cancel()
			if pr.p.Exited() {
				return errExited
			}
			if s.stopped() {
				return nil
			}
			if err != nil {
				misses++
				in.log.Warn("plugin health check failed", "misses", misses, "err", in.redact(err.Error()))
				if misses >= healthMisses {
					return fmt.Errorf("health check failed %d times in a row: %w", misses, err)
				}
				continue
			}
			misses = 0
			in.mu.Lock()
			// A healthy answer after a start closes the circuit: the
			// restart worked.
			in.fails = 0
			in.health = hs.Status
			in.mu.Unlock()
		}
	}
}

// acquire returns the process to call, waiting up to call_wait for a
// plugin that is starting or restarting. The caller must call in.calls.Done
// after its call.
func (in *instance) acquire(ctx context.Context) (*proc, error) {
	var timeout <-chan time.Time
	in.mu.Lock()
	for {
		if in.draining {
			in.mu.Unlock()
			return nil, &unavailableError{Plugin: in.name, State: StateStopped}
		}
		switch in.state {
		case StateRunning:
			if in.cur != nil {
				pr := in.cur
				in.calls.Add(1)
				in.mu.Unlock()
				return pr, nil
			}
		case StateStarting, StateRestarting:
		default:
			st, last := in.state, in.lastErr
			in.mu.Unlock()
			e := &unavailableError{Plugin: in.name, State: st}
			if last != "" {
				e.Cause = errors.New(last)
			}
			return nil, e
		}
		changed, st := in.changed, in.state
		in.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(in.h.opts.CallWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, &unavailableError{Plugin: in.name, State: st, Cause: errors.New("did not become ready within plugins.call_wait")}
		case <-ctx.Done():
			return nil, &unavailableError{Plugin: in.name, State: st, Cause: ctx.Err()}
		}
		in.mu.Lock()
	}
}

// call runs fn against the plugin's current process, counting and timing
// it. A call that fails because the process died becomes an
// *unavailableError and makes the supervisor look at once.
func (in *instance) call(ctx context.Context, method string, fn func(*proc) error) error {
	start := time.Now()
	pr, err := in.acquire(ctx)
	if err == nil {
		err = fn(pr)
		in.calls.Done()
		if err != nil && errors.Is(err, sdk.ErrRetryable) && (pr.p.Exited() || pr.p.Ping() != nil) {
			in.kickSupervisor()
			err = &unavailableError{Plugin: in.name, State: StateRestarting, Cause: fmt.Errorf("the plugin process went away during %s: %w", method, err)}
		}
	}
	result := "ok"
	switch {
	case errors.Is(err, errUnavailable):
		result = "unavailable"
	case err != nil:
		result = "error"
	}
	in.h.metrics.calls.WithLabelValues(in.name, method, result).Inc()
	in.h.metrics.latency.WithLabelValues(in.name, method).Observe(time.Since(start).Seconds())
	return err
}

// sameLaunch reports whether two declarations start the same process the
// same way, so that a reload can reconfigure in place.
func sameLaunch(a, b Plugin) bool {
	return a.Path == b.Path && a.SHA256 == b.SHA256 && slices.Equal(a.Args, b.Args) &&
		slices.Equal(a.Env, b.Env) && slices.Equal(a.Capabilities, b.Capabilities)
}

// reload applies a new declaration; see Host.Reload.
func (in *instance) reload(ctx context.Context, spec Plugin) error {
	in.reloadMu.Lock()
	defer in.reloadMu.Unlock()
	in.mu.Lock()
	old, pr, state := in.spec, in.cur, in.state
	in.mu.Unlock()
	// The executable is checked again: one replaced under the same
	// declaration must not go on running until its next crash, then fail
	// there; it is restarted now, and refused now if it does not match.
	if sameLaunch(old, spec) && state == StateRunning && pr != nil && in.unchanged(spec) {
		if err := in.validate(ctx, pr.p, spec); err != nil {
			in.mu.Lock()
			in.lastErr = in.redactLocked(err.Error())
			in.mu.Unlock()
			return err
		}
		raw, err := configJSON(spec.Config)
		if err != nil {
			return err
		}
		if err := pr.p.Base().Configure(ctx, raw); err != nil {
			return fmt.Errorf("plugin %q: %w", in.name, err)
		}
		// The new configuration is in place: an error from before it
		// (a refused reload, say) no longer describes the plugin.
		in.mu.Lock()
		in.spec = spec
		in.lastErr = ""
		in.mu.Unlock()
		return nil
	}
	in.stopSupervisor()
	in.mu.Lock()
	in.spec = spec
	in.fails = 0
	in.info = sdk.Info{}
	in.channels = nil
	// The plugin starts afresh: its last error is whatever this start
	// reports, not what an earlier run did.
	in.lastErr = ""
	in.mu.Unlock()
	select {
	case err := <-in.startSupervisor():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unchanged reports whether the plugin's executable still has its
// declared digest (a reattached debug plugin has none to check).
func (in *instance) unchanged(spec Plugin) bool {
	if _, ok := in.h.opts.Reattach[in.name]; ok {
		return true
	}
	sum, err := pluginclient.FileSHA256(spec.Path)
	return err == nil && strings.EqualFold(sum, strings.TrimSpace(spec.SHA256))
}

func (in *instance) redactLocked(msg string) string {
	if in.spec.Path == "" {
		return msg
	}
	return strings.ReplaceAll(msg, in.spec.Path, filepath.Base(in.spec.Path))
}
