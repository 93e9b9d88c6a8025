// Package plugintest runs Berth plugins in tests, without a gateway: in the
// test's own process (through go-plugin's test mode, over a real gRPC
// connection) or as a real subprocess (built with go build and started
// with the same client the gateway uses). It also holds the conformance
// suites (RunNotifierConformance, ...) that check a plugin keeps the
// protocol's contract, and in-memory host services (MemoryKV, MemoryEvents).
package plugintest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
	"github.com/berthgw/berth/sdk/internal/rpc"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Client is a running plugin under test, with the host services it was
// given.
type Client struct {
	*pluginclient.Plugin
	// KV is the plugin's host key-value store.
	KV *MemoryKV
	// Events collects the events the plugin emits.
	Events *MemoryEvents
}

// Configure configures the plugin and fails the test on error.
func (c *Client) Configure(t testing.TB, config []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Base().Configure(ctx, config); err != nil {
		t.Fatalf("configure plugin %s: %v", c.Name(), err)
	}
}

// StartInProcess serves opts inside the test process with go-plugin's test
// mode and connects to it through pluginclient, exactly as the gateway
// reattaches to a plugin in debug mode. The plugin stops when the test ends.
func StartInProcess(t testing.TB, opts sdk.Options) *Client {
	t.Helper()
	c, err := startInProcess(t, opts)
	if err != nil {
		t.Fatalf("start plugin %s in process: %v", opts.Name, err)
	}
	return c
}

// StartInProcessErr is StartInProcess returning the error, for tests of
// failures to start.
func StartInProcessErr(t testing.TB, opts sdk.Options) (*Client, error) {
	return startInProcess(t, opts)
}

func startInProcess(t testing.TB, opts sdk.Options) (*Client, error) {
	info, err := serveInProcess(t, opts)
	if err != nil {
		return nil, err
	}
	c, err := connectHost(t, pluginclient.Config{Name: opts.Name, Reattach: &info})
	if err != nil {
		return nil, err
	}
	t.Cleanup(c.Kill)
	return c, nil
}

// ServeInProcess serves opts inside the test process, as a plugin run with
// -debug does, until the test ends, and returns how to reach it; hand it
// to pluginclient.Config.Reattach to connect with settings of your own.
func ServeInProcess(t testing.TB, opts sdk.Options) sdk.ReattachInfo {
	t.Helper()
	info, err := serveInProcess(t, opts)
	if err != nil {
		t.Fatalf("serve plugin %s in process: %v", opts.Name, err)
	}
	return info
}

func serveInProcess(t testing.TB, opts sdk.Options) (sdk.ReattachInfo, error) {
	if opts.Logger == nil {
		opts.Logger = TestLogger(t, opts.Name)
	}
	cfg, err := sdk.NewServeConfig(opts)
	if err != nil {
		return sdk.ReattachInfo{}, err
	}
	// go-plugin stops a test-mode server by closing its listener, and
	// logs the accept loop's end as an error; at teardown that is noise.
	var stopping atomic.Bool
	cfg.Logger = rpc.QuietStop(cfg.Logger, &stopping)
	ctx, cancel := context.WithCancel(context.Background())
	reattachCh := make(chan *plugin.ReattachConfig, 1)
	closeCh := make(chan struct{})
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattachCh, CloseCh: closeCh}
	go plugin.Serve(cfg)
	// Cleanups run last-registered first: clients close before this stops
	// the server.
	t.Cleanup(func() {
		stopping.Store(true)
		cancel()
		<-closeCh
	})
	select {
	case rc := <-reattachCh:
		return sdk.NewReattachInfo(rc), nil
	case <-closeCh:
		return sdk.ReattachInfo{}, fmt.Errorf("plugin server stopped before it was ready")
	case <-time.After(30 * time.Second):
		return sdk.ReattachInfo{}, fmt.Errorf("plugin server not ready after 30s")
	}
}

// StartProcess starts the plugin executable binary as the gateway would:
// with go-plugin, AutoMTLS and the handshake checks. env is added to the
// test's own environment. The plugin is killed when the test ends.
func StartProcess(t testing.TB, binary string, env ...string) *Client {
	t.Helper()
	c, err := StartProcessErr(t, binary, env...)
	if err != nil {
		t.Fatalf("start plugin %s: %v", binary, err)
	}
	return c
}

// StartProcessErr is StartProcess returning the error, for tests of
// failures to start.
func StartProcessErr(t testing.TB, binary string, env ...string) (*Client, error) {
	c, err := connectHost(t, pluginclient.Config{
		Name: filepath.Base(binary),
		Path: binary,
		Env:  append(os.Environ(), env...),
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(c.Kill)
	return c, nil
}

func connectHost(t testing.TB, cfg pluginclient.Config) (*Client, error) {
	kv, events := NewMemoryKV(), NewMemoryEvents()
	cfg.Host = host.Services{KV: kv, Events: events}
	if cfg.Logger == nil {
		cfg.Logger = TestLogger(t, "host")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pluginclient.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Plugin: p, KV: kv, Events: events}, nil
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// Build compiles the main package pkg (a path such as "." or
// "./cmd/myplugin", relative to the test's directory) and returns the
// executable's path. Builds are cached for the life of the test binary,
// so many tests can share one.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if bin, ok := buildCache[abs]; ok {
		return bin
	}
	dir, err := os.MkdirTemp("", "berth-plugintest-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(abs))
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	buildCache[abs] = bin
	return bin
}

// TestLogger returns an hclog logger that writes to the test's log until
// the test ends (and drops lines after, which would otherwise panic). Its
// level comes from BERTH_PLUGIN_LOG_LEVEL, default warn.
func TestLogger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	level := hclog.LevelFromString(os.Getenv(sdk.EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: w})
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
