package notify

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// An event whose values are huge (a node's Ready reason comes from the
// cluster, an operation's error from a provisioner) must not stop every
// later event: before, its built-in rendering passed 64 KiB, planning it
// failed on every pass, and it stayed first in the outbox for good.
func TestOversizedEventDoesNotBlockTheOutbox(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "all", "events": []string{"*"}, "channel": "hook"})
	huge := strings.Repeat("x", 70<<10)
	f.emit(t, events.Event{Type: events.NodeNotReady, Cluster: "c1", Summary: "Node " + huge + " is not ready.", Data: map[string]string{"node": huge, "reason": huge}})
	f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: "c2", Summary: "c2 deleted"})
	f.pass(t)
	var node, c2 bool
	for _, m := range f.fake.messages() {
		if n := len(m.TextBody) + len(m.HTMLBody) + len(m.Subject) + len(m.Metadata["event"]); n > 64<<10 {
			t.Errorf("a message of %d bytes went out", n)
		}
		node = node || m.Metadata["event_type"] == events.NodeNotReady
		c2 = c2 || m.Subject == "[Berth] c2 deleted"
	}
	if !c2 {
		t.Error("the event after the oversized one was never sent: the outbox is blocked")
	}
	if !node {
		t.Error("the oversized event was not sent, cut to size")
	}
}

// A scoped API key (the cluster:<name> key in a downloaded kubeconfig, a
// CI key scoped to clusters:read) must not change its owner's account:
// with one, whoever holds a leaked kubeconfig could send the owner's
// personal notifications to a chat of theirs.
func TestScopedKeyCannotChangePersonalSettings(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "tg", "type": "slack", "bot_token": "xoxb-1", "personal": true})
	owner := &identity.Principal{UserID: f.uid, Username: "dev", Permissions: []string{identity.PermClustersRead}}
	for _, scopes := range [][]string{{"cluster:prod"}, {identity.PermClustersRead}} {
		_, key, err := f.env.IDs.CreateAPIKey(context.Background(), owner, identity.NewAPIKey{Name: "k-" + scopes[0], Scopes: scopes}, identity.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		status, _ := f.do(t, http.MethodPut, "/api/v1/auth/me/notifications", key, map[string]any{"slack_notifications": true, "slack_target": "U0EVIL"})
		if status != http.StatusForbidden {
			t.Errorf("a key scoped to %v changed the personal settings: %d, want 403", scopes, status)
		}
	}
	if p, _ := f.svc.PersonalSettings(f.uid); p.SlackTarget != "" {
		t.Errorf("personal settings now %+v", p)
	}
}

// Secrets are write-only, so a notifications admin cannot read them; nor
// may they send them elsewhere by changing only where the channel points
// (a webhook's url keeps its Authorization header, Slack's or Telegram's
// api_url its token, an SMTP host its password). Changing a setting of a
// channel with secrets needs the secrets again.
func TestChangingWhereSecretsGoNeedsThemAgain(t *testing.T) {
	f := newFixture(t, true)
	const token = "xoxb-kept-secret-token-1"
	f.env.Secret(token)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "chat", "type": "slack", "bot_token": token, "channel": "C0OPS"})
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/", "headers": map[string]string{"Authorization": "Bearer " + token}})
	for _, tc := range []struct {
		channel string
		body    map[string]any
	}{
		{"hook", map[string]any{"url": "https://attacker.example/"}},
		{"chat", map[string]any{"channel": "C0ELSE"}},
	} {
		status, body := f.do(t, http.MethodPut, "/api/v1/notifications/channels/"+tc.channel, f.admin, tc.body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: changed %v keeping its secrets: %d %v, want 400", tc.channel, tc.body, status, body)
		}
	}
	if c, _ := f.svc.Channel("hook"); c.Settings["url"] != "https://ops.example/" {
		t.Errorf("the webhook now points at %s", c.Settings["url"])
	}
	// With the secrets sent again, or with only secrets changed, it is fine.
	if status, body := f.do(t, http.MethodPut, "/api/v1/notifications/channels/hook", f.admin, map[string]any{"url": "https://ops2.example/", "headers": map[string]string{"Authorization": "Bearer new"}}); status != http.StatusOK {
		t.Errorf("url with its secret: %d %v", status, body)
	}
	if status, body := f.do(t, http.MethodPut, "/api/v1/notifications/channels/chat", f.admin, map[string]any{"bot_token": "xoxb-rotated"}); status != http.StatusOK {
		t.Errorf("rotating the token alone: %d %v", status, body)
	}
	// Sending a setting unchanged is no change.
	if status, body := f.do(t, http.MethodPut, "/api/v1/notifications/channels/chat", f.admin, map[string]any{"channel": "C0OPS", "personal": true}); status != http.StatusOK {
		t.Errorf("an unchanged setting and personal: %d %v", status, body)
	}
}

// Personal targets are the user's own: a Slack user id or a Telegram
// private chat. A channel or group would let any member make the
// organisation's bot post into #general or an operators' group.
func TestPersonalTargetsAreDirectMessages(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "chat", "type": "slack", "bot_token": "xoxb-1", "personal": true})
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "tg", "type": "webhook", "url": "https://x.example/"})
	tg, _ := f.svc.Channel("tg")
	// The fake offers no telegram type: mark a channel personal as one.
	tg.Type = "telegram"
	if err := f.env.DB.Update(func(tx *store.Tx) error { return channels.Put(tx, tg.ID, tg) }); err != nil {
		t.Fatal(err)
	}
	for _, body := range []map[string]any{
		{"slack_notifications": true, "slack_target": "#general"},
		{"slack_notifications": true, "slack_target": "C0123OPS"},
		{"slack_notifications": true, "slack_target": "G0123OPS"},
		{"telegram_notifications": true, "telegram_chat_id": "-1001234567890"},
		{"telegram_notifications": true, "telegram_chat_id": "@opschannel"},
	} {
		if status, _ := f.do(t, http.MethodPut, "/api/v1/auth/me/notifications", f.user, body); status != http.StatusBadRequest {
			t.Errorf("personal target %v: %d, want 400", body, status)
		}
	}
	for _, body := range []map[string]any{
		{"slack_notifications": true, "slack_target": "U0123ABCD"},
		{"slack_notifications": true, "slack_target": "W0123ABCD"},
	} {
		if status, b := f.do(t, http.MethodPut, "/api/v1/auth/me/notifications", f.user, body); status != http.StatusOK {
			t.Errorf("personal target %v: %d %v, want 200", body, status, b)
		}
	}
	if status, b := f.do(t, http.MethodPut, "/api/v1/auth/me/notifications", f.user, map[string]any{"telegram_notifications": true, "telegram_chat_id": "123456789"}); status == http.StatusBadRequest {
		t.Errorf("a private chat id: %d %v", status, b)
	}
}

// slowNotifier is the fake whose receiver for target "slow" holds every
// message until a message for any other target has been sent (or 10 s
// of real time have passed, which marks it starved): served one channel
// after the other, the slow channel would hold the others back.
type slowNotifier struct {
	*fakeNotifier
	released    chan struct{}
	releaseOnce *sync.Once
	starved     *atomic.Bool
}

func newSlowNotifier(f *fakeNotifier) slowNotifier {
	return slowNotifier{fakeNotifier: f, released: make(chan struct{}), releaseOnce: &sync.Once{}, starved: &atomic.Bool{}}
}

func (s slowNotifier) Send(ctx context.Context, m sdk.Message) (sdk.Delivery, error) {
	if m.Target == "slow" {
		select {
		case <-s.released:
		case <-time.After(10 * time.Second):
			s.starved.Store(true)
		}
		return s.fakeNotifier.Send(ctx, m)
	}
	d, err := s.fakeNotifier.Send(ctx, m)
	s.releaseOnce.Do(func() { close(s.released) })
	return d, err
}

type slowPlugins struct{ n slowNotifier }

func (p slowPlugins) Notifiers() []pluginhost.NamedNotifier {
	return []pluginhost.NamedNotifier{{Name: "fake", Notifier: p.n}}
}

// Channels are served one after the other. A receiver that accepts, but
// slowly (a webhook that takes its time, a tarpit), must not hold every
// other channel back for the whole of its backlog.
func TestSlowChannelDoesNotStarveOthers(t *testing.T) {
	f := newFixture(t, true)
	slow := newSlowNotifier(f.fake)
	f.svc.plugins = slowPlugins{slow}
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "slow", "type": "webhook", "url": "https://slow.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "pager", "type": "webhook", "url": "https://pager.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "s", "events": []string{"cluster.*"}, "channel": "slow", "target": "slow"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "p", "events": []string{"operation.failed"}, "channel": "pager"})
	for i := range 100 {
		f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: fmt.Sprintf("c%d", i), Summary: "deleted"})
	}
	f.emit(t, events.Event{Type: events.OperationFailed, Cluster: "prod", Summary: "prod failed"})
	f.pass(t)
	got, _, err := f.svc.ListDeliveries(DeliveryFilter{Channel: "pager", EventType: events.OperationFailed}, 1, 1)
	if err != nil || len(got) != 1 || got[0].Status != Delivered {
		t.Fatalf("pager delivery: %+v %v", got, err)
	}
	if slow.starved.Load() {
		t.Error("the pager's message waited behind the slow channel")
	}
}

// A channel's queue is read from its head: before, every attempt read the
// ids of all its pending deliveries, so a backlog of n cost n² (a receiver
// down for a day; a cluster whose nodes flap), on etcd in range reads of
// every id per message.
func TestQueueHeadCostDoesNotGrowWithTheBacklog(t *testing.T) {
	pass := func(pending int) time.Duration {
		f := newFixture(t, true)
		f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
		c, _ := f.svc.Channel("hook")
		for done := 0; done < pending; done += 1000 {
			err := f.env.DB.Update(func(tx *store.Tx) error {
				for range min(1000, pending-done) {
					d := &Delivery{ID: store.NewID("ndl"), ChannelID: c.ID, Channel: c.Name, ChannelType: c.Type, Status: Pending, Event: []byte(`{}`), NextAttempt: f.clock.now()}
					if err := deliveries.Insert(tx, d.ID, d); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		f.svc.deliverChannel(context.Background(), c)
		if n := len(f.fake.messages()); n != perChannelPass {
			t.Fatalf("%d sent in a pass, want %d", n, perChannelPass)
		}
		return time.Since(start)
	}
	small, large := pass(200), pass(20000)
	t.Logf("a pass of %d: %s with 200 pending, %s with 20000", perChannelPass, small, large)
	if large > 5*small+200*time.Millisecond {
		t.Errorf("a pass with 20000 pending took %s, with 200 %s: the head is found by reading the whole queue", large, small)
	}
}

// A template runs on every event, in the leader's one dispatcher: one
// that loops without end would stop every notification, and a request
// that saves or tests it holds a CPU for as long. Loops over numbers,
// nested templates (recursion) and ranges nested deeper than two are
// refused; what is left is bounded by the template's size and the
// event's few fields.
func TestTemplatesCannotSpinTheCPU(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"range over a number", map[string]any{"subject": "s", "text": "{{range 1000}}{{end}}x"}, 400},
		{"range over a variable", map[string]any{"subject": "s", "text": "{{$n := 1000}}{{range $n}}{{end}}x"}, 400},
		{"only on real events", map[string]any{"subject": "s", "text": `{{if ne .ID "evt_sample"}}{{range 1000}}{{end}}{{end}}x`}, 400},
		{"recursion", map[string]any{"subject": "s", "text": `{{define "a"}}{{template "a" .}}{{end}}x`}, 400},
		{"block", map[string]any{"subject": "s", "text": `{{block "b" .}}x{{end}}`}, 400},
		{"in html", map[string]any{"subject": "s", "text": "t", "html": "{{range 1000}}{{end}}"}, 400},
		{"ranges three deep", map[string]any{"subject": "s", "text": "{{range .Data}}{{range $.Data}}{{range $.Data}}{{end}}{{end}}{{end}}"}, 400},
		{"the fields", map[string]any{"subject": "s", "text": "{{range $k, $v := .Data}}{{$k}}={{$v}} {{end}}", "html": "{{range .Data}}<i>{{.}}</i>{{end}}"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := f.do(t, http.MethodPut, "/api/v1/notifications/templates/cluster.unreachable", f.admin, tc.body); status != tc.want {
				t.Errorf("status %d, want %d (%v)", status, tc.want, body)
			}
		})
	}
}

// One event that many routes match makes its deliveries in one etcd
// transaction, which carries at most max-txn-ops writes: before, an event
// matching some thirty routes failed to dispatch on every pass and, first
// in the outbox, held back every event after it.
func TestEventMatchingManyRoutesOnEtcd(t *testing.T) {
	ec := etcdenv.ForTest(t, 1)
	db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: ec.Endpoints()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	box, err := secretbox.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeNotifier{}
	svc := New(Options{DB: db, Box: box, Plugins: plugins{fake}, Users: emails{}})
	ch := &Channel{ID: store.NewID("nch"), Name: "hook", Type: "webhook", Settings: map[string]string{"url": "https://ops.example/"}}
	if err := db.Update(func(tx *store.Tx) error { return channels.Insert(tx, ch.ID, ch) }); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r := &Route{ID: store.NewID("nrt"), Name: fmt.Sprintf("team-%d", i), Events: []string{"*"}, MinSeverity: events.Info, Channel: "hook", Target: fmt.Sprintf("t%d", i)}
		if err := db.Update(func(tx *store.Tx) error { return routes.Insert(tx, r.ID, r) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"a", "b"} {
		if err := db.Update(func(tx *store.Tx) error {
			return events.Emit(tx, events.Event{Type: events.ClusterDeleted, Time: time.Now(), Cluster: c, Summary: c + " deleted"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	var pending []events.Event
	if err := db.View(func(tx *store.Tx) (err error) { pending, err = events.Pending(tx, 10); return err }); err != nil {
		t.Fatal(err)
	}
	svc.dispatchAll(context.Background())
	_, total, err := svc.ListDeliveries(DeliveryFilter{}, 1, 1)
	if err != nil || total != 200 {
		t.Fatalf("%d deliveries for two events matching 100 routes, want 200 (%v)", total, err)
	}
	// Planning an event again (a replica that died after some of its
	// deliveries were written) names the deliveries already written.
	err = db.View(func(tx *store.Tx) error {
		ds, err := svc.plan(tx, &pending[0])
		for _, d := range ds {
			if _, err := deliveries.Get(tx, d.ID); err != nil {
				t.Errorf("a second plan made delivery %s anew: %v", d.ID, err)
				break
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		svc.deliverDue(context.Background())
	}
	if n := len(fake.messages()); n != 200 {
		t.Errorf("%d sent, want 200", n)
	}
}

// An event that many routes match gets all its deliveries, however large
// its message: they are written in as many transactions as their bytes
// need (Badger refuses a transaction over 1.2 MiB at the default memtable;
// 600 deliveries of a 1 KB summary are about 3 MB), and the event leaves
// the outbox only with the last of them.
func TestWideEventIsDispatchedWhole(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://hook.example/"})
	const wide = 600
	if err := f.env.DB.Update(func(tx *store.Tx) error {
		for i := range wide {
			id := fmt.Sprintf("nrt_wide%04d", i)
			r := &Route{ID: id, Name: fmt.Sprintf("wide-%d", i), Events: []string{"cluster.*"}, Channel: "hook", Target: fmt.Sprintf("t%d", i), CreatedAt: f.clock.now(), UpdatedAt: f.clock.now()}
			if err := routes.Insert(tx, id, r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.svc.dispatchAll(context.Background()) // the fixture's own events first
	f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: "c1", Summary: strings.Repeat("s", events.MaxValue)})
	if n, err := f.svc.dispatch(); err != nil || n != 1 {
		t.Fatalf("dispatch: %d events, %v", n, err)
	}
	_, total, err := f.svc.ListDeliveries(DeliveryFilter{Channel: "hook"}, 1, 1)
	if err != nil || total != wide {
		t.Errorf("%d deliveries written (%v), want %d", total, err, wide)
	}
	if n, err := f.svc.dispatch(); err != nil || n != 0 {
		t.Errorf("the event is still pending after its deliveries were written: dispatch found %d (%v)", n, err)
	}
}
