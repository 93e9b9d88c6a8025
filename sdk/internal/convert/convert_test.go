package convert

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk/api"
)

// TestRoundTrip: every value survives the trip to a message and back, so
// the plugin and the gateway, which use opposite halves of this file, see
// the same thing.
func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	spec := api.ClusterSpec{Name: "c1", KubernetesVersion: "1.33", ControlPlane: api.Resources{CPUMillicores: 2000, MemoryBytes: 4 << 30},
		Workers: api.Resources{CPUMillicores: 500, MemoryBytes: 1 << 30}, Options: map[string]string{"region": "eu"}}
	progress := api.Progress{Stage: "etcd", Message: "starting etcd", Percent: 40}
	op := api.Operation{ID: "op1", ClusterName: "c1", Kind: api.OperationUpdate, State: api.OperationFailed, Progress: progress, Error: "boom", StartedAt: at, UpdatedAt: at.Add(time.Minute)}
	record := api.Record{ID: "r1", Name: "www", Type: "SRV", Value: "host.", TTL: 300 * time.Second, Priority: 10, Weight: 5}
	for _, tc := range []struct {
		name string
		in   any
		trip func(any) any
	}{
		{"info", api.Info{Name: "p", Version: "1.2.3", ProtocolVersions: []int{1, 2}, Capabilities: []api.Capability{api.CapabilityDNS, api.CapabilityBilling},
			ConfigSchema: []byte(`{"type":"object"}`), SDKVersion: "0.1.0"}, func(v any) any { return Info(InfoPB(v.(api.Info))) }},
		{"health", api.Health{Status: api.HealthDegraded, Message: "slow"}, func(v any) any { return Health(HealthPB(v.(api.Health))) }},
		{"cluster", api.Cluster{Spec: spec, Phase: api.ClusterDeleting, Message: "going", CreatedAt: at, UpdatedAt: at}, func(v any) any { return Cluster(ClusterPB(v.(api.Cluster))) }},
		{"clusters", []api.Cluster{{Spec: spec, Phase: api.ClusterReady}}, func(v any) any { return Clusters(ClustersPB(v.([]api.Cluster))) }},
		{"operation", op, func(v any) any { return Operation(OperationPB(v.(api.Operation))) }},
		{"connection", api.Connection{APIEndpoint: "https://c1:6443", CAPEM: []byte("ca"), Kubeconfig: []byte("kc")}, func(v any) any { return Connection(ConnectionPB(v.(api.Connection))) }},
		{"create", api.CreateClusterRequest{IdempotencyKey: "k", Spec: spec}, func(v any) any { return CreateClusterRequest(CreateClusterRequestPB(v.(api.CreateClusterRequest))) }},
		{"update", api.UpdateClusterRequest{IdempotencyKey: "k", Spec: spec}, func(v any) any { return UpdateClusterRequest(UpdateClusterRequestPB(v.(api.UpdateClusterRequest))) }},
		{"delete", api.DeleteClusterRequest{IdempotencyKey: "k", Name: "c1"}, func(v any) any { return DeleteClusterRequest(DeleteClusterRequestPB(v.(api.DeleteClusterRequest))) }},
		{"join request", api.JoinMaterialRequest{IdempotencyKey: "k", ClusterName: "c1", TTL: time.Hour}, func(v any) any { return JoinMaterialRequest(JoinMaterialRequestPB(v.(api.JoinMaterialRequest))) }},
		{"join material", api.JoinMaterial{APIEndpoint: "https://c1", CACertHash: "sha256:ab", BootstrapToken: "a.b", ExpiresAt: at}, func(v any) any { return JoinMaterial(JoinMaterialPB(v.(api.JoinMaterial))) }},
		{"billing settings", []api.Setting{{Name: "secret_key", Description: "API key", Required: true, Secret: true}, {Name: "api_base"}},
			func(v any) any { return BillingSettings(BillingSettingsPB(v.([]api.Setting))) }},
		{"checkout request", api.CheckoutRequest{IdempotencyKey: "k", Settings: map[string]string{"secret_key": "sk"}, OrderID: "o", UserID: "u",
			CustomerEmail: "a@b", CustomerID: "cus", Plan: api.Plan{ID: "p", Name: "Pro", Description: "more", PriceMinor: 900, Currency: "eur", Interval: "month"},
			SuccessURL: "s", CancelURL: "c", Metadata: map[string]string{"a": "b"}},
			func(v any) any { return CheckoutRequest(CheckoutRequestPB(v.(api.CheckoutRequest))) }},
		{"checkout", api.Checkout{SessionID: "cs", URL: "https://pay", CustomerID: "cus", ExpiresAt: at}, func(v any) any { return Checkout(CheckoutPB(v.(api.Checkout))) }},
		{"portal request", api.PortalRequest{IdempotencyKey: "k", Settings: map[string]string{"a": "b"}, CustomerID: "cus", ReturnURL: "https://back"},
			func(v any) any { return PortalRequest(PortalRequestPB(v.(api.PortalRequest))) }},
		{"portal", api.Portal{URL: "https://portal"}, func(v any) any { return Portal(PortalPB(v.(api.Portal))) }},
		{"invoices request", api.InvoicesRequest{Settings: map[string]string{"a": "b"}, CustomerID: "cus", Limit: 7},
			func(v any) any { return InvoicesRequest(InvoicesRequestPB(v.(api.InvoicesRequest))) }},
		{"invoices", []api.Invoice{{ID: "in", Number: "N-1", Status: "paid", AmountDueMinor: 900, AmountPaidMinor: 900, Currency: "eur",
			HostedURL: "https://h", PDFURL: "https://p", SubscriptionID: "sub", Created: at}},
			func(v any) any { return Invoices(InvoicesPB(v.([]api.Invoice))) }},
		{"webhook", api.WebhookRequest{Settings: map[string]string{"webhook_secret": "w"}, Header: http.Header{"X-Sig": {"a", "b"}}, Body: []byte("{}")},
			func(v any) any { return WebhookRequest(WebhookRequestPB(v.(api.WebhookRequest))) }},
		{"billing events", []api.BillingEvent{{ID: "e", Type: api.EventSubscriptionUpdated, OrderID: "o", UserID: "u", PlanID: "p",
			CustomerID: "cus", SubscriptionID: "sub", SessionID: "cs", InvoiceID: "in", AmountMinor: 5, Currency: "eur", Status: "active",
			PaymentStatus: "paid", CurrentPeriodEnd: at.Add(time.Hour), CancelAtPeriodEnd: true, OccurredAt: at, Metadata: map[string]string{"a": "b"}}},
			func(v any) any { return BillingEvents(BillingEventsPB(v.([]api.BillingEvent))) }},
		{"cancel", api.CancelRequest{IdempotencyKey: "k", Settings: map[string]string{"a": "b"}, SubscriptionID: "sub", AtPeriodEnd: true},
			func(v any) any { return CancelRequest(CancelRequestPB(v.(api.CancelRequest))) }},
		{"channels", []api.Channel{{Type: "email", Name: "ops", Description: "the ops list", Settings: []api.ChannelSetting{{Name: "password", Description: "SMTP password", Required: true, Secret: true}}}}, func(v any) any { return Channels(ChannelsPB(v.([]api.Channel))) }},
		{"message", api.Message{IdempotencyKey: "k", Channel: "ops", Target: "a@b", TemplateID: "t", Subject: "s", TextBody: "x", HTMLBody: "<p>x</p>", Metadata: map[string]string{"a": "b"}, Settings: map[string]string{"url": "https://example.com/hook"}},
			func(v any) any { return Message(MessagePB(v.(api.Message))) }},
		{"channel check", api.ChannelCheck{Channel: "webhook", Settings: map[string]string{"url": "https://example.com/"}, Target: "t"},
			func(v any) any { return ChannelCheck(ChannelCheckPB(v.(api.ChannelCheck))) }},
		{"delivery", api.Delivery{ProviderMessageID: "m", AcceptedAt: at}, func(v any) any { return Delivery(DeliveryPB(v.(api.Delivery))) }},
		{"records", []api.Record{record}, func(v any) any { return Records(RecordsPB(v.([]api.Record))) }},
		{"records change", api.RecordsChange{IdempotencyKey: "k", Zone: "example.com.", Records: []api.Record{record}}, func(v any) any { return RecordsChange(RecordsChangePB(v.(api.RecordsChange))) }},
		{"kv entries", []api.KVEntry{{Key: "a", Value: []byte("1")}}, func(v any) any { return KVEntries(KVEntriesPB(v.([]api.KVEntry))) }},
		{"event", api.Event{Type: "operation.progress", Subject: "op1", Message: "m", Progress: &progress, Attributes: map[string]string{"a": "b"}, Time: at},
			func(v any) any { return Event(EventPB(v.(api.Event))) }},
	} {
		if got := tc.trip(tc.in); !reflect.DeepEqual(got, tc.in) {
			t.Errorf("%s: round trip gave\n%+v\nwant\n%+v", tc.name, got, tc.in)
		}
	}
}

// TestBillingEventTypes: every event type has a wire value and comes back
// as itself, and a wire value this side does not know becomes "".
func TestBillingEventTypes(t *testing.T) {
	all := []api.BillingEventType{api.EventCheckoutCompleted, api.EventPaymentSucceeded, api.EventPaymentFailed, api.EventInvoicePaid,
		api.EventInvoicePaymentFailed, api.EventSubscriptionUpdated, api.EventSubscriptionDeleted}
	if len(billingEventsPB) != len(all) {
		t.Fatalf("%d event types on the wire, %d in the API", len(billingEventsPB), len(all))
	}
	for _, typ := range all {
		if got := BillingEvent(BillingEventPB(api.BillingEvent{Type: typ})).Type; got != typ {
			t.Errorf("%s came back as %q", typ, got)
		}
	}
	pbe := BillingEventPB(api.BillingEvent{ID: "e", Type: api.EventInvoicePaid})
	pbe.Type = 99
	if got := BillingEvent(pbe); got.Type != "" || got.ID != "e" {
		t.Errorf("an unknown wire type came back as %+v", got)
	}
}
