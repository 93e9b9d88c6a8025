package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// hostFactory starts a fresh plugin for each conformance check through
// the host: env allowlist, checksum, schema check, Configure with the
// Badger-backed host services. The suites then call the plugin's own
// clients.
func hostFactory(pkg string, cfg func(t *testing.T) map[string]any) plugintest.Factory {
	return func(t *testing.T) *plugintest.Client {
		t.Helper()
		th := newHost(t, testSettings(declare(t, "ex", pkg, cfg(t))))
		th.start(t)
		if st := th.status(t, "ex"); st.State != StateRunning {
			t.Fatalf("example plugin not running: %+v", st)
		}
		in, _ := th.instance("ex")
		in.mu.Lock()
		defer in.mu.Unlock()
		return &plugintest.Client{Plugin: in.cur.p}
	}
}

// TestExamplesConformance runs the SDK's conformance suites against the
// SDK's example plugins started by the host.
func TestExamplesConformance(t *testing.T) {
	t.Run("notifier-file", func(t *testing.T) {
		f := hostFactory("github.com/berthgw/berth/sdk/examples/notifier-file", func(t *testing.T) map[string]any {
			return map[string]any{"path": filepath.Join(t.TempDir(), "out.jsonl")}
		})
		plugintest.RunNotifierConformance(t, f, "ops@example.com")
	})
	t.Run("dns-zonefile", func(t *testing.T) {
		const zone = "example.com."
		f := hostFactory("github.com/berthgw/berth/sdk/examples/dns-zonefile", func(t *testing.T) map[string]any {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, zone+"zone"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"dir": dir}
		})
		plugintest.RunDNSConformance(t, f, zone)
	})
}

// TestKV checks the Badger KV backend: isolation between plugins, TTL,
// prefix listing with a cursor, deletes.
func TestKV(t *testing.T) {
	// Near the real time: Badger checks expiry against the wall clock too.
	now := time.Now()
	clock := func() time.Time { return now }
	db, err := store.Open(store.Options{InMemory: true, Clock: func() time.Time { return clock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := newKV(db, "a"), newKV(db, "b")
	a.now = func() time.Time { return clock() }
	ctx := ctxT(t)
	for i := range 25 {
		if err := a.Put(ctx, fmt.Sprintf("k/%02d", i), []byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Put(ctx, "k", []byte("exact"), 0))
	must(a.Put(ctx, "l", []byte("other"), 0))
	must(b.Put(ctx, "k/00", []byte("b's"), 0))

	if v, err := b.Get(ctx, "k/00"); err != nil || string(v) != "b's" {
		t.Errorf("b sees %q, %v", v, err)
	}
	if _, err := b.Get(ctx, "l"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("b reads a's key: %v", err)
	}

	// Page through the prefix "k" ten at a time.
	var keys []string
	after := ""
	for {
		page, more, err := a.List(ctx, "k", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			keys = append(keys, e.Key)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Key
	}
	if len(keys) != 26 || keys[0] != "k" || keys[1] != "k/00" || keys[25] != "k/24" || !slices.IsSorted(keys) {
		t.Errorf("listed %d keys: %v", len(keys), keys)
	}
	all, more, _ := a.List(ctx, "", "", 1000)
	if len(all) != 27 || more {
		t.Errorf("list all: %d, more %v", len(all), more)
	}

	must(a.Put(ctx, "ttl", []byte("soon gone"), 10*time.Second))
	if _, err := a.Get(ctx, "ttl"); err != nil {
		t.Fatalf("fresh TTL key: %v", err)
	}
	now = now.Add(11 * time.Second)
	if _, err := a.Get(ctx, "ttl"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("expired key: %v", err)
	}

	must(a.Delete(ctx, "k"))
	must(a.Delete(ctx, "never-there"))
	if _, err := a.Get(ctx, "k"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("deleted key: %v", err)
	}
	if err := a.Put(ctx, "nul\x00key", nil, 0); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("NUL key: %v", err)
	}
}

// TestKVThroughPlugin: a plugin's host KV calls land in the Badger table
// under its name.
func TestKVThroughPlugin(t *testing.T) {
	th := newHost(t, testSettings(declare(t, "tp", testplugin, nil)))
	th.start(t)
	n, _ := th.Notifier("tp")
	if _, err := n.Send(ctxT(t), sdk.Message{Channel: "ok", Subject: "hello kv"}); err != nil {
		t.Fatal(err)
	}
	if v, err := newKV(th.db, "tp").Get(ctxT(t), "last"); err != nil || string(v) != "hello kv" {
		t.Errorf("KV = %q, %v", v, err)
	}
	if len(th.RecentEvents()) != 1 || th.RecentEvents()[0].Plugin != "tp" {
		t.Errorf("recent events: %+v", th.RecentEvents())
	}
}

// TestEventRing keeps the newest events, oldest first.
func TestEventRing(t *testing.T) {
	b := newEventBus()
	for i := range maxRecentEvents + 5 {
		b.publish(Event{Plugin: "p", Event: sdk.Event{Type: fmt.Sprint(i)}})
	}
	r := b.recent()
	if len(r) != maxRecentEvents || r[0].Type != "5" || r[len(r)-1].Type != fmt.Sprint(maxRecentEvents+4) {
		t.Errorf("ring: %d events, first %s, last %s", len(r), r[0].Type, r[len(r)-1].Type)
	}
}

// TestJittered stays within [d/2, d] of the capped exponential.
func TestJittered(t *testing.T) {
	for attempt := 1; attempt <= 12; attempt++ {
		d := min(time.Second<<(attempt-1), time.Minute)
		for range 50 {
			got := jittered(time.Second, time.Minute, attempt)
			if got < d/2 || got > d {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, got, d/2, d)
			}
		}
	}
}
