package notify

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// fakeNotifier stands in for a notifier plugin process in these unit
// tests (the gateway's end-to-end test runs the real plugins/notify): it
// offers "webhook" (url required, secret secret) and "slack" (token
// secret), refuses a url or target containing "refuse" as invalid, and
// fails sends to targets that say how.
type fakeNotifier struct {
	mu     sync.Mutex
	sent   []sdk.Message
	down   bool // every send fails as retryable
	checks int
}

func (f *fakeNotifier) ListChannels(context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{
		{Type: "webhook", Name: "webhook", Settings: []sdk.ChannelSetting{{Name: "url", Required: true}, {Name: "secret", Secret: true}, {Name: "headers", Secret: true}}},
		{Type: "slack", Name: "slack", Settings: []sdk.ChannelSetting{{Name: "bot_token", Secret: true, Required: true}, {Name: "channel"}}},
		{Type: "email", Name: "email", Settings: []sdk.ChannelSetting{{Name: "host", Required: true}, {Name: "password", Secret: true}}},
	}, nil
}

func (f *fakeNotifier) CheckChannel(_ context.Context, c sdk.ChannelCheck) error {
	f.mu.Lock()
	f.checks++
	f.mu.Unlock()
	if strings.Contains(c.Settings["url"], "refuse") {
		return fmt.Errorf("url: 169.254.169.254 is cloud metadata: %w", sdk.ErrInvalidArgument)
	}
	if strings.Contains(c.Target, "refuse") {
		return fmt.Errorf("target: not a Slack id: %w", sdk.ErrInvalidArgument)
	}
	return nil
}

func (f *fakeNotifier) Send(_ context.Context, m sdk.Message) (sdk.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down, m.Target == "temporary":
		return sdk.Delivery{}, fmt.Errorf("receiver answered 503: %w", sdk.ErrRetryable)
	case m.Target == "permanent":
		return sdk.Delivery{}, fmt.Errorf("550 no such mailbox: %w", sdk.ErrFailedPrecondition)
	}
	f.sent = append(f.sent, m)
	return sdk.Delivery{ProviderMessageID: "p-" + m.IdempotencyKey, AcceptedAt: time.Now()}, nil
}

func (f *fakeNotifier) messages() []sdk.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sdk.Message(nil), f.sent...)
}

type plugins struct{ n *fakeNotifier }

func (p plugins) Notifiers() []pluginhost.NamedNotifier {
	if p.n == nil {
		return nil
	}
	return []pluginhost.NamedNotifier{{Name: "fake", Notifier: p.n}}
}

type emails map[string]string

func (e emails) Email(id string) (string, error) { return e[id], nil }

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	env   *apitest.Env
	svc   *Service
	fake  *fakeNotifier
	clock *clock
	admin string // token with notifications:admin
	user  string // a plain user's token
	uid   string
}

func newFixture(t *testing.T, withPlugin bool) *fixture {
	t.Helper()
	identity.RegisterPermission(PermAdmin, "test")
	env := apitest.New(t)
	f := &fixture{env: env, clock: &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}}
	if withPlugin {
		f.fake = &fakeNotifier{}
	}
	_, f.admin = env.User(t, "ops", identity.RoleAdmin)
	u, tok := env.User(t, "dev")
	f.user, f.uid = tok, u.ID
	f.svc = New(Options{DB: env.DB, Box: env.Box, Plugins: plugins{f.fake}, Users: emails{u.ID: "dev@example.com"}, Audit: env.Audit,
		Logger: env.Log, Now: f.clock.now, MaxAttempts: 3, RetryMin: time.Second, RetryMax: time.Minute})
	env.Serve(t, Routes(NewHandlers(f.svc, env.Authn, env.Audit)))
	return f
}

func (f *fixture) do(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	status, out, _ := f.env.Do(t, method, path, token, body)
	m := map[string]any{}
	if len(out) > 0 {
		m = apitest.Decode[map[string]any](t, out)
	}
	return status, m
}

// emit commits one event, as a service would.
func (f *fixture) emit(t *testing.T, e events.Event) {
	t.Helper()
	e.Time = f.clock.now()
	if err := f.env.DB.Update(func(tx *store.Tx) error { return events.Emit(tx, e) }); err != nil {
		t.Fatal(err)
	}
}

// pass runs the outbox once: dispatch, then every due delivery.
func (f *fixture) pass(t *testing.T) {
	t.Helper()
	f.svc.dispatchAll(context.Background())
	f.svc.deliverDue(context.Background())
}

func TestChannelSecretsAreWriteOnly(t *testing.T) {
	f := newFixture(t, true)
	const secret = "whsec-very-secret-value-1"
	f.env.Secret(secret)
	status, ch := f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin,
		map[string]any{"name": "ops-hook", "type": "webhook", "url": "https://hooks.example.com/berth", "secret": secret, "headers": map[string]string{"X-Team": "ops"}})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, ch)
	}
	if ch["secret_configured"] != true || ch["headers_configured"] != true || ch["secret"] != nil || ch["url"] != "https://hooks.example.com/berth" {
		t.Errorf("created channel shows %v", ch)
	}
	// An update that leaves the secret out keeps it. (Changing the url
	// needs the secrets again: TestChangingWhereSecretsGoNeedsThemAgain.)
	status, ch = f.do(t, http.MethodPut, "/api/v1/notifications/channels/ops-hook", f.admin, map[string]any{"headers": map[string]string{"X-Team": "dev"}})
	if status != http.StatusOK || ch["secret_configured"] != true || ch["url"] != "https://hooks.example.com/berth" {
		t.Fatalf("update: %d %v", status, ch)
	}
	c, err := f.svc.Channel("ops-hook")
	if err != nil {
		t.Fatal(err)
	}
	all, err := f.svc.settings(c)
	if err != nil || all["secret"] != secret || all["headers"] != `{"X-Team":"dev"}` {
		t.Errorf("settings after update: %v %v", all, err)
	}
	// Clearing it with "" removes it.
	status, ch = f.do(t, http.MethodPut, "/api/v1/notifications/channels/ops-hook", f.admin, map[string]any{"secret": ""})
	if status != http.StatusOK || ch["secret_configured"] != nil {
		t.Errorf("clear secret: %d %v", status, ch)
	}
	status, _ = f.do(t, http.MethodPut, "/api/v1/notifications/channels/ops-hook", f.admin, map[string]any{"secret_configured": false})
	if status != http.StatusBadRequest {
		t.Errorf("writing secret_configured: %d, want 400", status)
	}
	// A member without the permission sees nothing.
	if status, _ := f.do(t, http.MethodGet, "/api/v1/notifications/channels", f.user, nil); status != http.StatusForbidden {
		t.Errorf("member lists channels: %d, want 403", status)
	}
}

func TestChannelRefusalsStoreNothing(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"plugin refuses the url", map[string]any{"name": "meta", "type": "webhook", "url": "http://refuse.example/"}, 400},
		{"unknown setting", map[string]any{"name": "x", "type": "webhook", "url": "https://a.example/", "password": "p"}, 400},
		{"bad name", map[string]any{"name": "Ops Hook", "type": "webhook", "url": "https://a.example/"}, 400},
		{"no type", map[string]any{"name": "x"}, 400},
		{"type no plugin offers", map[string]any{"name": "x", "type": "pager"}, 409},
		{"name not a string", map[string]any{"name": 7, "type": "webhook"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, tc.body)
			if status != tc.want {
				t.Errorf("status %d, want %d (%v)", status, tc.want, body)
			}
		})
	}
	if cs, _ := f.svc.ListChannels(); len(cs) != 0 {
		t.Errorf("refused channels were stored: %+v", cs)
	}
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "a", "type": "webhook", "url": "https://a.example/"})
	if status, _ := f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "a", "type": "webhook", "url": "https://b.example/"}); status != http.StatusConflict {
		t.Errorf("duplicate name: %d, want 409", status)
	}
	if status, _ := f.do(t, http.MethodPut, "/api/v1/notifications/channels/a", f.admin, map[string]any{"url": "http://refuse.example/"}); status != http.StatusBadRequest {
		t.Errorf("update to a refused url: %d, want 400", status)
	}
	if c, _ := f.svc.Channel("a"); c.Settings["url"] != "https://a.example/" {
		t.Errorf("a refused update changed the channel: %v", c.Settings)
	}
}

func TestNoPluginIsAClearAnswer(t *testing.T) {
	f := newFixture(t, false)
	status, body := f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "a", "type": "webhook", "url": "https://a.example/"})
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body), "berth-plugin-notify") {
		t.Errorf("no notifier plugin: %d %v, want 409 naming the plugin to install", status, body)
	}
}

func TestRouteValidation(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "chat", "type": "slack", "bot_token": "xoxb-1"})
	for _, tc := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"ok", map[string]any{"name": "clusters", "events": []string{"cluster.*"}, "min_severity": "warning", "channel": "chat", "target": "C0123"}, 201},
		{"unknown event type", map[string]any{"name": "r1", "events": []string{"cluster.exploded"}, "channel": "chat"}, 400},
		{"bad glob", map[string]any{"name": "r2", "events": []string{"cluster.["}, "channel": "chat"}, 400},
		{"no events", map[string]any{"name": "r3", "channel": "chat"}, 400},
		{"bad severity", map[string]any{"name": "r4", "events": []string{"*"}, "min_severity": "loud", "channel": "chat"}, 400},
		{"no such channel", map[string]any{"name": "r5", "events": []string{"*"}, "channel": "nope"}, 400},
		{"target the plugin refuses", map[string]any{"name": "r6", "events": []string{"*"}, "channel": "chat", "target": "refuse-me"}, 400},
		{"target with a newline", map[string]any{"name": "r7", "events": []string{"*"}, "channel": "chat", "target": "C01\r\nX: y"}, 400},
		{"duplicate", map[string]any{"name": "clusters", "events": []string{"*"}, "channel": "chat"}, 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, tc.body); status != tc.want {
				t.Errorf("status %d, want %d (%v)", status, tc.want, body)
			}
		})
	}
	if rs, _ := f.svc.ListRoutes(); len(rs) != 1 {
		t.Errorf("routes stored: %+v, want only the good one", rs)
	}
	if status, _ := f.do(t, http.MethodDelete, "/api/v1/notifications/channels/chat", f.admin, nil); status != http.StatusConflict {
		t.Errorf("deleting a channel a route uses: %d, want 409", status)
	}
}

func TestPersonalSettings(t *testing.T) {
	f := newFixture(t, true)
	put := func(body map[string]any) int {
		status, _ := f.do(t, http.MethodPut, "/api/v1/auth/me/notifications", f.user, body)
		return status
	}
	if s := put(map[string]any{"slack_notifications": true}); s != http.StatusBadRequest {
		t.Errorf("slack on without a target: %d, want 400", s)
	}
	if s := put(map[string]any{"telegram_notifications": true}); s != http.StatusBadRequest {
		t.Errorf("telegram on without a chat id: %d, want 400", s)
	}
	if s := put(map[string]any{"slack_notifications": true, "slack_target": "U0123"}); s != http.StatusConflict {
		t.Errorf("slack on with no personal slack channel: %d, want 409", s)
	}
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "chat", "type": "slack", "bot_token": "xoxb-1", "personal": true})
	if s := put(map[string]any{"slack_notifications": true, "slack_target": "refuse-this"}); s != http.StatusBadRequest {
		t.Errorf("a target the plugin refuses: %d, want 400", s)
	}
	if s := put(map[string]any{"slack_notifications": true, "slack_target": "U0123"}); s != http.StatusOK {
		t.Errorf("valid settings: %d", s)
	}
	status, got := f.do(t, http.MethodGet, "/api/v1/auth/me/notifications", f.user, nil)
	if status != http.StatusOK || got["slack_notifications"] != true || got["slack_target"] != "U0123" {
		t.Errorf("read back: %d %v", status, got)
	}
	if status, _ := f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "chat2", "type": "slack", "bot_token": "xoxb-2", "personal": true}); status != http.StatusConflict {
		t.Errorf("a second personal slack channel: %d, want 409", status)
	}
}

// Personal events go to the user's own targets and, when they have none,
// nowhere in their place; routes send to operators' channels.
func TestDispatchRoutesAndPersonalTargets(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "chat", "type": "slack", "bot_token": "xoxb-1", "personal": true})
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "failures", "events": []string{"operation.*"}, "min_severity": "error", "channel": "hook"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "prod", "events": []string{"*"}, "clusters": []string{"prod-*"}, "channel": "hook", "target": "prod"})

	f.emit(t, events.Event{Type: events.OperationSucceeded, Recipient: f.uid, Cluster: "dev-1", Summary: "create of dev-1 succeeded"})
	f.pass(t)
	if got := f.fake.messages(); len(got) != 0 {
		t.Fatalf("an info event for a user without targets reached %+v", got)
	}
	f.do(t, http.MethodPut, "/api/v1/auth/me/notifications", f.user, map[string]any{"slack_notifications": true, "slack_target": "U0123"})
	f.emit(t, events.Event{Type: events.OperationFailed, Recipient: f.uid, Cluster: "prod-1", Summary: "create of prod-1 failed"})
	f.emit(t, events.Event{Type: events.ClusterRegistered, Cluster: "lab", Summary: "lab registered"})
	f.pass(t)
	got := f.fake.messages()
	var where []string
	for _, m := range got {
		where = append(where, m.Channel+":"+m.Target)
	}
	// failures (error) and prod (cluster prod-*) both match, but to the
	// same channel and different targets; the user's own slack target too.
	// Channels are served side by side, so only the set is certain here
	// (order within one channel is TestDeliveryRetriesInOrderThenDeadLetter's).
	slices.Sort(where)
	want := []string{"slack:U0123", "webhook:", "webhook:prod"}
	if strings.Join(where, ",") != strings.Join(want, ",") {
		t.Fatalf("sent to %v, want %v", where, want)
	}
	byTarget := map[string]sdk.Message{}
	for _, m := range got {
		byTarget[m.Channel+":"+m.Target] = m
	}
	m := byTarget["webhook:"]
	if m.Settings["url"] != "https://ops.example/" || !strings.Contains(m.Metadata["event"], `"type":"operation.failed"`) || m.Subject != "[Berth] create of prod-1 failed" || !strings.Contains(m.HTMLBody, "prod-1") {
		t.Errorf("message: %+v", m)
	}
	if byTarget["slack:U0123"].Settings["bot_token"] != "xoxb-1" {
		t.Error("the personal copy did not carry its channel's settings")
	}
}

// A receiver that is down gets everything afterwards, in order; a
// permanent refusal is dead at once and does not hold the others back.
func TestDeliveryRetriesInOrderThenDeadLetter(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "all", "events": []string{"cluster.*"}, "channel": "hook"})
	f.fake.mu.Lock()
	f.fake.down = true
	f.fake.mu.Unlock()
	for i := range 5 {
		f.emit(t, events.Event{Type: events.ClusterRegistered, Cluster: fmt.Sprintf("c%d", i), Summary: fmt.Sprintf("c%d registered", i)})
	}
	f.pass(t)
	items, total, err := f.svc.ListDeliveries(DeliveryFilter{Status: Pending}, 1, 50)
	if err != nil || total != 5 {
		t.Fatalf("pending: %d %v", total, err)
	}
	tried := 0
	for _, d := range items {
		tried += d.Attempts
	}
	if tried != 1 {
		t.Errorf("the channel's queue was tried %d times in one pass; only its head should be", tried)
	}
	// Not yet due: nothing is tried.
	f.pass(t)
	f.fake.mu.Lock()
	f.fake.down = false
	f.fake.mu.Unlock()
	f.clock.add(2 * time.Minute)
	f.pass(t)
	got := f.fake.messages()
	if len(got) != 5 {
		t.Fatalf("after the receiver came back: %d sent, want 5", len(got))
	}
	for i, m := range got {
		if !strings.Contains(m.Subject, fmt.Sprintf("c%d", i)) {
			t.Errorf("message %d is %q: out of order", i, m.Subject)
		}
	}
	// Idempotency keys are per (event, channel, target) and stable.
	if got[0].IdempotencyKey == got[1].IdempotencyKey || !strings.HasPrefix(got[0].IdempotencyKey, "ndl_") {
		t.Errorf("keys %q %q", got[0].IdempotencyKey, got[1].IdempotencyKey)
	}

	// Dead letter: a permanent refusal dies at once; a temporary one after
	// MaxAttempts; the retry endpoint brings one back.
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "perm", "events": []string{"user.*"}, "channel": "hook", "target": "permanent"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "temp", "events": []string{"join_token.*"}, "channel": "hook", "target": "temporary"})
	f.emit(t, events.Event{Type: events.UserCreated, Summary: "alice created"})
	f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: "c9", Summary: "c9 deleted"})
	f.pass(t)
	if len(f.fake.messages()) != 6 {
		t.Errorf("the delivery after a dead one was held back: %d sent", len(f.fake.messages()))
	}
	dead, _, _ := f.svc.ListDeliveries(DeliveryFilter{Status: Dead}, 1, 10)
	if len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, "550 no such mailbox") {
		t.Fatalf("dead: %+v", dead)
	}
	status, body := f.do(t, http.MethodGet, "/api/v1/notifications/deliveries?status=dead&event_type=user.created", f.admin, nil)
	if status != http.StatusOK || body["total"] != float64(1) {
		t.Errorf("filtered list: %d %v", status, body)
	}
	status, body = f.do(t, http.MethodPost, "/api/v1/notifications/deliveries/"+dead[0].ID+"/retry", f.admin, nil)
	if status != http.StatusOK || body["status"] != Pending || body["attempts"] != float64(0) {
		t.Errorf("retry: %d %v", status, body)
	}
	if status, _ := f.do(t, http.MethodPost, "/api/v1/notifications/deliveries/"+got[0].IdempotencyKey+"/retry", f.admin, nil); status != http.StatusNotFound {
		t.Errorf("retry of no delivery: %d", status)
	}
	delivered, _, _ := f.svc.ListDeliveries(DeliveryFilter{Status: Delivered}, 1, 1)
	if status, _ := f.do(t, http.MethodPost, "/api/v1/notifications/deliveries/"+delivered[0].ID+"/retry", f.admin, nil); status != http.StatusConflict {
		t.Errorf("retry of a delivered one: %d, want 409", status)
	}
	f.emit(t, events.Event{Type: events.JoinTokenUsed, Summary: "token used"})
	for range 3 {
		f.clock.add(2 * time.Minute)
		f.pass(t)
	}
	dead, _, _ = f.svc.ListDeliveries(DeliveryFilter{Status: Dead, EventType: events.JoinTokenUsed}, 1, 10)
	if len(dead) != 1 || dead[0].Attempts != 3 {
		t.Errorf("a temporary failure after max attempts: %+v", dead)
	}
}

func TestTemplates(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"does not parse", map[string]any{"subject": "{{.Summary", "text": "x"}, 400},
		{"fails on the sample", map[string]any{"subject": "{{.Nope.Deeper}}", "text": "x"}, 400},
		{"html does not parse", map[string]any{"subject": "s", "text": "t", "html": "<p>{{if}}</p>"}, 400},
		{"no text", map[string]any{"subject": "s"}, 400},
		{"ok", map[string]any{"subject": "Cluster {{.Cluster}} is down", "text": "{{.Summary}} ({{.Data.error}})", "html": "<b>{{.Cluster}}</b>"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := f.do(t, http.MethodPut, "/api/v1/notifications/templates/cluster.unreachable", f.admin, tc.body); status != tc.want {
				t.Errorf("status %d, want %d (%v)", status, tc.want, body)
			}
		})
	}
	if status, _ := f.do(t, http.MethodPut, "/api/v1/notifications/templates/cluster.exploded", f.admin, map[string]any{"subject": "s", "text": "t"}); status != http.StatusBadRequest {
		t.Errorf("template for an unknown event type: %d", status)
	}
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "all", "events": []string{"cluster.*"}, "channel": "hook"})
	f.emit(t, events.Event{Type: events.ClusterUnreachable, Cluster: "<prod>", Summary: "prod unreachable", Data: map[string]string{"error": "dial timeout"}})
	f.pass(t)
	m := f.fake.messages()
	if len(m) != 1 || m[0].Subject != "Cluster <prod> is down" || m[0].TextBody != "prod unreachable (dial timeout)" || m[0].HTMLBody != "<b>&lt;prod&gt;</b>" {
		t.Errorf("rendered with the override: %+v", m)
	}
	if status, _ := f.do(t, http.MethodDelete, "/api/v1/notifications/templates/cluster.unreachable", f.admin, nil); status != http.StatusNoContent {
		t.Errorf("delete override: %d", status)
	}
}

func TestTestSend(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	status, body := f.do(t, http.MethodPost, "/api/v1/notifications/test", f.admin, map[string]any{"channel": "hook", "target": "", "template": "cluster.unreachable"})
	if status != http.StatusOK || body["delivered"] != true || body["provider_message_id"] == "" {
		t.Fatalf("test send: %d %v", status, body)
	}
	status, body = f.do(t, http.MethodPost, "/api/v1/notifications/test", f.admin, map[string]any{"channel": "hook", "target": "permanent"})
	if status != http.StatusOK || body["delivered"] != false || !strings.Contains(fmt.Sprint(body["error"]), "550") {
		t.Errorf("test send the receiver refuses: %d %v", status, body)
	}
	for _, b := range []map[string]any{{"channel": "nope"}, {"channel": "hook", "template": "cluster.exploded"}, {"channel": "hook", "target": "refuse"}, {}} {
		if status, _ := f.do(t, http.MethodPost, "/api/v1/notifications/test", f.admin, b); status != http.StatusBadRequest {
			t.Errorf("test %v: %d, want 400", b, status)
		}
	}
	if d, total, _ := f.svc.ListDeliveries(DeliveryFilter{}, 1, 10); total != 0 {
		t.Errorf("a test send queued deliveries: %+v", d)
	}
}

// Deliveries wait, without using up attempts, while no plugin offers
// their channel's type; they go once one does.
func TestDeliveriesWaitForTheirPlugin(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "all", "events": []string{"cluster.*"}, "channel": "hook"})
	fake := f.fake
	f.svc.plugins = plugins{} // the plugin went away
	f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: "c1", Summary: "c1 deleted"})
	for range 5 {
		f.pass(t)
		f.clock.add(2 * time.Minute)
	}
	items, _, _ := f.svc.ListDeliveries(DeliveryFilter{}, 1, 10)
	if len(items) != 1 || items[0].Status != Pending || items[0].Attempts != 0 || items[0].Waits != 5 {
		t.Fatalf("while the plugin is away: %+v", items)
	}
	f.svc.plugins = plugins{fake}
	f.clock.add(2 * time.Hour)
	f.pass(t)
	if len(fake.messages()) != 1 {
		t.Errorf("not delivered once the plugin was back")
	}

	// A plugin that never comes back: after the retention the delivery is
	// dead, not pending for ever.
	f.svc.plugins = plugins{}
	f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: "c2", Summary: "c2 deleted"})
	f.pass(t)
	f.clock.add(f.svc.opts.Retention)
	f.pass(t)
	dead, _, _ := f.svc.ListDeliveries(DeliveryFilter{Status: Dead}, 1, 10)
	if len(dead) != 1 || dead[0].Attempts != 0 || !strings.Contains(dead[0].LastError, "retention") {
		t.Errorf("a delivery whose plugin never came back: %+v", dead)
	}
}
