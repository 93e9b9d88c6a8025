package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// Factory starts a fresh instance of the plugin under test, configured and
// ready, and arranges for it to stop when t ends. Each conformance check
// gets its own instance, so checks cannot disturb one another.
type Factory func(t *testing.T) *Client

// InProcess returns a Factory that serves the plugin in the test process.
// newOptions builds a fresh plugin (fresh state) for each check; config
// returns its configuration (it may create temporary directories with
// t.TempDir).
func InProcess(newOptions func(t *testing.T) sdk.Options, config func(t *testing.T) []byte) Factory {
	return func(t *testing.T) *Client {
		t.Helper()
		c := StartInProcess(t, newOptions(t))
		c.Configure(t, config(t))
		return c
	}
}

// Subprocess returns a Factory that starts binary (see Build) as a real
// plugin process for each check.
func Subprocess(binary string, config func(t *testing.T) []byte) Factory {
	return func(t *testing.T) *Client {
		t.Helper()
		c := StartProcess(t, binary)
		c.Configure(t, config(t))
		return c
	}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error = %v, want one matching %v", what, err, kind)
	}
}

// RunBaseConformance checks what every plugin must do, for a plugin that
// offers capability c: GetInfo is sane, ValidateConfig rejects garbage,
// Health answers.
func RunBaseConformance(t *testing.T, f Factory, c sdk.Capability) {
	t.Run("GetInfo", func(t *testing.T) {
		info, err := f(t).Base().GetInfo(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if info.Name == "" {
			t.Error("name is empty")
		}
		if !sdk.ValidVersion(info.Version) {
			t.Errorf("version %q is not a semantic version", info.Version)
		}
		if !slices.Contains(info.ProtocolVersions, sdk.ProtocolVersion) {
			t.Errorf("protocol versions %v lack %d", info.ProtocolVersions, sdk.ProtocolVersion)
		}
		if !info.Has(c) {
			t.Errorf("capabilities %v lack %s", info.Capabilities, c)
		}
		var schema map[string]any
		if err := json.Unmarshal(info.ConfigSchema, &schema); err != nil {
			t.Errorf("config schema is not a JSON object: %v", err)
		} else if schema["type"] != "object" {
			t.Errorf("config schema type = %v, want object", schema["type"])
		}
	})
	t.Run("ValidateConfigRejectsGarbage", func(t *testing.T) {
		base := f(t).Base()
		for _, bad := range []string{`{`, `[]`, `"text"`, `42`, `{"no_such_field_from_conformance": true}`} {
			wantKind(t, "ValidateConfig("+bad+")", base.ValidateConfig(callCtx(t), []byte(bad)), sdk.ErrInvalidConfig)
		}
	})
	t.Run("Health", func(t *testing.T) {
		h, err := f(t).Base().Health(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != sdk.HealthServing && h.Status != sdk.HealthDegraded {
			t.Errorf("health of a configured plugin = %v (%s)", h.Status, h.Message)
		}
	})
}

// RunNotifierConformance checks the Notifier contract, sending test
// messages to target on the plugin's first channel, with no settings.
func RunNotifierConformance(t *testing.T, f Factory, target string) {
	RunNotifierChannelConformance(t, f, NotifierChannel{Target: target})
}

// NotifierChannel is where the notifier conformance suite sends.
type NotifierChannel struct {
	// Name is a channel from ListChannels; empty picks the first.
	Name string
	// Settings are the channel's settings, as an operator would save them.
	Settings map[string]string
	// Target is the recipient the test messages go to.
	Target string
}

// RunNotifierChannelConformance checks the Notifier contract on one
// channel with its settings. A notifier that implements sdk.ChannelChecker
// must accept ch and refuse it with each required setting left out.
func RunNotifierChannelConformance(t *testing.T, f Factory, ch NotifierChannel) {
	RunBaseConformance(t, f, sdk.CapabilityNotifier)
	setup := func(t *testing.T) (pluginclient.Notifier, sdk.Channel) {
		n, err := f(t).Notifier()
		if err != nil {
			t.Fatal(err)
		}
		chans, err := n.ListChannels(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(chans) == 0 {
			t.Fatal("ListChannels returned no channel")
		}
		if ch.Name == "" {
			return n, chans[0]
		}
		for _, c := range chans {
			if c.Name == ch.Name {
				return n, c
			}
		}
		t.Fatalf("ListChannels has no channel %q", ch.Name)
		return nil, sdk.Channel{}
	}
	message := func(c sdk.Channel, key, subject string) sdk.Message {
		return sdk.Message{IdempotencyKey: key, Channel: c.Name, Target: ch.Target, Subject: subject, TextBody: "hello", Settings: ch.Settings}
	}
	t.Run("ListChannels", func(t *testing.T) {
		n, _ := setup(t)
		chans, _ := n.ListChannels(callCtx(t))
		for _, c := range chans {
			if c.Name == "" || c.Type == "" {
				t.Errorf("channel %+v lacks a name or type", c)
			}
			for _, st := range c.Settings {
				if st.Name == "" {
					t.Errorf("channel %q has a setting without a name", c.Name)
				}
			}
		}
	})
	t.Run("CheckChannel", func(t *testing.T) {
		n, c := setup(t)
		err := n.CheckChannel(callCtx(t), sdk.ChannelCheck{Channel: c.Name, Settings: ch.Settings, Target: ch.Target})
		if errors.Is(err, sdk.ErrUnimplemented) {
			if len(c.Settings) > 0 {
				t.Fatalf("channel %q has settings but the plugin does not check them", c.Name)
			}
			return
		}
		if err != nil {
			t.Fatalf("CheckChannel refused the suite's own settings: %v", err)
		}
		for _, st := range c.Settings {
			if !st.Required {
				continue
			}
			without := maps.Clone(ch.Settings)
			delete(without, st.Name)
			err := n.CheckChannel(callCtx(t), sdk.ChannelCheck{Channel: c.Name, Settings: without, Target: ch.Target})
			wantKind(t, "CheckChannel without required setting "+st.Name, err, sdk.ErrInvalidArgument)
		}
		err = n.CheckChannel(callCtx(t), sdk.ChannelCheck{Channel: "no-such-channel-from-conformance", Settings: ch.Settings})
		wantKind(t, "CheckChannel of an unknown channel", err, sdk.ErrNotFound)
	})
	t.Run("SendIsIdempotent", func(t *testing.T) {
		n, c := setup(t)
		msg := message(c, "conformance-1", "Conformance")
		first, err := n.Send(callCtx(t), msg)
		if err != nil {
			t.Fatal(err)
		}
		if first.ProviderMessageID == "" {
			t.Error("delivery has no provider message id")
		}
		again, err := n.Send(callCtx(t), msg)
		if err != nil {
			t.Fatal(err)
		}
		if again.ProviderMessageID != first.ProviderMessageID {
			t.Errorf("same idempotency key gave message ids %q and %q", first.ProviderMessageID, again.ProviderMessageID)
		}
		msg.IdempotencyKey = "conformance-2"
		other, err := n.Send(callCtx(t), msg)
		if err != nil {
			t.Fatal(err)
		}
		if other.ProviderMessageID == first.ProviderMessageID {
			t.Errorf("different idempotency keys gave the same message id %q", other.ProviderMessageID)
		}
	})
	t.Run("KeyReuseWithOtherMessageRefused", func(t *testing.T) {
		n, c := setup(t)
		msg := message(c, "conformance-reuse", "one")
		if _, err := n.Send(callCtx(t), msg); err != nil {
			t.Fatal(err)
		}
		msg.Subject = "two"
		_, err := n.Send(callCtx(t), msg)
		wantKind(t, "Send with a reused key", err, sdk.ErrInvalidArgument)
	})
	t.Run("UnknownChannelNotFound", func(t *testing.T) {
		n, _ := setup(t)
		_, err := n.Send(callCtx(t), sdk.Message{Channel: "no-such-channel-from-conformance", Target: ch.Target, Subject: "x", Settings: ch.Settings})
		wantKind(t, "Send to an unknown channel", err, sdk.ErrNotFound)
	})
}

// RunDNSConformance checks the DNSProvider contract on zone, which the
// factory's configuration must make exist (it may start empty). Records it
// creates are named under "_berth-conformance".
func RunDNSConformance(t *testing.T, f Factory, zone string) {
	RunBaseConformance(t, f, sdk.CapabilityDNS)
	setup := func(t *testing.T) pluginclient.DNSProvider {
		d, err := f(t).DNS()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	count := func(t *testing.T, d pluginclient.DNSProvider, name, typ string) []sdk.Record {
		t.Helper()
		recs, err := d.GetRecords(callCtx(t), zone)
		if err != nil {
			t.Fatalf("GetRecords: %v", err)
		}
		var out []sdk.Record
		for _, r := range recs {
			if r.Name == name && r.Type == typ {
				out = append(out, r)
			}
		}
		return out
	}
	txt := sdk.Record{Name: "_berth-conformance", Type: "TXT", Value: "token-1", TTL: 60 * time.Second}

	t.Run("UnknownZoneNotFound", func(t *testing.T) {
		_, err := setup(t).GetRecords(callCtx(t), "no-such-zone-from-conformance.invalid.")
		wantKind(t, "GetRecords of an unknown zone", err, sdk.ErrNotFound)
	})
	t.Run("AppendIsIdempotent", func(t *testing.T) {
		d := setup(t)
		req := sdk.RecordsChange{IdempotencyKey: "conformance-append", Zone: zone, Records: []sdk.Record{txt}}
		added, err := d.AppendRecords(callCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(added) != 1 || added[0].Value != txt.Value || added[0].TTL != txt.TTL {
			t.Errorf("AppendRecords returned %+v, want the record added", added)
		}
		if _, err := d.AppendRecords(callCtx(t), req); err != nil {
			t.Fatal(err)
		}
		if got := count(t, d, txt.Name, "TXT"); len(got) != 1 {
			t.Errorf("after two appends with one idempotency key the zone has %d records, want 1: %+v", len(got), got)
		}
	})
	t.Run("SetReplaces", func(t *testing.T) {
		d := setup(t)
		if _, err := d.AppendRecords(callCtx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: "_berth-conformance-a", Type: "A", Value: "192.0.2.1", TTL: time.Minute}}}); err != nil {
			t.Fatal(err)
		}
		want := []sdk.Record{
			{Name: "_berth-conformance-a", Type: "A", Value: "192.0.2.2", TTL: time.Minute},
			{Name: "_berth-conformance-a", Type: "A", Value: "192.0.2.3", TTL: time.Minute},
		}
		if _, err := d.SetRecords(callCtx(t), sdk.RecordsChange{Zone: zone, Records: want}); err != nil {
			t.Fatal(err)
		}
		got := count(t, d, "_berth-conformance-a", "A")
		var values []string
		for _, r := range got {
			values = append(values, r.Value)
		}
		slices.Sort(values)
		if !slices.Equal(values, []string{"192.0.2.2", "192.0.2.3"}) {
			t.Errorf("after SetRecords the A records are %v", values)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		d := setup(t)
		if _, err := d.AppendRecords(callCtx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{txt}}); err != nil {
			t.Fatal(err)
		}
		deleted, err := d.DeleteRecords(callCtx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: txt.Name, Type: "TXT", Value: txt.Value}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(deleted) != 1 {
			t.Errorf("DeleteRecords returned %+v, want the one record", deleted)
		}
		if got := count(t, d, txt.Name, "TXT"); len(got) != 0 {
			t.Errorf("record still there after delete: %+v", got)
		}
		again, err := d.DeleteRecords(callCtx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Name: txt.Name, Type: "TXT", Value: txt.Value}}})
		if err != nil || len(again) != 0 {
			t.Errorf("deleting a missing record: %+v, %v; want nothing and no error", again, err)
		}
	})
	t.Run("InvalidRecordRefused", func(t *testing.T) {
		_, err := setup(t).AppendRecords(callCtx(t), sdk.RecordsChange{Zone: zone, Records: []sdk.Record{{Type: "TXT", Value: "no name"}}})
		wantKind(t, "AppendRecords without a name", err, sdk.ErrInvalidArgument)
	})
}

// RunProvisionerConformance creates, watches, reads and deletes a cluster
// with spec. It waits for operations with WatchOperation, bounded by 10
// minutes; provisioners under test should finish quickly.
func RunProvisionerConformance(t *testing.T, f Factory, spec sdk.ClusterSpec) {
	RunBaseConformance(t, f, sdk.CapabilityProvisioner)
	setup := func(t *testing.T) pluginclient.Provisioner {
		p, err := f(t).Provisioner()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	wait := func(t *testing.T, p pluginclient.Provisioner, op sdk.Operation) sdk.Operation {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		last := op
		err := p.WatchOperation(ctx, op.ID, func(o sdk.Operation) error {
			if o.ID != op.ID {
				t.Errorf("watch of %q sent operation %q", op.ID, o.ID)
			}
			if o.Progress.Percent < 0 || o.Progress.Percent > 100 {
				t.Errorf("progress percent %d out of range", o.Progress.Percent)
			}
			last = o
			return nil
		})
		if err != nil {
			t.Fatalf("WatchOperation: %v", err)
		}
		if !last.Done() {
			t.Fatalf("watch ended with the operation %s", last.State)
		}
		return last
	}
	t.Run("Lifecycle", func(t *testing.T) {
		p := setup(t)
		req := sdk.CreateClusterRequest{IdempotencyKey: "conformance-create", Spec: spec}
		op, err := p.CreateCluster(callCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if op.ID == "" || op.Kind != sdk.OperationCreate || op.ClusterName != spec.Name {
			t.Errorf("CreateCluster returned %+v", op)
		}
		again, err := p.CreateCluster(callCtx(t), req)
		if err != nil {
			t.Fatalf("repeated CreateCluster with the same key: %v", err)
		}
		if again.ID != op.ID {
			t.Errorf("same idempotency key gave operations %q and %q", op.ID, again.ID)
		}
		if done := wait(t, p, op); done.State != sdk.OperationSucceeded {
			t.Fatalf("create ended %s: %s", done.State, done.Error)
		}
		c, err := p.GetCluster(callCtx(t), spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Phase != sdk.ClusterReady || c.Spec.Name != spec.Name {
			t.Errorf("cluster after create: %+v", c)
		}
		list, err := p.ListClusters(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(c sdk.Cluster) bool { return c.Spec.Name == spec.Name }) {
			t.Errorf("ListClusters lacks %q", spec.Name)
		}
		conn, err := p.GetConnection(callCtx(t), spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if conn.APIEndpoint == "" || len(conn.Kubeconfig) == 0 {
			t.Errorf("connection lacks an endpoint or kubeconfig")
		}
		_, err = p.CreateCluster(callCtx(t), sdk.CreateClusterRequest{IdempotencyKey: "conformance-create-2", Spec: spec})
		wantKind(t, "creating an existing cluster", err, sdk.ErrAlreadyExists)

		jm, err := p.GetJoinMaterial(callCtx(t), sdk.JoinMaterialRequest{ClusterName: spec.Name, TTL: time.Hour})
		if err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
			t.Errorf("GetJoinMaterial: %v", err)
		} else if err == nil && jm.BootstrapToken == "" {
			t.Errorf("join material without a bootstrap token")
		}

		del, err := p.DeleteCluster(callCtx(t), sdk.DeleteClusterRequest{IdempotencyKey: "conformance-delete", Name: spec.Name})
		if err != nil {
			t.Fatal(err)
		}
		if done := wait(t, p, del); done.State != sdk.OperationSucceeded {
			t.Fatalf("delete ended %s: %s", done.State, done.Error)
		}
		_, err = p.GetCluster(callCtx(t), spec.Name)
		wantKind(t, "GetCluster after delete", err, sdk.ErrNotFound)
	})
	t.Run("UnknownNotFound", func(t *testing.T) {
		p := setup(t)
		_, err := p.GetCluster(callCtx(t), "no-such-cluster-from-conformance")
		wantKind(t, "GetCluster of an unknown cluster", err, sdk.ErrNotFound)
		_, err = p.GetOperation(callCtx(t), "no-such-operation-from-conformance")
		wantKind(t, "GetOperation of an unknown operation", err, sdk.ErrNotFound)
		_, err = p.DeleteCluster(callCtx(t), sdk.DeleteClusterRequest{Name: "no-such-cluster-from-conformance"})
		wantKind(t, "DeleteCluster of an unknown cluster", err, sdk.ErrNotFound)
	})
}

// BillingCase is what the billing conformance suite works with: settings
// an operator would save and what the provider needs to take them.
type BillingCase struct {
	// Settings are the provider settings, as an operator would save them;
	// CheckSettings must accept them.
	Settings map[string]string
	// Plan is a one-off plan (IntervalOnce) that the checkout checks buy.
	Plan sdk.Plan
	// RecurringPlan, when set, is a subscription plan (IntervalMonth or
	// IntervalYear) checked out as well.
	RecurringPlan sdk.Plan
	// CustomerID, when set, is a customer of the provider for the portal
	// and invoice checks.
	CustomerID string
	// SubscriptionID, when set, is a subscription of the provider that
	// CancelSubscription may cancel.
	SubscriptionID string
	// Webhook, when set, returns the headers and body of a webhook that
	// the provider would send for a completed checkout of an order with
	// the given ids, signed with settings.
	Webhook func(t *testing.T, settings map[string]string, orderID, userID, planID string) (http.Header, []byte)
}

// RunBillingConformance checks the Billing contract that needs no payment:
// settings and their checks, idempotent checkout (one-off and recurring),
// portal, invoices, cancellation, and webhook verification: a forged or
// tampered webhook is ErrPermissionDenied, a signed one becomes events.
func RunBillingConformance(t *testing.T, f Factory, bc BillingCase) {
	RunBaseConformance(t, f, sdk.CapabilityBilling)
	setup := func(t *testing.T) pluginclient.Billing {
		b, err := f(t).Billing()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	checkout := func(key string, plan sdk.Plan) sdk.CheckoutRequest {
		return sdk.CheckoutRequest{
			IdempotencyKey: key, Settings: bc.Settings, OrderID: "conformance-order", UserID: "conformance-user",
			CustomerEmail: "buyer@example.com", Plan: plan,
			SuccessURL: "https://berth.example.invalid/ok", CancelURL: "https://berth.example.invalid/cancel",
		}
	}
	t.Run("Settings", func(t *testing.T) {
		sts, err := setup(t).Settings(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) == 0 {
			t.Fatal("a billing plugin without settings cannot reach a provider")
		}
		for _, st := range sts {
			if st.Name == "" || st.Description == "" {
				t.Errorf("setting %+v lacks a name or a description", st)
			}
		}
	})
	t.Run("CheckSettings", func(t *testing.T) {
		b := setup(t)
		if err := b.CheckSettings(callCtx(t), bc.Settings); err != nil {
			t.Fatalf("CheckSettings refused the suite's own settings: %v", err)
		}
		sts, err := b.Settings(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		const canary = "conformance-canary-not-a-valid-value"
		for _, st := range sts {
			if st.Required {
				without := maps.Clone(bc.Settings)
				delete(without, st.Name)
				wantKind(t, "CheckSettings without required setting "+st.Name, b.CheckSettings(callCtx(t), without), sdk.ErrInvalidArgument)
			}
			if st.Secret {
				bad := maps.Clone(bc.Settings)
				bad[st.Name] = canary
				if err := b.CheckSettings(callCtx(t), bad); err != nil && strings.Contains(err.Error(), canary) {
					t.Errorf("CheckSettings echoed the value of secret setting %s: %v", st.Name, err)
				}
			}
		}
	})
	t.Run("BadSettingsRefused", func(t *testing.T) {
		b := setup(t)
		req := checkout("conformance-no-settings", bc.Plan)
		req.Settings = nil
		_, err := b.CreateCheckout(callCtx(t), req)
		wantKind(t, "CreateCheckout without settings", err, sdk.ErrInvalidArgument)
		_, err = b.HandleWebhook(callCtx(t), sdk.WebhookRequest{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{}`)})
		wantKind(t, "HandleWebhook without settings", err, sdk.ErrInvalidArgument)
	})
	t.Run("CheckoutIsIdempotent", func(t *testing.T) {
		b := setup(t)
		req := checkout("conformance-checkout", bc.Plan)
		first, err := b.CreateCheckout(callCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := url.Parse(first.URL); err != nil || !u.IsAbs() || first.SessionID == "" {
			t.Errorf("checkout %+v lacks a session id or an absolute URL", first)
		}
		again, err := b.CreateCheckout(callCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if again.SessionID != first.SessionID || again.URL != first.URL {
			t.Errorf("same idempotency key gave sessions %q and %q", first.SessionID, again.SessionID)
		}
		req.OrderID = "conformance-other-order"
		_, err = b.CreateCheckout(callCtx(t), req)
		wantKind(t, "CreateCheckout reusing a key for another order", err, sdk.ErrInvalidArgument)
	})
	t.Run("RecurringCheckout", func(t *testing.T) {
		if bc.RecurringPlan.ID == "" {
			t.Skip("no recurring plan in the case")
		}
		if !bc.RecurringPlan.Recurring() {
			t.Fatalf("RecurringPlan has interval %q", bc.RecurringPlan.Interval)
		}
		c, err := setup(t).CreateCheckout(callCtx(t), checkout("conformance-recurring", bc.RecurringPlan))
		if err != nil {
			t.Fatal(err)
		}
		if u, err := url.Parse(c.URL); err != nil || !u.IsAbs() || c.SessionID == "" {
			t.Errorf("checkout %+v lacks a session id or an absolute URL", c)
		}
	})
	t.Run("InvalidPlanRefused", func(t *testing.T) {
		b := setup(t)
		for name, change := range map[string]func(*sdk.Plan){
			"an upper-case currency": func(p *sdk.Plan) { p.Currency = strings.ToUpper(p.Currency) },
			"no currency":            func(p *sdk.Plan) { p.Currency = "" },
			"an unknown interval":    func(p *sdk.Plan) { p.Interval = "fortnight" },
			"a negative price":       func(p *sdk.Plan) { p.PriceMinor = -1 },
			"no plan id":             func(p *sdk.Plan) { p.ID = "" },
		} {
			plan := bc.Plan
			change(&plan)
			_, err := b.CreateCheckout(callCtx(t), checkout("", plan))
			wantKind(t, "CreateCheckout of a plan with "+name, err, sdk.ErrInvalidArgument)
		}
		req := checkout("", bc.Plan)
		req.OrderID = ""
		_, err := b.CreateCheckout(callCtx(t), req)
		wantKind(t, "CreateCheckout without an order id", err, sdk.ErrInvalidArgument)
	})
	t.Run("Portal", func(t *testing.T) {
		if bc.CustomerID == "" {
			t.Skip("no customer in the case")
		}
		b := setup(t)
		p, err := b.CreatePortal(callCtx(t), sdk.PortalRequest{Settings: bc.Settings, CustomerID: bc.CustomerID, ReturnURL: "https://berth.example.invalid/billing"})
		if err != nil {
			t.Fatal(err)
		}
		if u, err := url.Parse(p.URL); err != nil || !u.IsAbs() {
			t.Errorf("portal URL %q is not absolute", p.URL)
		}
		_, err = b.CreatePortal(callCtx(t), sdk.PortalRequest{Settings: bc.Settings, ReturnURL: "https://berth.example.invalid/billing"})
		wantKind(t, "CreatePortal without a customer", err, sdk.ErrInvalidArgument)
	})
	t.Run("Invoices", func(t *testing.T) {
		if bc.CustomerID == "" {
			t.Skip("no customer in the case")
		}
		b := setup(t)
		invoices, err := b.ListInvoices(callCtx(t), sdk.InvoicesRequest{Settings: bc.Settings, CustomerID: bc.CustomerID, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(invoices) > 5 {
			t.Errorf("%d invoices for a limit of 5", len(invoices))
		}
		for _, in := range invoices {
			if in.ID == "" || in.Status == "" || in.Currency == "" {
				t.Errorf("invoice %+v lacks an id, a status or a currency", in)
			}
		}
		_, err = b.ListInvoices(callCtx(t), sdk.InvoicesRequest{Settings: bc.Settings})
		wantKind(t, "ListInvoices without a customer", err, sdk.ErrInvalidArgument)
	})
	t.Run("CancelSubscription", func(t *testing.T) {
		if bc.SubscriptionID == "" {
			t.Skip("no subscription in the case")
		}
		b := setup(t)
		req := sdk.CancelRequest{IdempotencyKey: "conformance-cancel", Settings: bc.Settings, SubscriptionID: bc.SubscriptionID, AtPeriodEnd: true}
		if err := b.CancelSubscription(callCtx(t), req); err != nil {
			t.Fatal(err)
		}
		if err := b.CancelSubscription(callCtx(t), req); err != nil {
			t.Fatalf("repeated CancelSubscription with the same key: %v", err)
		}
		err := b.CancelSubscription(callCtx(t), sdk.CancelRequest{Settings: bc.Settings})
		wantKind(t, "CancelSubscription without a subscription", err, sdk.ErrInvalidArgument)
	})
	t.Run("UnsignedWebhookRefused", func(t *testing.T) {
		_, err := setup(t).HandleWebhook(callCtx(t), sdk.WebhookRequest{Settings: bc.Settings,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":"evt_forged","object":"event","type":"checkout.session.completed"}`)})
		wantKind(t, "an unsigned webhook", err, sdk.ErrPermissionDenied)
	})
	t.Run("SignedWebhook", func(t *testing.T) {
		if bc.Webhook == nil {
			t.Skip("no webhook signer in the case")
		}
		b := setup(t)
		header, body := bc.Webhook(t, bc.Settings, "conformance-order", "conformance-user", bc.Plan.ID)
		events, err := b.HandleWebhook(callCtx(t), sdk.WebhookRequest{Settings: bc.Settings, Header: header, Body: body})
		if err != nil {
			t.Fatalf("a signed webhook: %v", err)
		}
		if len(events) == 0 {
			t.Fatal("a signed webhook of a completed checkout gave no event")
		}
		e := events[0]
		if e.ID == "" || e.Type != sdk.EventCheckoutCompleted || e.OrderID != "conformance-order" || e.UserID != "conformance-user" || e.PlanID != bc.Plan.ID {
			t.Errorf("event %+v: want a checkout.completed with an id and the order, user and plan ids", e)
		}
		tampered := slices.Clone(body)
		tampered[len(tampered)/2] ^= 0x01
		_, err = b.HandleWebhook(callCtx(t), sdk.WebhookRequest{Settings: bc.Settings, Header: header, Body: tampered})
		wantKind(t, "a webhook whose body changed after signing", err, sdk.ErrPermissionDenied)
		other := maps.Clone(bc.Settings)
		sts, err := b.Settings(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Secret && other[st.Name] != "" {
				other[st.Name] += "0"
			}
		}
		_, err = b.HandleWebhook(callCtx(t), sdk.WebhookRequest{Settings: other, Header: header, Body: body})
		wantKind(t, "a webhook signed with another secret", err, sdk.ErrPermissionDenied)
	})
}
