package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/syncbuf"
)

// binDir holds the plugins the tests build, once per test binary.
var (
	binDir   string
	buildMu  sync.Mutex
	binCache = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles a main package (an import path, or a path relative to
// this package's directory) with go build and returns the executable.
func build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := binCache[pkg]; ok {
		return bin
	}
	bin := filepath.Join(binDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	binCache[pkg] = bin
	return bin
}

func sha(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// declare returns the declaration of a plugin built from pkg.
func declare(t testing.TB, name, pkg string, cfg map[string]any, env ...string) Plugin {
	bin := build(t, pkg)
	return Plugin{Name: name, Path: bin, SHA256: sha(t, bin), Config: cfg, Env: env}
}

// testSettings are fast knobs: tests wait by polling, never by sleeping
// for these, so they only decide how quickly things happen.
func testSettings(plugins ...Plugin) Options {
	return Options{
		StartTimeout: 60 * time.Second, CallTimeout: 20 * time.Second, CallWait: 20 * time.Second,
		HealthInterval: 100 * time.Millisecond, HealthTimeout: 2 * time.Second,
		RestartBackoffMin: 10 * time.Millisecond, RestartBackoffMax: 200 * time.Millisecond,
		MaxFailures: 3,
		Plugins:     plugins,
	}
}

type testHost struct {
	*Host
	db    *store.DB
	audit *audit.Log
	logs  *syncbuf.Buffer
}

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// newHost builds a host over an in-memory store; it is stopped when the
// test ends. opts may adjust the options.
func newHost(t testing.TB, o Options, opts ...func(*Options)) *testHost {
	t.Helper()
	return newHostAt(t, slog.LevelDebug, o, opts...)
}

// newHostAt is newHost with the log at level.
func newHostAt(t testing.TB, level slog.Level, o Options, opts ...func(*Options)) *testHost {
	t.Helper()
	logs := &syncbuf.Buffer{}
	db := openDB(t)
	al := audit.New(db, audit.Options{})
	o.DB, o.Audit = db, al
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	for _, f := range opts {
		f(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = h.Stop(ctx)
		if t.Failed() {
			t.Logf("host logs:\n%s", logs.String())
		}
	})
	return &testHost{Host: h, db: db, audit: al, logs: logs}
}

func (th *testHost) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := th.Start(ctx); err != nil {
		t.Fatal(err)
	}
	th.settled(t)
}

// settled waits until every plugin's first start has ended, either way:
// Start waits only for the required ones.
func (th *testHost) settled(t testing.TB) {
	t.Helper()
	th.mu.RLock()
	insts := slices.Clone(th.instances)
	th.mu.RUnlock()
	for _, in := range insts {
		in.mu.Lock()
		done := in.firstDone
		in.mu.Unlock()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("plugin %q: first start did not end", in.name)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// bound; nothing is asserted about how long it took.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (th *testHost) status(t testing.TB, name string) Status {
	t.Helper()
	st, err := th.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// answer is the HTTP status and error code the API answers err with.
func answer(err error) (status int, code string) {
	var ctx fasthttp.RequestCtx
	httpapi.WriteError(&ctx, err)
	var body struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(ctx.Response.Body(), &body)
	return ctx.Response.StatusCode(), body.Error
}
