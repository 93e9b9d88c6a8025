package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
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

// RunBillingConformance checks the Billing contract that needs no payment:
// plans, idempotent checkout, webhook verification, entitlements.
func RunBillingConformance(t *testing.T, f Factory) {
	RunBaseConformance(t, f, sdk.CapabilityBilling)
	setup := func(t *testing.T) (pluginclient.Billing, sdk.Plan) {
		b, err := f(t).Billing()
		if err != nil {
			t.Fatal(err)
		}
		plans, err := b.ListPlans(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(plans) == 0 {
			t.Fatal("ListPlans returned no plan")
		}
		return b, plans[0]
	}
	t.Run("Plans", func(t *testing.T) {
		b, _ := setup(t)
		plans, _ := b.ListPlans(callCtx(t))
		for _, p := range plans {
			if p.ID == "" || len(p.Currency) != 3 || p.PriceMinor < 0 {
				t.Errorf("plan %+v lacks an id, an ISO currency or a price", p)
			}
		}
	})
	t.Run("CheckoutIsIdempotent", func(t *testing.T) {
		b, plan := setup(t)
		req := sdk.CheckoutRequest{IdempotencyKey: "conformance-checkout", UserID: "conformance-user", PlanID: plan.ID, Quantity: 1,
			SuccessURL: "https://berth.example.invalid/ok", CancelURL: "https://berth.example.invalid/cancel"}
		first, err := b.CreateCheckout(callCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := url.Parse(first.URL); err != nil || !u.IsAbs() || first.OrderID == "" {
			t.Errorf("checkout %+v lacks an order id or an absolute URL", first)
		}
		again, err := b.CreateCheckout(callCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if again.OrderID != first.OrderID {
			t.Errorf("same idempotency key gave orders %q and %q", first.OrderID, again.OrderID)
		}
		_, err = b.CreateCheckout(callCtx(t), sdk.CheckoutRequest{UserID: "conformance-user", PlanID: "no-such-plan-from-conformance", Quantity: 1})
		wantKind(t, "checkout of an unknown plan", err, sdk.ErrNotFound)
	})
	t.Run("UnsignedWebhookRefused", func(t *testing.T) {
		b, _ := setup(t)
		_, err := b.HandleWebhook(callCtx(t), sdk.WebhookRequest{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"forged":true}`)})
		if !errors.Is(err, sdk.ErrPermissionDenied) && !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("unsigned webhook: error = %v, want ErrPermissionDenied or ErrInvalidArgument", err)
		}
	})
	t.Run("Entitlement", func(t *testing.T) {
		b, _ := setup(t)
		e, err := b.GetEntitlement(callCtx(t), "conformance-user-without-plan")
		if err != nil {
			t.Fatal(err)
		}
		if e.Active {
			t.Errorf("a user who bought nothing is entitled: %+v", e)
		}
		err = b.Cancel(callCtx(t), sdk.CancelRequest{OrderID: "no-such-order-from-conformance"})
		wantKind(t, "Cancel of an unknown order", err, sdk.ErrNotFound)
	})
}
