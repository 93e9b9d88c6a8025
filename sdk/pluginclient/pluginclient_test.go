package pluginclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/internal/fakes"
	"github.com/berthgw/berth/sdk/internal/testhook"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
	"github.com/hashicorp/go-plugin"
)

const fakesConfig = `{"zones": ["example.com."]}`

func testplugin(t *testing.T) string { return plugintest.Build(t, "../internal/testplugin") }

// modes runs a test against the fakes in process and as a real process.
func modes(t *testing.T, run func(t *testing.T, c *plugintest.Client)) {
	t.Run("in-process", func(t *testing.T) {
		c := plugintest.StartInProcess(t, fakes.New().Options())
		c.Configure(t, []byte(fakesConfig))
		run(t, c)
	})
	t.Run("subprocess", func(t *testing.T) {
		c := plugintest.StartProcess(t, testplugin(t))
		c.Configure(t, []byte(fakesConfig))
		run(t, c)
	})
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestErrorMapping checks that each error kind a plugin returns arrives
// at the host as the same kind with the plugin's message.
func TestErrorMapping(t *testing.T) {
	modes(t, func(t *testing.T, c *plugintest.Client) {
		prov, _ := c.Provisioner()
		bill, _ := c.Billing()
		dns, _ := c.DNS()
		notif, _ := c.Notifier()
		if _, err := prov.CreateCluster(ctxT(t), sdk.CreateClusterRequest{Spec: sdk.ClusterSpec{Name: "exists"}}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			call func() error
			kind error
			msg  string // a part of the plugin's own message
		}{
			{"not found", func() error { _, err := dns.GetRecords(ctxT(t), "nope.example."); return err }, sdk.ErrNotFound, `zone "nope.example.": not found`},
			{"already exists", func() error {
				_, err := prov.CreateCluster(ctxT(t), sdk.CreateClusterRequest{Spec: sdk.ClusterSpec{Name: "exists"}})
				return err
			}, sdk.ErrAlreadyExists, `cluster "exists": already exists`},
			{"invalid argument", func() error { _, err := prov.GetCluster(ctxT(t), ""); return err }, sdk.ErrInvalidArgument, "name is required"},
			{"invalid config", func() error { return c.Base().ValidateConfig(ctxT(t), []byte(`{"zones": 3}`)) }, sdk.ErrInvalidConfig, `field "zones"`},
			{"permission denied", func() error {
				_, err := bill.HandleWebhook(ctxT(t), sdk.WebhookRequest{Settings: map[string]string{"webhook_secret": "s3cret"},
					Header: http.Header{"X-Signature": {"00"}}, Body: []byte(`{"id":"evt_1"}`)})
				return err
			}, sdk.ErrPermissionDenied, "signature does not verify"},
			{"unimplemented", func() error {
				_, err := prov.GetJoinMaterial(ctxT(t), sdk.JoinMaterialRequest{ClusterName: "exists"})
				return err
			}, sdk.ErrUnimplemented, "does not provide node join material"},
			{"failed precondition", func() error { _, err := prov.GetConnection(ctxT(t), "exists"); return err }, sdk.ErrFailedPrecondition, "is provisioning"},
			{"deadline", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
				defer cancel()
				_, err := notif.ListChannels(ctx)
				return err
			}, sdk.ErrDeadline, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call()
				if !errors.Is(err, tt.kind) {
					t.Fatalf("error = %v, want kind %v", err, tt.kind)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %q lost the plugin's message %q", err, tt.msg)
				}
			})
		}
	})
}

// TestHostServicesRoundTrip checks the KV and event services the host
// offers over the go-plugin broker: the fake writes to KV and emits an
// event on Send, and pages through 1205 keys when configured to.
func TestHostServicesRoundTrip(t *testing.T) {
	modes(t, func(t *testing.T, c *plugintest.Client) {
		c.Configure(t, []byte(`{"kv_selftest": true}`))
		n, _ := c.Notifier()
		d, err := n.Send(ctxT(t), sdk.Message{Channel: "memory", Target: "ops", Subject: "disk full"})
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.KV.Get(ctxT(t), "last_subject")
		if err != nil || string(v) != "disk full" {
			t.Errorf("KV last_subject = %q, %v", v, err)
		}
		if exp, ok := c.KV.Expires("last_subject"); !ok || time.Until(exp) < 59*time.Minute {
			t.Errorf("TTL not carried: expires %v", exp)
		}
		if _, err := c.KV.Get(ctxT(t), "self/01204"); err != nil {
			t.Errorf("self-test keys missing: %v", err)
		}
		evs := c.Events.Events()
		if len(evs) != 1 || evs[0].Type != "notifier.sent" || evs[0].Subject != d.ProviderMessageID || evs[0].Attributes["target"] != "ops" || evs[0].Time.IsZero() {
			t.Errorf("events = %+v", evs)
		}
	})
}

// TestStrayStdout: the test plugin prints to stdout in init and in main,
// before Serve. The handshake must survive it, and the prints must not be
// lost (they go to stderr, which the host logs).
func TestStrayStdout(t *testing.T) {
	c := plugintest.StartProcess(t, testplugin(t))
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testplugin(t))
	cmd.Env = append(os.Environ(), sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue, "PLUGIN_PROTOCOL_VERSIONS=1")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	first, _, _ := strings.Cut(stdout.String(), "\n")
	if !strings.HasPrefix(first, "1|1|unix|") || !strings.Contains(first, "|grpc") {
		t.Errorf("first stdout line = %q, want the go-plugin handshake", first)
	}
	if strings.Contains(stdout.String(), "hello from") {
		t.Errorf("stray prints reached stdout: %q", stdout.String())
	}
	for _, want := range []string{"hello from init", "hello from main"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q: %q", want, stderr.String())
		}
	}
}

// TestWrongCookieRefused: a host with another handshake cookie (another
// product's go-plugin host, or a mismatched Berth) is refused, and the
// plugin says why on its stderr.
func TestWrongCookieRefused(t *testing.T) {
	stderr := &lockedBuffer{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugin.HandshakeConfig{MagicCookieKey: sdk.Handshake.MagicCookieKey, MagicCookieValue: "not-berth"},
		VersionedPlugins: pluginclient.VersionedPlugins(pluginclient.SetOptions{}),
		Cmd:              exec.Command(testplugin(t)),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Stderr:           stderr,
		Logger:           plugintest.TestLogger(t, "host"),
	})
	_, err := client.Client()
	// Kill waits for the process and for go-plugin to drain its stderr,
	// so the explanation is complete before it is read.
	client.Kill()
	if err == nil {
		t.Fatal("plugin accepted a wrong cookie")
	}
	if !strings.Contains(stderr.String(), "handshake refused") || !strings.Contains(stderr.String(), "wrong value") {
		t.Errorf("plugin did not explain the refusal; error %v, stderr %q", err, stderr.String())
	}
}

// TestRunByHandRefused: started without any gateway, the plugin exits 1
// and tells the person what it is.
func TestRunByHandRefused(t *testing.T) {
	cmd := exec.Command(testplugin(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit = %v, want status 1", err)
	}
	if !strings.Contains(string(out), "must be started by the Berth gateway") || !strings.Contains(string(out), "-debug") {
		t.Errorf("output does not explain: %q", out)
	}
}

// TestIncompatibleVersion: a plugin built for protocol v2 is refused with
// an error naming both versions.
func TestIncompatibleVersion(t *testing.T) {
	check := func(t *testing.T, err error) {
		t.Helper()
		var ipe *sdk.IncompatibleProtocolError
		if !errors.As(err, &ipe) || !errors.Is(err, sdk.ErrIncompatibleProtocol) {
			t.Fatalf("error = %v, want *sdk.IncompatibleProtocolError", err)
		}
		if len(ipe.PluginVersions) != 1 || ipe.PluginVersions[0] != 2 || len(ipe.HostVersions) != 1 || ipe.HostVersions[0] != 1 {
			t.Errorf("versions: plugin %v host %v", ipe.PluginVersions, ipe.HostVersions)
		}
		if !strings.Contains(err.Error(), "protocol v2") || !strings.Contains(err.Error(), "speaks v1") {
			t.Errorf("message does not name both versions: %q", err)
		}
	}
	t.Run("subprocess", func(t *testing.T) {
		_, err := plugintest.StartProcessErr(t, testplugin(t), testhook.EnvServedVersions+"=2")
		check(t, err)
	})
	t.Run("in-process", func(t *testing.T) {
		testhook.ServedVersions = []int{2}
		defer func() { testhook.ServedVersions = nil }()
		_, err := plugintest.StartInProcessErr(t, fakes.New().Options())
		check(t, err)
	})
}

func TestChecksum(t *testing.T) {
	bin := testplugin(t)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	tests := []struct {
		name string
		sum  string
		ok   bool
	}{
		{"match", hex.EncodeToString(sum[:]), true},
		{"mismatch", strings.Repeat("00", 32), false},
		{"malformed", "xyz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pluginclient.Start(ctxT(t), pluginclient.Config{Name: "sum", Path: bin, SHA256: tt.sum, Logger: plugintest.TestLogger(t, "host")})
			if p != nil {
				defer p.Kill()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.name == "mismatch" && !errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
				t.Errorf("err = %v, want ErrChecksumsDoNotMatch", err)
			}
		})
	}
}

func TestCapabilityNotOffered(t *testing.T) {
	c := plugintest.StartInProcess(t, sdk.Options{Name: "only-dns", Version: "0.1.0", DNS: fakes.New()})
	if _, err := c.Notifier(); !errors.Is(err, sdk.ErrUnimplemented) {
		t.Errorf("Notifier() of a DNS-only plugin: %v, want ErrUnimplemented", err)
	}
	if err := c.Base().Configure(ctxT(t), []byte(`{"x": 1}`)); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Errorf("config given to a plugin without any: %v, want ErrInvalidConfig", err)
	}
}

// TestDefaultDeadline: a call whose context has no deadline gets
// CallTimeout; a caller's own deadline is left alone.
func TestDefaultDeadline(t *testing.T) {
	start := func(t *testing.T, reattach *sdk.ReattachInfo, path string) pluginclient.Notifier {
		p, err := pluginclient.Start(ctxT(t), pluginclient.Config{
			Name: "slow", Path: path, Reattach: reattach, CallTimeout: 300 * time.Millisecond, Logger: plugintest.TestLogger(t, "host"),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		if err := p.Base().Configure(ctxT(t), []byte(`{"send_delay": "1s"}`)); err != nil {
			t.Fatal(err)
		}
		n, err := p.Notifier()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(t *testing.T, n pluginclient.Notifier) {
		began := time.Now()
		_, err := n.Send(context.Background(), sdk.Message{Channel: "memory", Subject: "slow"})
		if !errors.Is(err, sdk.ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want the default deadline to expire", err)
		}
		if waited := time.Since(began); waited > 900*time.Millisecond {
			t.Errorf("call took %v: the default deadline was not applied", waited)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := n.Send(ctx, sdk.Message{Channel: "memory", Subject: "patient"}); err != nil {
			t.Errorf("with the caller's own deadline: %v", err)
		}
	}
	t.Run("subprocess", func(t *testing.T) { run(t, start(t, nil, testplugin(t))) })
	t.Run("in-process", func(t *testing.T) {
		info := plugintest.ServeInProcess(t, fakes.New().Options())
		run(t, start(t, &info, ""))
	})
}

// TestParentDeath: a plugin whose gateway is killed with SIGKILL (no
// chance to clean up) exits on its own.
func TestParentDeath(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), envHelperHost+"="+testplugin(t))
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		t.Fatalf("helper host said %q", line)
	}
	if !alive(pid) {
		t.Fatalf("plugin %d not running before the kill", pid)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	// Bounded wait, not a timing assertion: the plugin polls its parent
	// every 500 ms; 30 s leaves room for a loaded machine.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("plugin %d still running 30s after its gateway was killed", pid)
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by
// whoever adopted it) counts as gone.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDebugMode runs the plugin by hand with -debug, as under a debugger,
// and attaches to it with the reattach string it prints.
func TestDebugMode(t *testing.T) {
	cmd := exec.Command(testplugin(t), "-debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var reattach string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), sdk.EnvReattach+"='"); ok {
			reattach = strings.TrimSuffix(after, "'")
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	var infos map[string]sdk.ReattachInfo
	if err := json.Unmarshal([]byte(reattach), &infos); err != nil {
		t.Fatalf("reattach string %q: %v", reattach, err)
	}
	info, ok := infos["fakes"]
	if !ok || info.Pid != cmd.Process.Pid {
		t.Fatalf("reattach info %+v for pid %d", infos, cmd.Process.Pid)
	}
	p, err := pluginclient.Start(ctxT(t), pluginclient.Config{Name: "fakes", Reattach: &info, Logger: plugintest.TestLogger(t, "host")})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Info().Name; got != "fakes" {
		t.Errorf("attached to %q", got)
	}
	p.Kill() // leaves a debug-mode plugin running, by design
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("debug-mode plugin exited with %v after Ctrl-C", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("debug-mode plugin still running 30s after Ctrl-C")
	}
}

// TestStartCancelledDuringHandshake: a process that never answers the
// handshake (here sleep) is killed as soon as the caller's context ends,
// instead of holding Start until StartTimeout.
func TestStartCancelledDuringHandshake(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep is needed to stand in for a hung plugin: %v", err)
	}
	// A sleep length unique to this run tells its process from others'.
	marker := strconv.Itoa(1_000_000 + os.Getpid())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := pluginclient.Start(ctx, pluginclient.Config{Name: "hung", Path: sleep, Args: []string{marker},
			Env: []string{"PATH=" + os.Getenv("PATH")}, StartTimeout: 10 * time.Minute})
		done <- err
	}()
	// Cancel once the process runs, so the cancellation lands mid-handshake.
	waitForProcess(t, marker, true)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Start = %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Start did not return after its context ended")
	}
	waitForProcess(t, marker, false)
}

// waitForProcess waits (bounded, against a hang) until a "sleep <marker>"
// process is running, or until none is.
func waitForProcess(t *testing.T, marker string, running bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if sleepRunning(marker) == running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep %s running: %v, want %v", marker, !running, running)
		}
	}
}

// sleepRunning reports whether a live (not zombie) "sleep <marker>"
// process exists, from /proc.
func sleepRunning(marker string) bool {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie (which has no command line)
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 2 && strings.HasSuffix(args[0], "sleep") && args[1] == marker {
			return true
		}
	}
	return false
}
