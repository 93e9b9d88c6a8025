// Package pluginclient is the gateway's side of the Berth plugin protocol:
// it starts (or reattaches to) a plugin process with go-plugin, checks the
// handshake and protocol version, and hands out typed clients for the
// plugin's capabilities (Base, Provisioner, Billing, Notifier, DNSProvider).
//
//	p, err := pluginclient.Start(ctx, pluginclient.Config{
//		Name: "notifier-file", Path: "/usr/lib/berth/plugins/notifier-file",
//		SHA256: "9f2c…", Host: host.Services{KV: kv, Events: sink},
//	})
//	if err != nil { … }            // *sdk.IncompatibleProtocolError, handshake refusal, …
//	defer p.Kill()
//	if err := p.Base().Configure(ctx, rawJSON); err != nil { … }
//	n, err := p.Notifier()         // sdk.ErrUnimplemented if the plugin has no notifier
//
// Every unary call gets a default deadline (Config.CallTimeout) when its
// context has none, and errors come back as the SDK's kinds: errors.Is(err,
// sdk.ErrNotFound) works.
package pluginclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
	"github.com/berthgw/berth/sdk/internal/rpc"
	pb "github.com/berthgw/berth/sdk/proto/berth/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// HostVersions are the protocol versions this host side speaks.
func HostVersions() []int { return []int{sdk.ProtocolVersion} }

// SetOptions configure the PluginSet a host hands to go-plugin.
type SetOptions struct {
	// Host are the services offered back to the plugin; they are
	// registered on the plugin's broker at its first Configure.
	Host host.Services
	// Logger logs the host services' panics; nil discards.
	Logger hclog.Logger
}

// PluginSet returns the go-plugin PluginSet for protocol version 1: each
// entry dispenses the typed client for one service (Base for
// sdk.PluginName, Provisioner for sdk.ProvisionerPluginName, ...).
func PluginSet(opts SetOptions) plugin.PluginSet {
	return plugin.PluginSet{
		sdk.PluginName: &clientPlugin{dispense: func(b *plugin.GRPCBroker, c *grpc.ClientConn) any {
			return &baseClient{c: pb.NewPluginClient(c), broker: b, services: opts.Host, logger: opts.Logger}
		}},
		sdk.ProvisionerPluginName: &clientPlugin{dispense: func(_ *plugin.GRPCBroker, c *grpc.ClientConn) any {
			return &provisionerClient{c: pb.NewProvisionerClient(c)}
		}},
		sdk.BillingPluginName: &clientPlugin{dispense: func(_ *plugin.GRPCBroker, c *grpc.ClientConn) any {
			return &billingClient{c: pb.NewBillingClient(c)}
		}},
		sdk.NotifierPluginName: &clientPlugin{dispense: func(_ *plugin.GRPCBroker, c *grpc.ClientConn) any {
			return &notifierClient{c: pb.NewNotifierClient(c)}
		}},
		sdk.DNSPluginName: &clientPlugin{dispense: func(_ *plugin.GRPCBroker, c *grpc.ClientConn) any {
			return &dnsClient{c: pb.NewDNSProviderClient(c)}
		}},
	}
}

// VersionedPlugins returns the map for plugin.ClientConfig.VersionedPlugins:
// one PluginSet per protocol version this host speaks.
func VersionedPlugins(opts SetOptions) map[int]plugin.PluginSet {
	m := map[int]plugin.PluginSet{}
	for _, v := range HostVersions() {
		m[v] = PluginSet(opts)
	}
	return m
}

// clientPlugin is the host side of one PluginSet entry.
type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	dispense func(*plugin.GRPCBroker, *grpc.ClientConn) any
}

func (p *clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("pluginclient: the host's side of the set cannot serve; plugins use sdk.Serve")
}

func (p *clientPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return p.dispense(b, c), nil
}

// Config says which plugin to run and how.
type Config struct {
	// Name is the plugin's name in the gateway's config; it names the
	// plugin in logs and errors.
	Name string
	// Path is the plugin executable. Exactly one of Path and Reattach.
	Path string
	// Args are passed to the executable.
	Args []string
	// Env is the plugin's whole environment ("KEY=value"): the gateway's
	// own environment is not inherited, so secrets in it do not leak to
	// plugins. go-plugin adds its handshake variables.
	Env []string
	// SHA256 is the hex SHA-256 of the executable. When set, the file is
	// checked before it is started and a mismatch refuses to start it.
	SHA256 string
	// Reattach attaches to a plugin already running in debug mode instead
	// of starting Path.
	Reattach *sdk.ReattachInfo

	// Host are the services offered back to the plugin.
	Host host.Services
	// Logger receives go-plugin's logs and the plugin's re-logged stderr;
	// nil discards.
	Logger hclog.Logger
	// StartTimeout bounds the handshake (default 1 minute).
	StartTimeout time.Duration
	// CallTimeout is the default deadline of a unary call whose context
	// has none (default sdk.DefaultCallTimeout).
	CallTimeout time.Duration
}

// Plugin is a running plugin.
type Plugin struct {
	name    string
	client  *plugin.Client
	base    *baseClient
	info    sdk.Info
	version int
	rpc     plugin.ClientProtocol
	// abandon kills the process by force; Kill calls it after go-plugin's
	// own kill, when it has nothing left to do.
	abandon func()
	// reattached: attached to a plugin in debug (test) mode.
	reattached bool
}

// Start starts the plugin (or attaches to it), negotiates the protocol,
// and reads its Info. ctx bounds the whole start: when it ends during the
// handshake, the process is killed and Start returns ctx's error at once
// (go-plugin alone would wait for StartTimeout). Once Start has returned,
// ctx no longer matters. Errors:
//
//   - *sdk.IncompatibleProtocolError (errors.Is sdk.ErrIncompatibleProtocol)
//     when the plugin speaks no protocol version this host does;
//   - a handshake failure, with the plugin's own explanation from its
//     stderr (a binary that is not a Berth plugin, a cookie mismatch);
//   - plugin.ErrChecksumsDoNotMatch when SHA256 does not match.
func Start(ctx context.Context, cfg Config) (*Plugin, error) {
	if cfg.Name == "" {
		return nil, errors.New("pluginclient: Config.Name is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named(cfg.Name)
	set := SetOptions{Host: cfg.Host, Logger: logger}
	// go-plugin re-logs a line of the plugin's stderr that is not hclog
	// JSON (a stray print) at debug level, where nobody sees it; it is
	// the plugin's output, so it goes at info, under the plugin's name.
	pluginLogger := hclog.Logger(strayLogger{Logger: logger, stderr: filepath.Base(cfg.Path)})
	abandon := func() {}
	tail := &tailWriter{max: 2048}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           pluginLogger,
		StartTimeout:     cfg.StartTimeout,
		GRPCDialOptions:  rpc.DialOptions(cfg.CallTimeout),
		Stderr:           tail,
		// What the plugin prints once served (go-plugin forwards its
		// os.Stdout and os.Stderr) is stray output too: info, like the
		// prints before.
		SyncStdout: lineLogger{log: logger.Named("stdout").Info},
		SyncStderr: lineLogger{log: logger.Named("stderr").Info},
	}
	switch {
	case cfg.Reattach != nil && cfg.Path != "":
		return nil, fmt.Errorf("plugin %q: set Path or Reattach, not both", cfg.Name)
	case cfg.Reattach != nil:
		rc, err := cfg.Reattach.Config()
		if err != nil {
			return nil, fmt.Errorf("plugin %q: %w", cfg.Name, err)
		}
		// go-plugin does not negotiate when reattaching: check here.
		if !slices.Contains(HostVersions(), rc.ProtocolVersion) {
			return nil, &sdk.IncompatibleProtocolError{Plugin: cfg.Name, PluginVersions: []int{rc.ProtocolVersion}, HostVersions: HostVersions()}
		}
		cc.Reattach = rc
		cc.Plugins = PluginSet(set)
	case cfg.Path != "":
		// The process is killed through this context if the start is
		// abandoned, or when the plugin is killed, never otherwise.
		procCtx, endProc := context.WithCancel(context.Background())
		abandon = endProc
		cmd := exec.CommandContext(procCtx, cfg.Path, cfg.Args...)
		cmd.Env = slices.Clone(cfg.Env)
		cc.Cmd = cmd
		cc.SkipHostEnv = true
		cc.AutoMTLS = true
		cc.VersionedPlugins = VersionedPlugins(set)
		if cfg.SHA256 != "" {
			sum, err := hex.DecodeString(strings.TrimSpace(cfg.SHA256))
			if err != nil || len(sum) != sha256.Size {
				return nil, fmt.Errorf("plugin %q: sha256 %q is not 64 hex digits", cfg.Name, cfg.SHA256)
			}
			// Checked here first, to name both digests (go-plugin's own
			// check, just before it runs the file, says only that they
			// differ).
			if err := checkSum(cfg.Name, cfg.Path, hex.EncodeToString(sum)); err != nil {
				return nil, err
			}
			cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
		}
	default:
		return nil, fmt.Errorf("plugin %q: Config.Path or Config.Reattach is required", cfg.Name)
	}

	client := plugin.NewClient(cc)
	// go-plugin's handshake takes no context, and Kill waits for it; so
	// an ended ctx kills the process, which ends the handshake.
	started := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			abandon()
		case <-started:
		}
	}()
	p, err := connect(ctx, cfg.Name, client, tail)
	close(started)
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		// The file changed between the two checks: say what it is now.
		if cerr := checkSum(cfg.Name, cfg.Path, strings.ToLower(strings.TrimSpace(cfg.SHA256))); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		client.Kill()
		abandon()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin %q: start abandoned: %w (%v)", cfg.Name, ctx.Err(), err)
		}
		return nil, err
	}
	p.abandon = abandon
	p.reattached = cfg.Reattach != nil && cfg.Reattach.Test
	return p, nil
}

func connect(ctx context.Context, name string, client *plugin.Client, tail *tailWriter) (*Plugin, error) {
	rpcClient, err := client.Client()
	if err != nil {
		return nil, startError(name, err, tail.String())
	}
	raw, err := rpcClient.Dispense(sdk.PluginName)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: dispense %s: %w", name, sdk.PluginName, err)
	}
	base := raw.(*baseClient)
	info, err := base.GetInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", name, err)
	}
	version := client.NegotiatedVersion()
	if !slices.Contains(info.ProtocolVersions, version) {
		return nil, fmt.Errorf("plugin %q: negotiated protocol v%d but the plugin reports %v", name, version, info.ProtocolVersions)
	}
	return &Plugin{name: name, client: client, base: base, info: info, version: version, rpc: rpcClient}, nil
}

// incompatibleAPI matches go-plugin's error for a version mismatch.
var incompatibleAPI = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (\d+)`)

// unrecognized is go-plugin's error for a first stdout line that is not a
// handshake.
const unrecognized = "Unrecognized remote plugin message: "

// startError explains a failed start in the operator's terms.
func startError(name string, err error, stderr string) error {
	if m := incompatibleAPI.FindStringSubmatch(err.Error()); m != nil {
		v, _ := strconv.Atoi(m[1])
		return &sdk.IncompatibleProtocolError{Plugin: name, PluginVersions: []int{v}, HostVersions: HostVersions()}
	}
	if line, ok := strings.CutPrefix(err.Error(), unrecognized); ok {
		// go-plugin follows the line with generic advice (architecture,
		// libraries, file modes) that does not fit: a Berth plugin's
		// stdout is guarded from the SDK's init on, so a line here was
		// printed before that, by an init function of a package that
		// does not import the SDK (a dependency) or by C code.
		line, _, _ = strings.Cut(line, "\n")
		e := &EarlyOutputError{Plugin: name, Line: strings.TrimSpace(line), Stderr: strings.TrimSpace(stderr)}
		return e
	}
	if stderr = strings.TrimSpace(stderr); stderr != "" {
		return fmt.Errorf("plugin %q: start: %w; the plugin said: %s", name, err, stderr)
	}
	return fmt.Errorf("plugin %q: start: %w", name, err)
}

// EarlyOutputError is a plugin that wrote to its stdout before the SDK's
// stdout guard was in place, so go-plugin read that line where the
// handshake belongs. Stderr is the end of what the plugin wrote there.
type EarlyOutputError struct {
	Plugin string
	Line   string
	Stderr string
}

func (e *EarlyOutputError) Error() string {
	if e.Line == "" {
		msg := fmt.Sprintf("plugin %q: the process ended before its handshake", e.Plugin)
		if e.Stderr != "" {
			msg += "; the plugin said: " + e.Stderr
		}
		return msg
	}
	msg := fmt.Sprintf("plugin %q printed %q on stdout before its handshake. Something in the program wrote to stdout "+
		"before the SDK's stdout guard: an init function of a package that does not import the SDK (often a "+
		"dependency's), or C code; remove or move that print (the guard covers everything from the SDK's own init on)", e.Plugin, e.Line)
	if e.Stderr != "" {
		msg += "; the plugin said: " + e.Stderr
	}
	return msg
}

// ChecksumError is a plugin executable whose SHA-256 is not the one
// configured. It matches go-plugin's plugin.ErrChecksumsDoNotMatch.
type ChecksumError struct {
	Plugin string
	// Path is the executable.
	Path string
	// Expected is the configured digest, Actual the file's, both hex.
	Expected, Actual string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("plugin %q: checksums did not match: expected sha256 %s, but %s has sha256 %s", e.Plugin, e.Expected, e.Path, e.Actual)
}

// Is makes errors.Is(err, plugin.ErrChecksumsDoNotMatch) hold.
func (e *ChecksumError) Is(target error) bool { return target == plugin.ErrChecksumsDoNotMatch }

// FileSHA256 returns the hex SHA-256 of the file at path: the digest a
// plugin's configuration pins.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkSum compares the file's digest with the expected one (lower-case
// hex).
func checkSum(name, path, expected string) error {
	actual, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("plugin %q: checksum: %w", name, err)
	}
	if actual != strings.ToLower(expected) {
		return &ChecksumError{Plugin: name, Path: path, Expected: strings.ToLower(expected), Actual: actual}
	}
	return nil
}

// strayLogger is the logger go-plugin gets. go-plugin re-logs the
// plugin's stderr through the child named after the executable, and a
// line that is not hclog JSON (a stray print) with a bare Debug call
// (hclog lines always carry their timestamp); that child raises those to
// Info. go-plugin's own messages keep their levels.
type strayLogger struct {
	hclog.Logger
	stderr  string // the executable's base name: the stderr child's name
	promote bool
}

func (l strayLogger) Debug(msg string, args ...any) {
	if l.promote && len(args) == 0 {
		l.Logger.Info(msg, "output", "unstructured")
		return
	}
	l.Logger.Debug(msg, args...)
}

func (l strayLogger) Named(name string) hclog.Logger {
	return strayLogger{Logger: l.Logger.Named(name), promote: l.stderr != "" && name == l.stderr}
}

func (l strayLogger) With(args ...any) hclog.Logger {
	return strayLogger{Logger: l.Logger.With(args...), stderr: l.stderr, promote: l.promote}
}

func (l strayLogger) ResetNamed(name string) hclog.Logger {
	return strayLogger{Logger: l.Logger.ResetNamed(name), stderr: l.stderr, promote: l.stderr != "" && name == l.stderr}
}

// Name returns the plugin's name from Config.
func (p *Plugin) Name() string { return p.name }

// Info returns what the plugin reported about itself at start.
func (p *Plugin) Info() sdk.Info { return p.info }

// ProtocolVersion returns the negotiated protocol version.
func (p *Plugin) ProtocolVersion() int { return p.version }

// Base returns the client of the base service.
func (p *Plugin) Base() Base { return p.base }

// Provisioner returns the provisioner client, or an error matching
// sdk.ErrUnimplemented when the plugin does not offer the capability.
func (p *Plugin) Provisioner() (Provisioner, error) {
	v, err := p.dispense(sdk.CapabilityProvisioner, sdk.ProvisionerPluginName)
	if err != nil {
		return nil, err
	}
	return v.(Provisioner), nil
}

// Billing returns the billing client, or an error matching
// sdk.ErrUnimplemented.
func (p *Plugin) Billing() (Billing, error) {
	v, err := p.dispense(sdk.CapabilityBilling, sdk.BillingPluginName)
	if err != nil {
		return nil, err
	}
	return v.(Billing), nil
}

// Notifier returns the notifier client, or an error matching
// sdk.ErrUnimplemented.
func (p *Plugin) Notifier() (Notifier, error) {
	v, err := p.dispense(sdk.CapabilityNotifier, sdk.NotifierPluginName)
	if err != nil {
		return nil, err
	}
	return v.(Notifier), nil
}

// DNS returns the DNS provider client, or an error matching
// sdk.ErrUnimplemented.
func (p *Plugin) DNS() (DNSProvider, error) {
	v, err := p.dispense(sdk.CapabilityDNS, sdk.DNSPluginName)
	if err != nil {
		return nil, err
	}
	return v.(DNSProvider), nil
}

func (p *Plugin) dispense(c sdk.Capability, name string) (any, error) {
	if !p.info.Has(c) {
		return nil, fmt.Errorf("plugin %q does not offer the %s capability: %w", p.name, c, sdk.ErrUnimplemented)
	}
	v, err := p.rpc.Dispense(name)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: dispense %s: %w", p.name, name, err)
	}
	return v, nil
}

// Ping checks that the plugin's gRPC server answers.
func (p *Plugin) Ping() error { return p.rpc.Ping() }

// Exited reports whether the plugin process has exited.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// ReattachInfo returns how to reach the running plugin, e.g. to hand it to
// another gateway process.
func (p *Plugin) ReattachInfo() (sdk.ReattachInfo, bool) {
	rc := p.client.ReattachConfig()
	if rc == nil {
		return sdk.ReattachInfo{}, false
	}
	return sdk.NewReattachInfo(rc), true
}

// Kill stops the plugin: gracefully (it is asked to shut down and given 2
// seconds), then by force. A reattached debug-mode plugin is left running;
// only this side's connection and host services end.
func (p *Plugin) Kill() {
	if p.reattached {
		// go-plugin's Kill does nothing for a plugin in test mode: not
		// even close the connection, or the broker whose listeners (a
		// socket file each) serve the host services.
		if p.base.broker != nil {
			_ = p.base.broker.Close()
		}
		if gc, ok := p.rpc.(*plugin.GRPCClient); ok {
			_ = gc.Conn.Close()
		}
	}
	p.client.Kill()
	if p.abandon != nil {
		p.abandon()
	}
}

// tailWriter keeps the last bytes of the plugin's stderr, to explain a
// failed start.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(b), nil
}

// String returns the kept lines, joined with " | ".
func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range bytes.Split(t.buf, []byte("\n")) {
		if s := strings.TrimSpace(string(l)); s != "" {
			lines = append(lines, s)
		}
	}
	return strings.Join(lines, " | ")
}

// lineLogger logs what a plugin writes to its redirected stdout or
// stderr, which go-plugin would otherwise throw away.
type lineLogger struct {
	log func(msg string, args ...any)
}

func (l lineLogger) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line != "" {
			l.log(line, "output", "unstructured")
		}
	}
	return len(b), nil
}

var _ io.Writer = lineLogger{}
