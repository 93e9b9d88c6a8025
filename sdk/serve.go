package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/berthgw/berth/sdk/internal/rpc"
	"github.com/berthgw/berth/sdk/internal/testhook"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Options describe a plugin to Serve.
type Options struct {
	// Name is the plugin's name, e.g. "notifier-file". Required.
	Name string
	// Version is the plugin's semantic version, e.g. "1.0.0". Required.
	Version string

	// Config validates and applies the plugin's configuration; build it
	// with TypedConfig. Nil means the plugin takes no configuration and
	// accepts only an empty object.
	Config Configurer
	// ConfigSchema is the JSON Schema of the configuration. When empty it
	// is taken from Config if that was built by TypedConfig.
	ConfigSchema []byte

	// Health reports the plugin's health; nil means always serving.
	Health func(ctx context.Context) Health

	// The capabilities the plugin offers; at least one must be set.
	Provisioner Provisioner
	Billing     Billing
	Notifier    Notifier
	DNS         DNSProvider

	// Logger overrides the default logger (NewLogger(Name)).
	Logger hclog.Logger
}

// Environment variables a plugin reads.
const (
	// EnvDebug, set to a true value, serves in debug mode like -debug.
	EnvDebug = "BERTH_PLUGIN_DEBUG"
	// EnvLogLevel sets the plugin's log level: trace, debug, info (default), warn, error.
	EnvLogLevel = "BERTH_PLUGIN_LOG_LEVEL"
	// EnvReattach is where the gateway looks for plugins started in debug
	// mode: a JSON object from plugin name to ReattachInfo.
	EnvReattach = "BERTH_PLUGIN_REATTACH"
)

// origStderr is the process's stderr before go-plugin points os.Stderr at
// its stdio stream: the plugin's log lines must reach the real stderr, which
// the gateway reads and re-logs.
var origStderr = os.Stderr

// Serve runs the plugin until the gateway is done with it, then returns. It
// is meant to be the last call in main:
//
//   - it refuses to run when not started by a Berth gateway (wrong or
//     missing handshake cookie), explaining why on stderr, and exits 1;
//   - it keeps stdout for go-plugin's handshake line alone: anything else
//     the plugin prints to stdout goes to stderr, so stray prints cannot
//     break the handshake;
//   - it exits when the gateway process dies, so plugins are never orphaned;
//   - it logs JSON lines to stderr (hclog), which the gateway re-logs;
//   - run with -debug (or BERTH_PLUGIN_DEBUG=1) it serves without a gateway
//     and prints the reattach configuration to give the gateway, so the
//     plugin can run under a debugger.
//
// Invalid Options are a bug in the plugin: Serve reports them and exits 1.
func Serve(opts Options) {
	if err := serve(opts, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		name := opts.Name
		if name == "" {
			name = "berth plugin"
		}
		fmt.Fprintf(origStderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func serve(opts Options, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := NewServeConfig(opts)
	if err != nil {
		return err
	}
	if debugRequested(args, getenv) {
		return serveDebug(context.Background(), cfg, opts.Name, stdout)
	}
	if err := checkCookie(getenv); err != nil {
		return err
	}
	if err := checkHostVersions(getenv("PLUGIN_PROTOCOL_VERSIONS"), servedVersions(cfg.VersionedPlugins)); err != nil {
		// Carry on: go-plugin answers with our version and the gateway
		// refuses us in its own terms; this line tells the operator too.
		cfg.Logger.Error("protocol version mismatch", "error", err.Error())
	}
	watchParent(cfg.Logger, os.Exit)
	if err := routeStdout(); err != nil {
		return fmt.Errorf("guard stdout: %w", err)
	}
	plugin.Serve(cfg)
	return nil
}

// NewServeConfig validates opts and returns the go-plugin configuration
// Serve uses. Most plugins never need it; plugintest uses it to serve a
// plugin inside a test process (setting ServeConfig.Test).
func NewServeConfig(opts Options) (*plugin.ServeConfig, error) {
	if err := validateOptions(opts); err != nil {
		return nil, err
	}
	schema := opts.ConfigSchema
	if len(schema) == 0 {
		if s, ok := opts.Config.(interface{ ConfigSchema() []byte }); ok {
			schema = s.ConfigSchema()
		} else if opts.Config == nil {
			schema = []byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema","additionalProperties":false,"type":"object"}`)
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = NewLogger(opts.Name)
	}
	versions := testhook.Served()
	if versions == nil {
		versions = []int{ProtocolVersion}
	}
	srv := newServer(opts, schema, versions, logger)
	set := srv.pluginSet()
	versioned := make(map[int]plugin.PluginSet, len(versions))
	for _, v := range versions {
		versioned[v] = set
	}
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: versioned,
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(o, rpc.ServerOptions(logger)...)...)
		},
		Logger: logger,
	}, nil
}

// semver matches a semantic version (https://semver.org), without a "v".
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// ValidVersion reports whether v is a semantic version such as "1.2.3" or
// "1.0.0-rc.1".
func ValidVersion(v string) bool { return semver.MatchString(v) }

func validateOptions(opts Options) error {
	var problems []string
	if opts.Name == "" {
		problems = append(problems, "Name is required")
	}
	if !ValidVersion(opts.Version) {
		problems = append(problems, fmt.Sprintf("Version %q is not a semantic version like 1.2.3", opts.Version))
	}
	if opts.Provisioner == nil && opts.Billing == nil && opts.Notifier == nil && opts.DNS == nil {
		problems = append(problems, "no capability set (Provisioner, Billing, Notifier or DNS)")
	}
	if len(opts.ConfigSchema) > 0 && !json.Valid(opts.ConfigSchema) {
		problems = append(problems, "ConfigSchema is not valid JSON")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid sdk.Options: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ErrNotStartedByBerth is returned (and printed by Serve) when the plugin
// was started without the gateway's handshake cookie.
var ErrNotStartedByBerth = errors.New("handshake refused")

func checkCookie(getenv func(string) string) error {
	got := getenv(Handshake.MagicCookieKey)
	switch {
	case got == Handshake.MagicCookieValue:
		return nil
	case got == "":
		return fmt.Errorf("%w: this program is a Berth plugin and must be started by the Berth gateway "+
			"(%s is not set); to run it by hand under a debugger, start it with -debug", ErrNotStartedByBerth, Handshake.MagicCookieKey)
	default:
		return fmt.Errorf("%w: %s has the wrong value: the program that started this plugin is not a Berth gateway "+
			"(or speaks another plugin handshake)", ErrNotStartedByBerth, Handshake.MagicCookieKey)
	}
}

// checkHostVersions compares the versions the host offered (go-plugin's
// PLUGIN_PROTOCOL_VERSIONS) with ours.
func checkHostVersions(env string, served []int) error {
	if env == "" {
		return nil
	}
	var host []int
	for _, s := range strings.Split(env, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			host = append(host, v)
		}
	}
	return CheckProtocol(served, host)
}

// NewLogger returns the logger Serve gives a plugin: hclog writing JSON to
// the process's stderr, which go-plugin on the gateway's side parses and
// re-logs under the plugin's name. The level comes from
// BERTH_PLUGIN_LOG_LEVEL (default info).
func NewLogger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		Output:     origStderr,
		JSONFormat: true,
	})
}
