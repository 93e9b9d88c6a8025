package pluginhost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/sdk"
)

const testplugin = "./testdata/testplugin"

// pid asks the test plugin for its process id, through the host.
func pid(t *testing.T, th *testHost, name string) int {
	t.Helper()
	n, err := th.Notifier(name)
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Send(ctxT(t), sdk.Message{Channel: "pid"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(d.ProviderMessageID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRefused: plugins that must not run are refused with the reason in
// their status, the host itself starts (they are not required), and a
// required one makes Start fail.
func TestRefused(t *testing.T) {
	bad := declare(t, "p", testplugin, nil)
	bad.SHA256 = strings.Repeat("0", 64)
	tests := []struct {
		name string
		spec Plugin
		want []string // parts of the last error
		not  string   // must not appear in it
		kind error
	}{
		{"wrong cookie", declare(t, "p", "./testdata/othercookie", nil),
			[]string{"the plugin said: This binary is a plugin. These are not meant to be executed directly"}, "", nil},
		{"unsupported protocol version", declare(t, "p", "./testdata/protov2", nil),
			[]string{"speaks Berth plugin protocol v2 but this gateway speaks v1"}, "", sdk.ErrIncompatibleProtocol},
		{"checksum mismatch names both digests", bad, []string{"checksums did not match", "expected sha256 " + bad.SHA256, "has sha256 " + sha(t, bad.Path)}, "", nil},
		{"config type error", declare(t, "p", testplugin, map[string]any{"port": "eighty"}),
			[]string{"invalid config", "field /port"}, "eighty", sdk.ErrInvalidConfig},
		{"config pattern error hides the value", declare(t, "p", testplugin, map[string]any{"token": "s3cret-Value-42"}),
			[]string{"field /token", "does not match the pattern"}, "s3cret-Value-42", sdk.ErrInvalidConfig},
		{"config unknown field", declare(t, "p", testplugin, map[string]any{"colour": "blue"}),
			[]string{"colour"}, "blue", sdk.ErrInvalidConfig},
		{"config refused by the plugin's ValidateConfig", declare(t, "p", testplugin, map[string]any{"label": "forbidden"}),
			[]string{"refused by the plugin"}, "", sdk.ErrInvalidConfig},
		{"missing capability", func() Plugin {
			s := declare(t, "p", testplugin, nil)
			s.Capabilities = []string{"dns"}
			return s
		}(), []string{"declared with the dns capability"}, "", errNoCapability},
		{"missing executable", func() Plugin {
			s := declare(t, "p", testplugin, nil)
			s.Path = filepath.Join(t.TempDir(), "gone")
			return s
		}(), []string{"plugin executable gone: not an executable file"}, "", nil},
		{"stdout before the SDK's guard", declare(t, "p", "./testdata/earlyprint", nil),
			[]string{`printed "noise: printed before the SDK could guard stdout" on stdout before its handshake`,
				"an init function of a package that does not import the SDK"}, "architecture", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newHost(t, testSettings(tt.spec))
			th.start(t)
			st := th.status(t, "p")
			if st.State != StateFailed {
				t.Fatalf("state = %s, want failed (last error %q)", st.State, st.LastError)
			}
			for _, w := range tt.want {
				if !strings.Contains(st.LastError, w) {
					t.Errorf("last error %q lacks %q", st.LastError, w)
				}
			}
			if tt.not != "" && strings.Contains(st.LastError+th.logs.String(), tt.not) {
				t.Errorf("the value %q leaked into the error or the logs", tt.not)
			}
			if strings.Contains(st.LastError, binDir) {
				t.Errorf("last error shows an internal path: %q", st.LastError)
			}
			n, _ := th.Notifier("p")
			if n != nil {
				if _, err := n.ListChannels(ctxT(t)); !errors.Is(err, errUnavailable) {
					t.Errorf("call to a failed plugin: %v, want errUnavailable", err)
				}
			}

			// Required, the same plugin stops the host from starting.
			spec := tt.spec
			spec.Required = true
			req := newHost(t, testSettings(spec))
			err := req.Start(ctxT(t))
			if err == nil || !strings.Contains(err.Error(), `required plugin "p"`) {
				t.Fatalf("Start with a required refused plugin = %v", err)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("error %v does not match %v", err, tt.kind)
			}
		})
	}
}

// TestStdoutInInit: a plugin that prints to stdout in init and main (the
// SDK guards stdout) works, and its prints reach the gateway's log.
func TestStdoutInInit(t *testing.T) {
	th := newHost(t, testSettings(declare(t, "loud", "./testdata/stdoutinit", nil)))
	th.start(t)
	n, err := th.Notifier("loud")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(ctxT(t), sdk.Message{Channel: "ok"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the init print in the log", func() bool {
		return strings.Contains(th.logs.String(), "hello from init")
	})
}

// TestKillMidCall: the plugin is killed with SIGKILL while a call is in
// it. That call fails cleanly with errUnavailable, the plugin is
// restarted, and the next call succeeds.
func TestKillMidCall(t *testing.T) {
	th := newHost(t, testSettings(declare(t, "tp", testplugin, map[string]any{"label": "a"})))
	blocking := make(chan struct{}, 1)
	cancel := th.Subscribe(func(ev Event) {
		if ev.Plugin == "tp" && ev.Type == "blocking" {
			blocking <- struct{}{}
		}
	})
	defer cancel()
	th.start(t)
	old := pid(t, th, "tp")
	n, _ := th.Notifier("tp")

	done := make(chan error, 1)
	go func() {
		_, err := n.Send(ctxT(t), sdk.Message{Channel: "block"})
		done <- err
	}()
	<-blocking
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if !errors.Is(err, errUnavailable) {
		t.Fatalf("call during the kill = %v, want errUnavailable", err)
	}
	waitFor(t, "the restart", func() bool {
		st := th.status(t, "tp")
		return st.State == StateRunning && st.Restarts == 1
	})
	if _, err := n.Send(ctxT(t), sdk.Message{Channel: "ok", Subject: "after"}); err != nil {
		t.Fatalf("call after the restart: %v", err)
	}
	if now := pid(t, th, "tp"); now == old || !alive(now) || alive(old) {
		t.Errorf("pids: old %d (alive %v), new %d", old, alive(old), now)
	}
	// Running again, the plugin has no last error; the crash is in its
	// history.
	st := th.status(t, "tp")
	if st.LastError != "" {
		t.Errorf("last error after recovery = %q, want none", st.LastError)
	}
	if len(st.RecentErrors) == 0 || !strings.Contains(st.RecentErrors[len(st.RecentErrors)-1].Error, "plugin process exited") {
		t.Errorf("recent errors = %+v", st.RecentErrors)
	}
}

// TestHang: a call that never returns gets a deadline error while other
// calls to the same plugin go on; a plugin whose health check hangs is
// restarted.
func TestHang(t *testing.T) {
	hang := filepath.Join(t.TempDir(), "hang")
	th := newHost(t, testSettings(declare(t, "tp", testplugin, nil, "TESTPLUGIN_HANG_FILE="+hang)))
	th.start(t)
	n, _ := th.Notifier("tp")
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := n.Send(ctx, sdk.Message{Channel: "hang"}); !errors.Is(err, sdk.ErrDeadline) {
			t.Errorf("hanging call = %v, want a deadline error", err)
		}
	})
	for range 20 {
		if _, err := n.Send(ctxT(t), sdk.Message{Channel: "ok"}); err != nil {
			t.Fatalf("call beside the hanging one: %v", err)
		}
	}
	wg.Wait()
	if st := th.status(t, "tp"); st.State != StateRunning || st.Restarts != 0 {
		t.Fatalf("after a hanging call: %+v", st)
	}

	if err := os.WriteFile(hang, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart after hung health checks", func() bool { return th.status(t, "tp").Restarts >= 1 })
	if !strings.Contains(th.status(t, "tp").LastError, "health check failed") {
		t.Errorf("last error = %q", th.status(t, "tp").LastError)
	}
	_ = os.Remove(hang)
	waitFor(t, "running again", func() bool { return th.status(t, "tp").State == StateRunning })
	if _, err := n.Send(ctxT(t), sdk.Message{Channel: "ok"}); err != nil {
		t.Fatal(err)
	}
}

// TestCircuitBreaker: a plugin whose restarts keep failing is marked
// degraded; billing calls then fail closed (503) at once, and recover when
// the plugin can start again.
func TestCircuitBreaker(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash")
	spec := declare(t, "tp", testplugin, nil, "TESTPLUGIN_CRASH_FILE="+crash)
	spec.Required = true
	th := newHost(t, testSettings(spec))
	th.start(t)
	ready := th.ReadyChecks()["tp"]
	if err := ready(); err != nil {
		t.Fatalf("ready while running: %v", err)
	}
	b, err := th.Billing("tp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Settings(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(crash, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid(t, th, "tp"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "degraded", func() bool { return th.status(t, "tp").State == StateDegraded })
	if err := ready(); err == nil {
		t.Error("ready while degraded")
	}
	_, err = b.ListInvoices(ctxT(t), sdk.InvoicesRequest{Settings: map[string]string{"secret_key": "k"}, CustomerID: "cus_1"})
	if !errors.Is(err, errUnavailable) {
		t.Fatalf("billing while degraded = %v, want errUnavailable", err)
	}
	if status, code := answer(err); status != fasthttp.StatusServiceUnavailable || code != "unavailable" {
		t.Errorf("answered %d %s, want 503 unavailable", status, code)
	}

	_ = os.Remove(crash)
	waitFor(t, "running again", func() bool { return th.status(t, "tp").State == StateRunning })
	c, err := b.CreateCheckout(ctxT(t), sdk.CheckoutRequest{IdempotencyKey: "k1", Settings: map[string]string{"secret_key": "k"}, OrderID: "o1",
		Plan: sdk.Plan{ID: "basic", Name: "Basic", PriceMinor: 100, Currency: "eur", Interval: sdk.IntervalMonth}, SuccessURL: "https://berth.example/ok"})
	if err != nil || c.SessionID != "cs-k1" || c.URL != "https://pay.example/basic" {
		t.Fatalf("billing after recovery: %+v, %v", c, err)
	}
	if err := ready(); err != nil {
		t.Errorf("not ready after recovery: %v", err)
	}
}

// TestBillingCalls: every call of the billing protocol goes through the
// supervisor to the plugin and back, and the plugin's error kinds arrive
// as the gateway's: refused settings are a 400 that names the setting.
func TestBillingCalls(t *testing.T) {
	th := newHost(t, testSettings(declare(t, "tp", testplugin, nil)))
	th.start(t)
	b, err := th.Billing("tp")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{"secret_key": "sk_1"}
	sts, err := b.Settings(ctxT(t))
	if err != nil || len(sts) != 1 || sts[0].Name != "secret_key" || !sts[0].Secret || !sts[0].Required {
		t.Fatalf("Settings = %+v, %v", sts, err)
	}
	if err := b.CheckSettings(ctxT(t), settings); err != nil {
		t.Fatal(err)
	}
	err = b.CheckSettings(ctxT(t), nil)
	if status, code := answer(err); !errors.Is(err, sdk.ErrInvalidArgument) || status != fasthttp.StatusBadRequest || code == "" {
		t.Errorf("CheckSettings without the key = %v, answered %d %s; want a 400", err, status, code)
	}
	if !strings.Contains(err.Error(), "secret_key") {
		t.Errorf("the refusal %q does not name the setting", err)
	}
	plan := sdk.Plan{ID: "basic", Name: "Basic", PriceMinor: 100, Currency: "eur", Interval: sdk.IntervalOnce}
	c, err := b.CreateCheckout(ctxT(t), sdk.CheckoutRequest{IdempotencyKey: "k1", Settings: settings, OrderID: "o1", Plan: plan, SuccessURL: "https://berth.example/ok"})
	if err != nil || c.SessionID != "cs-k1" {
		t.Fatalf("CreateCheckout = %+v, %v", c, err)
	}
	plan.Currency = "EUR"
	_, err = b.CreateCheckout(ctxT(t), sdk.CheckoutRequest{Settings: settings, OrderID: "o1", Plan: plan, SuccessURL: "https://berth.example/ok"})
	if status, _ := answer(err); !errors.Is(err, sdk.ErrInvalidArgument) || status != fasthttp.StatusBadRequest {
		t.Errorf("CreateCheckout in upper-case currency = %v, answered %d; want a 400", err, status)
	}
	p, err := b.CreatePortal(ctxT(t), sdk.PortalRequest{Settings: settings, CustomerID: "cus_1", ReturnURL: "https://berth.example/billing"})
	if err != nil || p.URL != "https://pay.example/portal/cus_1" {
		t.Fatalf("CreatePortal = %+v, %v", p, err)
	}
	inv, err := b.ListInvoices(ctxT(t), sdk.InvoicesRequest{Settings: settings, CustomerID: "cus_1"})
	if err != nil || len(inv) != 1 || inv[0].ID != "in-cus_1" {
		t.Fatalf("ListInvoices = %+v, %v", inv, err)
	}
	events, err := b.HandleWebhook(ctxT(t), sdk.WebhookRequest{Settings: settings, Header: map[string][]string{"X-Test-Signature": {"sk_1"}}, Body: []byte("evt_1")})
	if err != nil || len(events) != 1 || events[0].ID != "evt_1" || events[0].Type != sdk.EventInvoicePaid {
		t.Fatalf("HandleWebhook = %+v, %v", events, err)
	}
	_, err = b.HandleWebhook(ctxT(t), sdk.WebhookRequest{Settings: settings, Header: map[string][]string{"X-Test-Signature": {"forged"}}, Body: []byte("evt_1")})
	if !errors.Is(err, sdk.ErrPermissionDenied) {
		t.Errorf("HandleWebhook with a forged signature = %v, want ErrPermissionDenied", err)
	}
	if err := b.CancelSubscription(ctxT(t), sdk.CancelRequest{Settings: settings, SubscriptionID: "sub_1", AtPeriodEnd: true}); err != nil {
		t.Fatal(err)
	}
}

// API answers and audits.
func TestReload(t *testing.T) {
	spec := declare(t, "tp", testplugin, map[string]any{"label": "one"})
	current := testSettings(spec)
	var mu sync.Mutex
	th := newHost(t, current, func(o *Options) {
		o.Reload = func() ([]Plugin, error) {
			mu.Lock()
			defer mu.Unlock()
			return current.Plugins, nil
		}
	})
	th.start(t)
	set := func(f func(*Plugin)) {
		mu.Lock()
		defer mu.Unlock()
		s := spec
		s.Config = map[string]any{"label": "one"}
		f(&s)
		current = testSettings(s)
	}
	label := func() string {
		n, _ := th.Notifier("tp")
		d, err := n.Send(ctxT(t), sdk.Message{Channel: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		return d.ProviderMessageID
	}
	first := pid(t, th, "tp")

	set(func(s *Plugin) { s.Config = map[string]any{"label": "two"} })
	if code, body := reloadHTTP(th, "tp"); code != 200 || !strings.Contains(body, `"state":"running"`) {
		t.Fatalf("reload: %d %s", code, body)
	}
	if got := label(); got != "ok-two" || pid(t, th, "tp") != first {
		t.Errorf("in-place reload: label %q, pid %d (was %d)", got, pid(t, th, "tp"), first)
	}

	set(func(s *Plugin) { s.Config = map[string]any{"port": 0} })
	code, body := reloadHTTP(th, "tp")
	if code != 400 || !strings.Contains(body, "field /port") {
		t.Fatalf("invalid reload: %d %s", code, body)
	}
	if got := label(); got != "ok-two" || th.status(t, "tp").State != StateRunning {
		t.Errorf("after a refused reload: label %q, %+v", got, th.status(t, "tp"))
	}

	set(func(s *Plugin) { s.Args = []string{"-x"}; s.Config = map[string]any{"label": "three"} })
	if code, body := reloadHTTP(th, "tp"); code != 200 {
		t.Fatalf("restarting reload: %d %s", code, body)
	}
	if got := label(); got != "ok-three" || pid(t, th, "tp") == first {
		t.Errorf("restarting reload: label %q, same pid %v", got, pid(t, th, "tp") == first)
	}
	if code, _ := reloadHTTP(th, "ghost"); code != 404 {
		t.Errorf("reload of an unknown plugin: %d", code)
	}

	evs, _, err := th.audit.Find(auditQuery("reload"))
	if err != nil || len(evs) != 3 {
		t.Fatalf("reload audit events: %d, %v", len(evs), err)
	}
	if evs[1].Result != "failure" || evs[0].Result != "success" {
		t.Errorf("audit results: %+v", evs)
	}
	for _, ev := range evs {
		if strings.Contains(ev.Details["error"], binDir) {
			t.Errorf("audit shows an internal path: %q", ev.Details["error"])
		}
	}
	states, _, _ := th.audit.Find(auditQuery("state_change"))
	if len(states) == 0 {
		t.Error("no state changes audited")
	}
}

func auditQuery(action string) audit.Query {
	return audit.Query{Category: AuditCategory, Action: action, Limit: 100}
}

func reloadHTTP(th *testHost, name string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.SetUserValue("name", name)
	httpapi.Serve(nil, th.HandleReload)(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

// TestHandleList: the API lists every plugin with what it reported.
func TestHandleList(t *testing.T) {
	th := newHost(t, testSettings(
		declare(t, "tp", testplugin, nil),
		declare(t, "broken", "./testdata/protov2", nil),
	))
	th.start(t)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/v1/plugins?page_size=10")
	httpapi.Serve(nil, th.HandleList)(&ctx)
	body := string(ctx.Response.Body())
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("%d %s", ctx.Response.StatusCode(), body)
	}
	for _, want := range []string{`"total":2`, `"name":"tp"`, `"version":"1.2.3"`, `"capabilities":["billing","notifier"]`,
		`"protocol_version":1`, `"state":"running"`, `"restarts":0`, `"name":"broken"`, `"state":"failed"`, `"last_error":"plugin \"broken\" speaks`} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %s: %s", want, body)
		}
	}
}

// TestStopLeavesNoProcess: Stop drains and stops every plugin process.
func TestStopLeavesNoProcess(t *testing.T) {
	th := newHost(t, testSettings(declare(t, "a", testplugin, nil), declare(t, "b", testplugin, nil)))
	th.start(t)
	pa, pb := pid(t, th, "a"), pid(t, th, "b")
	if err := th.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both processes gone", func() bool { return !alive(pa) && !alive(pb) })
	n, _ := th.Notifier("a")
	if _, err := n.ListChannels(ctxT(t)); !errors.Is(err, errUnavailable) {
		t.Errorf("call after Stop = %v", err)
	}
	if st := th.status(t, "a"); st.State != StateStopped {
		t.Errorf("state after Stop = %s", st.State)
	}
}
