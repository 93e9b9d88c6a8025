// Package convert turns the plugin API's Go types (package api) into the
// protocol's messages and back: the one place both sides of the wire
// convert, the plugin's (package sdk's server) and the gateway's
// (pluginclient and host). For each type, X converts a message into the Go
// type and XPB the Go type into a message.
package convert

import (
	"net/http"
	"sort"
	"time"

	"github.com/berthgw/berth/sdk/api"
	pb "github.com/berthgw/berth/sdk/proto/berth/plugin/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TS converts a time, zero to nil.
func TS(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Time converts a timestamp, nil to the zero time.
func Time(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// seconds converts a duration to whole seconds, rounding down.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// duration converts whole seconds to a duration.
func duration(s int64) time.Duration { return time.Duration(s) * time.Second }

// invert returns the reverse of a one-to-one map.
func invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// list converts each element of a slice.
func list[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

var (
	capabilitiesPB = map[api.Capability]pb.Capability{
		api.CapabilityProvisioner: pb.Capability_CAPABILITY_PROVISIONER,
		api.CapabilityBilling:     pb.Capability_CAPABILITY_BILLING,
		api.CapabilityNotifier:    pb.Capability_CAPABILITY_NOTIFIER,
		api.CapabilityDNS:         pb.Capability_CAPABILITY_DNS,
	}
	capabilities = invert(capabilitiesPB)
)

// InfoPB converts a plugin's description.
func InfoPB(info api.Info) *pb.GetInfoResponse {
	resp := &pb.GetInfoResponse{Name: info.Name, Version: info.Version, ConfigSchema: info.ConfigSchema, SdkVersion: info.SDKVersion}
	for _, v := range info.ProtocolVersions {
		resp.ProtocolVersions = append(resp.ProtocolVersions, uint32(v))
	}
	for _, c := range info.Capabilities {
		resp.Capabilities = append(resp.Capabilities, capabilitiesPB[c])
	}
	return resp
}

// Info converts GetInfo's answer. Unknown capabilities (from a newer
// plugin) are dropped: this host cannot use them.
func Info(r *pb.GetInfoResponse) api.Info {
	info := api.Info{Name: r.GetName(), Version: r.GetVersion(), ConfigSchema: r.GetConfigSchema(), SDKVersion: r.GetSdkVersion()}
	for _, v := range r.GetProtocolVersions() {
		info.ProtocolVersions = append(info.ProtocolVersions, int(v))
	}
	for _, c := range r.GetCapabilities() {
		if cc, ok := capabilities[c]; ok {
			info.Capabilities = append(info.Capabilities, cc)
		}
	}
	return info
}

var (
	healthPB = map[api.HealthStatus]pb.HealthResponse_Status{
		api.HealthServing:    pb.HealthResponse_STATUS_SERVING,
		api.HealthDegraded:   pb.HealthResponse_STATUS_DEGRADED,
		api.HealthNotServing: pb.HealthResponse_STATUS_NOT_SERVING,
	}
	health = invert(healthPB)
)

// HealthPB converts a health check's answer.
func HealthPB(h api.Health) *pb.HealthResponse {
	return &pb.HealthResponse{Status: healthPB[h.Status], Message: h.Message}
}

// Health converts a health check's answer.
func Health(r *pb.HealthResponse) api.Health {
	return api.Health{Status: health[r.GetStatus()], Message: r.GetMessage()}
}

// ProgressPB converts progress.
func ProgressPB(p api.Progress) *pb.Progress {
	return &pb.Progress{Stage: p.Stage, Message: p.Message, Percent: int32(p.Percent)}
}

// Progress converts progress.
func Progress(p *pb.Progress) api.Progress {
	return api.Progress{Stage: p.GetStage(), Message: p.GetMessage(), Percent: int(p.GetPercent())}
}

// SpecPB converts a cluster spec.
func SpecPB(s api.ClusterSpec) *pb.ClusterSpec {
	return &pb.ClusterSpec{
		Name:              s.Name,
		KubernetesVersion: s.KubernetesVersion,
		ControlPlane:      &pb.Resources{CpuMillicores: s.ControlPlane.CPUMillicores, MemoryBytes: s.ControlPlane.MemoryBytes},
		Workers:           &pb.Resources{CpuMillicores: s.Workers.CPUMillicores, MemoryBytes: s.Workers.MemoryBytes},
		Options:           s.Options,
	}
}

// Spec converts a cluster spec.
func Spec(s *pb.ClusterSpec) api.ClusterSpec {
	return api.ClusterSpec{
		Name:              s.GetName(),
		KubernetesVersion: s.GetKubernetesVersion(),
		ControlPlane:      api.Resources{CPUMillicores: s.GetControlPlane().GetCpuMillicores(), MemoryBytes: s.GetControlPlane().GetMemoryBytes()},
		Workers:           api.Resources{CPUMillicores: s.GetWorkers().GetCpuMillicores(), MemoryBytes: s.GetWorkers().GetMemoryBytes()},
		Options:           s.GetOptions(),
	}
}

var (
	phasesPB = map[api.ClusterPhase]pb.ClusterPhase{
		api.ClusterProvisioning: pb.ClusterPhase_CLUSTER_PHASE_PROVISIONING,
		api.ClusterReady:        pb.ClusterPhase_CLUSTER_PHASE_READY,
		api.ClusterUpdating:     pb.ClusterPhase_CLUSTER_PHASE_UPDATING,
		api.ClusterDeleting:     pb.ClusterPhase_CLUSTER_PHASE_DELETING,
		api.ClusterFailed:       pb.ClusterPhase_CLUSTER_PHASE_FAILED,
	}
	phases = invert(phasesPB)
)

// ClusterPB converts a cluster.
func ClusterPB(c api.Cluster) *pb.Cluster {
	return &pb.Cluster{Spec: SpecPB(c.Spec), Phase: phasesPB[c.Phase], Message: c.Message, CreatedAt: TS(c.CreatedAt), UpdatedAt: TS(c.UpdatedAt)}
}

// Cluster converts a cluster.
func Cluster(c *pb.Cluster) api.Cluster {
	return api.Cluster{Spec: Spec(c.GetSpec()), Phase: phases[c.GetPhase()], Message: c.GetMessage(), CreatedAt: Time(c.GetCreatedAt()), UpdatedAt: Time(c.GetUpdatedAt())}
}

// ClustersPB converts clusters.
func ClustersPB(cs []api.Cluster) *pb.ListClustersResponse {
	return &pb.ListClustersResponse{Clusters: list(cs, ClusterPB)}
}

// Clusters converts clusters.
func Clusters(r *pb.ListClustersResponse) []api.Cluster { return list(r.GetClusters(), Cluster) }

// ConnectionPB converts how to reach a cluster.
func ConnectionPB(c api.Connection) *pb.ClusterConnection {
	return &pb.ClusterConnection{ApiEndpoint: c.APIEndpoint, CaPem: c.CAPEM, Kubeconfig: c.Kubeconfig}
}

// Connection converts how to reach a cluster.
func Connection(c *pb.ClusterConnection) api.Connection {
	return api.Connection{APIEndpoint: c.GetApiEndpoint(), CAPEM: c.GetCaPem(), Kubeconfig: c.GetKubeconfig()}
}

var (
	opKindsPB = map[api.OperationKind]pb.OperationKind{
		api.OperationCreate: pb.OperationKind_OPERATION_KIND_CREATE,
		api.OperationUpdate: pb.OperationKind_OPERATION_KIND_UPDATE,
		api.OperationDelete: pb.OperationKind_OPERATION_KIND_DELETE,
	}
	opKinds    = invert(opKindsPB)
	opStatesPB = map[api.OperationState]pb.OperationState{
		api.OperationRunning:   pb.OperationState_OPERATION_STATE_RUNNING,
		api.OperationSucceeded: pb.OperationState_OPERATION_STATE_SUCCEEDED,
		api.OperationFailed:    pb.OperationState_OPERATION_STATE_FAILED,
	}
	opStates = invert(opStatesPB)
)

// OperationPB converts an operation.
func OperationPB(o api.Operation) *pb.Operation {
	return &pb.Operation{
		Id:          o.ID,
		ClusterName: o.ClusterName,
		Kind:        opKindsPB[o.Kind],
		State:       opStatesPB[o.State],
		Progress:    ProgressPB(o.Progress),
		Error:       o.Error,
		StartedAt:   TS(o.StartedAt),
		UpdatedAt:   TS(o.UpdatedAt),
	}
}

// Operation converts an operation.
func Operation(o *pb.Operation) api.Operation {
	return api.Operation{
		ID:          o.GetId(),
		ClusterName: o.GetClusterName(),
		Kind:        opKinds[o.GetKind()],
		State:       opStates[o.GetState()],
		Progress:    Progress(o.GetProgress()),
		Error:       o.GetError(),
		StartedAt:   Time(o.GetStartedAt()),
		UpdatedAt:   Time(o.GetUpdatedAt()),
	}
}

// CreateClusterRequestPB converts a request for a new cluster.
func CreateClusterRequestPB(r api.CreateClusterRequest) *pb.CreateClusterRequest {
	return &pb.CreateClusterRequest{IdempotencyKey: r.IdempotencyKey, Spec: SpecPB(r.Spec)}
}

// CreateClusterRequest converts a request for a new cluster.
func CreateClusterRequest(r *pb.CreateClusterRequest) api.CreateClusterRequest {
	return api.CreateClusterRequest{IdempotencyKey: r.GetIdempotencyKey(), Spec: Spec(r.GetSpec())}
}

// UpdateClusterRequestPB converts a request to change a cluster.
func UpdateClusterRequestPB(r api.UpdateClusterRequest) *pb.UpdateClusterRequest {
	return &pb.UpdateClusterRequest{IdempotencyKey: r.IdempotencyKey, Spec: SpecPB(r.Spec)}
}

// UpdateClusterRequest converts a request to change a cluster.
func UpdateClusterRequest(r *pb.UpdateClusterRequest) api.UpdateClusterRequest {
	return api.UpdateClusterRequest{IdempotencyKey: r.GetIdempotencyKey(), Spec: Spec(r.GetSpec())}
}

// DeleteClusterRequestPB converts a request to delete a cluster.
func DeleteClusterRequestPB(r api.DeleteClusterRequest) *pb.DeleteClusterRequest {
	return &pb.DeleteClusterRequest{IdempotencyKey: r.IdempotencyKey, Name: r.Name}
}

// DeleteClusterRequest converts a request to delete a cluster.
func DeleteClusterRequest(r *pb.DeleteClusterRequest) api.DeleteClusterRequest {
	return api.DeleteClusterRequest{IdempotencyKey: r.GetIdempotencyKey(), Name: r.GetName()}
}

// JoinMaterialRequestPB converts a request for join material.
func JoinMaterialRequestPB(r api.JoinMaterialRequest) *pb.GetJoinMaterialRequest {
	return &pb.GetJoinMaterialRequest{IdempotencyKey: r.IdempotencyKey, ClusterName: r.ClusterName, TtlSeconds: seconds(r.TTL)}
}

// JoinMaterialRequest converts a request for join material.
func JoinMaterialRequest(r *pb.GetJoinMaterialRequest) api.JoinMaterialRequest {
	return api.JoinMaterialRequest{IdempotencyKey: r.GetIdempotencyKey(), ClusterName: r.GetClusterName(), TTL: duration(r.GetTtlSeconds())}
}

// JoinMaterialPB converts what a node needs to join a cluster.
func JoinMaterialPB(m api.JoinMaterial) *pb.JoinMaterial {
	return &pb.JoinMaterial{ApiEndpoint: m.APIEndpoint, CaCertHash: m.CACertHash, BootstrapToken: m.BootstrapToken, ExpiresAt: TS(m.ExpiresAt)}
}

// JoinMaterial converts what a node needs to join a cluster.
func JoinMaterial(m *pb.JoinMaterial) api.JoinMaterial {
	return api.JoinMaterial{APIEndpoint: m.GetApiEndpoint(), CACertHash: m.GetCaCertHash(), BootstrapToken: m.GetBootstrapToken(), ExpiresAt: Time(m.GetExpiresAt())}
}

// SettingPB converts a setting's description.
func SettingPB(st api.Setting) *pb.ChannelSetting {
	return &pb.ChannelSetting{Name: st.Name, Description: st.Description, Required: st.Required, Secret: st.Secret}
}

// Setting converts a setting's description.
func Setting(st *pb.ChannelSetting) api.Setting {
	return api.Setting{Name: st.GetName(), Description: st.GetDescription(), Required: st.GetRequired(), Secret: st.GetSecret()}
}

// BillingSettingsPB converts a billing plugin's settings.
func BillingSettingsPB(sts []api.Setting) *pb.ListBillingSettingsResponse {
	return &pb.ListBillingSettingsResponse{Settings: list(sts, SettingPB)}
}

// BillingSettings converts a billing plugin's settings.
func BillingSettings(r *pb.ListBillingSettingsResponse) []api.Setting {
	return list(r.GetSettings(), Setting)
}

// PlanPB converts a plan.
func PlanPB(p api.Plan) *pb.Plan {
	return &pb.Plan{Id: p.ID, Name: p.Name, Description: p.Description, PriceMinor: p.PriceMinor, Currency: p.Currency, Interval: p.Interval}
}

// Plan converts a plan.
func Plan(p *pb.Plan) api.Plan {
	return api.Plan{ID: p.GetId(), Name: p.GetName(), Description: p.GetDescription(), PriceMinor: p.GetPriceMinor(), Currency: p.GetCurrency(), Interval: p.GetInterval()}
}

// CheckoutRequestPB converts a request for a checkout session.
func CheckoutRequestPB(r api.CheckoutRequest) *pb.CreateCheckoutRequest {
	return &pb.CreateCheckoutRequest{
		IdempotencyKey: r.IdempotencyKey, Settings: r.Settings, OrderId: r.OrderID, UserId: r.UserID,
		CustomerEmail: r.CustomerEmail, CustomerId: r.CustomerID, Plan: PlanPB(r.Plan),
		SuccessUrl: r.SuccessURL, CancelUrl: r.CancelURL, Metadata: r.Metadata,
	}
}

// CheckoutRequest converts a request for a checkout session.
func CheckoutRequest(r *pb.CreateCheckoutRequest) api.CheckoutRequest {
	return api.CheckoutRequest{
		IdempotencyKey: r.GetIdempotencyKey(), Settings: r.GetSettings(), OrderID: r.GetOrderId(), UserID: r.GetUserId(),
		CustomerEmail: r.GetCustomerEmail(), CustomerID: r.GetCustomerId(), Plan: Plan(r.GetPlan()),
		SuccessURL: r.GetSuccessUrl(), CancelURL: r.GetCancelUrl(), Metadata: r.GetMetadata(),
	}
}

// CheckoutPB converts a created checkout.
func CheckoutPB(c api.Checkout) *pb.Checkout {
	return &pb.Checkout{SessionId: c.SessionID, CheckoutUrl: c.URL, CustomerId: c.CustomerID, ExpiresAt: TS(c.ExpiresAt)}
}

// Checkout converts a created checkout.
func Checkout(c *pb.Checkout) api.Checkout {
	return api.Checkout{SessionID: c.GetSessionId(), URL: c.GetCheckoutUrl(), CustomerID: c.GetCustomerId(), ExpiresAt: Time(c.GetExpiresAt())}
}

// PortalRequestPB converts a request for a customer portal session.
func PortalRequestPB(r api.PortalRequest) *pb.CreatePortalRequest {
	return &pb.CreatePortalRequest{IdempotencyKey: r.IdempotencyKey, Settings: r.Settings, CustomerId: r.CustomerID, ReturnUrl: r.ReturnURL}
}

// PortalRequest converts a request for a customer portal session.
func PortalRequest(r *pb.CreatePortalRequest) api.PortalRequest {
	return api.PortalRequest{IdempotencyKey: r.GetIdempotencyKey(), Settings: r.GetSettings(), CustomerID: r.GetCustomerId(), ReturnURL: r.GetReturnUrl()}
}

// PortalPB converts a customer portal session.
func PortalPB(p api.Portal) *pb.Portal { return &pb.Portal{Url: p.URL} }

// Portal converts a customer portal session.
func Portal(p *pb.Portal) api.Portal { return api.Portal{URL: p.GetUrl()} }

// InvoicesRequestPB converts a request for a customer's invoices.
func InvoicesRequestPB(r api.InvoicesRequest) *pb.ListInvoicesRequest {
	return &pb.ListInvoicesRequest{Settings: r.Settings, CustomerId: r.CustomerID, Limit: int32(r.Limit)}
}

// InvoicesRequest converts a request for a customer's invoices.
func InvoicesRequest(r *pb.ListInvoicesRequest) api.InvoicesRequest {
	return api.InvoicesRequest{Settings: r.GetSettings(), CustomerID: r.GetCustomerId(), Limit: int(r.GetLimit())}
}

// InvoicePB converts an invoice.
func InvoicePB(i api.Invoice) *pb.Invoice {
	return &pb.Invoice{
		Id: i.ID, Number: i.Number, Status: i.Status, AmountDueMinor: i.AmountDueMinor, AmountPaidMinor: i.AmountPaidMinor,
		Currency: i.Currency, HostedUrl: i.HostedURL, PdfUrl: i.PDFURL, SubscriptionId: i.SubscriptionID, Created: TS(i.Created),
	}
}

// Invoice converts an invoice.
func Invoice(i *pb.Invoice) api.Invoice {
	return api.Invoice{
		ID: i.GetId(), Number: i.GetNumber(), Status: i.GetStatus(), AmountDueMinor: i.GetAmountDueMinor(), AmountPaidMinor: i.GetAmountPaidMinor(),
		Currency: i.GetCurrency(), HostedURL: i.GetHostedUrl(), PDFURL: i.GetPdfUrl(), SubscriptionID: i.GetSubscriptionId(), Created: Time(i.GetCreated()),
	}
}

// InvoicesPB converts invoices.
func InvoicesPB(is []api.Invoice) *pb.ListInvoicesResponse {
	return &pb.ListInvoicesResponse{Invoices: list(is, InvoicePB)}
}

// Invoices converts invoices.
func Invoices(r *pb.ListInvoicesResponse) []api.Invoice { return list(r.GetInvoices(), Invoice) }

// HeadersPB converts HTTP headers, sorted by name so equal headers make
// equal requests (the idempotency cache compares requests).
func HeadersPB(h http.Header) []*pb.Header {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*pb.Header
	for _, n := range names {
		for _, v := range h[n] {
			out = append(out, &pb.Header{Name: n, Value: v})
		}
	}
	return out
}

// Headers converts HTTP headers.
func Headers(hs []*pb.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, kv := range hs {
		h.Add(kv.GetName(), kv.GetValue())
	}
	return h
}

// WebhookRequestPB converts a provider's webhook.
func WebhookRequestPB(r api.WebhookRequest) *pb.HandleWebhookRequest {
	return &pb.HandleWebhookRequest{Settings: r.Settings, Headers: HeadersPB(r.Header), Body: r.Body}
}

// WebhookRequest converts a provider's webhook.
func WebhookRequest(r *pb.HandleWebhookRequest) api.WebhookRequest {
	return api.WebhookRequest{Settings: r.GetSettings(), Header: Headers(r.GetHeaders()), Body: r.GetBody()}
}

var (
	billingEventsPB = map[api.BillingEventType]pb.BillingEventType{
		api.EventCheckoutCompleted:    pb.BillingEventType_BILLING_EVENT_TYPE_CHECKOUT_COMPLETED,
		api.EventPaymentSucceeded:     pb.BillingEventType_BILLING_EVENT_TYPE_PAYMENT_SUCCEEDED,
		api.EventPaymentFailed:        pb.BillingEventType_BILLING_EVENT_TYPE_PAYMENT_FAILED,
		api.EventInvoicePaid:          pb.BillingEventType_BILLING_EVENT_TYPE_INVOICE_PAID,
		api.EventInvoicePaymentFailed: pb.BillingEventType_BILLING_EVENT_TYPE_INVOICE_PAYMENT_FAILED,
		api.EventSubscriptionUpdated:  pb.BillingEventType_BILLING_EVENT_TYPE_SUBSCRIPTION_UPDATED,
		api.EventSubscriptionDeleted:  pb.BillingEventType_BILLING_EVENT_TYPE_SUBSCRIPTION_DELETED,
	}
	billingEvents = invert(billingEventsPB)
)

// BillingEventPB converts a billing event.
func BillingEventPB(e api.BillingEvent) *pb.BillingEvent {
	return &pb.BillingEvent{
		Id: e.ID, Type: billingEventsPB[e.Type], OrderId: e.OrderID, UserId: e.UserID, PlanId: e.PlanID,
		CustomerId: e.CustomerID, SubscriptionId: e.SubscriptionID, SessionId: e.SessionID, InvoiceId: e.InvoiceID,
		AmountMinor: e.AmountMinor, Currency: e.Currency, Status: e.Status, PaymentStatus: e.PaymentStatus,
		CurrentPeriodEnd: TS(e.CurrentPeriodEnd), CancelAtPeriodEnd: e.CancelAtPeriodEnd, OccurredAt: TS(e.OccurredAt), Metadata: e.Metadata,
	}
}

// BillingEvent converts a billing event. A type this side does not know
// (from a newer plugin) becomes "", which the gateway ignores.
func BillingEvent(e *pb.BillingEvent) api.BillingEvent {
	return api.BillingEvent{
		ID: e.GetId(), Type: billingEvents[e.GetType()], OrderID: e.GetOrderId(), UserID: e.GetUserId(), PlanID: e.GetPlanId(),
		CustomerID: e.GetCustomerId(), SubscriptionID: e.GetSubscriptionId(), SessionID: e.GetSessionId(), InvoiceID: e.GetInvoiceId(),
		AmountMinor: e.GetAmountMinor(), Currency: e.GetCurrency(), Status: e.GetStatus(), PaymentStatus: e.GetPaymentStatus(),
		CurrentPeriodEnd: Time(e.GetCurrentPeriodEnd()), CancelAtPeriodEnd: e.GetCancelAtPeriodEnd(), OccurredAt: Time(e.GetOccurredAt()), Metadata: e.GetMetadata(),
	}
}

// BillingEventsPB converts billing events.
func BillingEventsPB(es []api.BillingEvent) *pb.HandleWebhookResponse {
	return &pb.HandleWebhookResponse{Events: list(es, BillingEventPB)}
}

// BillingEvents converts billing events.
func BillingEvents(r *pb.HandleWebhookResponse) []api.BillingEvent {
	return list(r.GetEvents(), BillingEvent)
}

// CancelRequestPB converts a request to cancel a subscription.
func CancelRequestPB(r api.CancelRequest) *pb.CancelSubscriptionRequest {
	return &pb.CancelSubscriptionRequest{IdempotencyKey: r.IdempotencyKey, Settings: r.Settings, SubscriptionId: r.SubscriptionID, AtPeriodEnd: r.AtPeriodEnd}
}

// CancelRequest converts a request to cancel a subscription.
func CancelRequest(r *pb.CancelSubscriptionRequest) api.CancelRequest {
	return api.CancelRequest{IdempotencyKey: r.GetIdempotencyKey(), Settings: r.GetSettings(), SubscriptionID: r.GetSubscriptionId(), AtPeriodEnd: r.GetAtPeriodEnd()}
}

// ChannelPB converts a notifier's channel.
func ChannelPB(c api.Channel) *pb.Channel {
	out := &pb.Channel{Type: c.Type, Name: c.Name, Description: c.Description}
	if len(c.Settings) > 0 {
		out.Settings = list(c.Settings, SettingPB)
	}
	return out
}

// Channel converts a notifier's channel.
func Channel(c *pb.Channel) api.Channel {
	out := api.Channel{Type: c.GetType(), Name: c.GetName(), Description: c.GetDescription()}
	if len(c.GetSettings()) > 0 {
		out.Settings = list(c.GetSettings(), Setting)
	}
	return out
}

// ChannelCheckPB converts a channel check.
func ChannelCheckPB(c api.ChannelCheck) *pb.CheckChannelRequest {
	return &pb.CheckChannelRequest{Channel: c.Channel, Settings: c.Settings, Target: c.Target}
}

// ChannelCheck converts a channel check.
func ChannelCheck(r *pb.CheckChannelRequest) api.ChannelCheck {
	return api.ChannelCheck{Channel: r.GetChannel(), Settings: r.GetSettings(), Target: r.GetTarget()}
}

// ChannelsPB converts a notifier's channels.
func ChannelsPB(cs []api.Channel) *pb.ListChannelsResponse {
	return &pb.ListChannelsResponse{Channels: list(cs, ChannelPB)}
}

// Channels converts a notifier's channels.
func Channels(r *pb.ListChannelsResponse) []api.Channel { return list(r.GetChannels(), Channel) }

// MessagePB converts a notification.
func MessagePB(m api.Message) *pb.SendRequest {
	return &pb.SendRequest{
		IdempotencyKey: m.IdempotencyKey, Channel: m.Channel, Target: m.Target, TemplateId: m.TemplateID,
		Subject: m.Subject, TextBody: m.TextBody, HtmlBody: m.HTMLBody, Metadata: m.Metadata, Settings: m.Settings,
	}
}

// Message converts a notification.
func Message(r *pb.SendRequest) api.Message {
	return api.Message{
		IdempotencyKey: r.GetIdempotencyKey(), Channel: r.GetChannel(), Target: r.GetTarget(), TemplateID: r.GetTemplateId(),
		Subject: r.GetSubject(), TextBody: r.GetTextBody(), HTMLBody: r.GetHtmlBody(), Metadata: r.GetMetadata(), Settings: r.GetSettings(),
	}
}

// DeliveryPB converts a provider's receipt.
func DeliveryPB(d api.Delivery) *pb.Delivery {
	return &pb.Delivery{ProviderMessageId: d.ProviderMessageID, AcceptedAt: TS(d.AcceptedAt)}
}

// Delivery converts a provider's receipt.
func Delivery(d *pb.Delivery) api.Delivery {
	return api.Delivery{ProviderMessageID: d.GetProviderMessageId(), AcceptedAt: Time(d.GetAcceptedAt())}
}

// RecordPB converts a DNS record.
func RecordPB(r api.Record) *pb.Record {
	return &pb.Record{
		Id: r.ID, Name: r.Name, Type: r.Type, Value: r.Value,
		TtlSeconds: seconds(r.TTL), Priority: uint32(r.Priority), Weight: uint32(r.Weight),
	}
}

// Record converts a DNS record.
func Record(r *pb.Record) api.Record {
	return api.Record{
		ID: r.GetId(), Name: r.GetName(), Type: r.GetType(), Value: r.GetValue(),
		TTL: duration(r.GetTtlSeconds()), Priority: uint(r.GetPriority()), Weight: uint(r.GetWeight()),
	}
}

// RecordsPB converts DNS records.
func RecordsPB(rs []api.Record) *pb.RecordsResponse {
	return &pb.RecordsResponse{Records: list(rs, RecordPB)}
}

// Records converts DNS records.
func Records(r *pb.RecordsResponse) []api.Record { return list(r.GetRecords(), Record) }

// RecordsChangePB converts a change to a zone's records.
func RecordsChangePB(c api.RecordsChange) *pb.ChangeRecordsRequest {
	return &pb.ChangeRecordsRequest{IdempotencyKey: c.IdempotencyKey, Zone: c.Zone, Records: list(c.Records, RecordPB)}
}

// RecordsChange converts a change to a zone's records.
func RecordsChange(r *pb.ChangeRecordsRequest) api.RecordsChange {
	return api.RecordsChange{IdempotencyKey: r.GetIdempotencyKey(), Zone: r.GetZone(), Records: list(r.GetRecords(), Record)}
}

// KVEntryPB converts a key-value entry.
func KVEntryPB(e api.KVEntry) *pb.KVEntry { return &pb.KVEntry{Key: e.Key, Value: e.Value} }

// KVEntry converts a key-value entry.
func KVEntry(e *pb.KVEntry) api.KVEntry { return api.KVEntry{Key: e.GetKey(), Value: e.GetValue()} }

// KVEntriesPB converts key-value entries.
func KVEntriesPB(es []api.KVEntry) []*pb.KVEntry { return list(es, KVEntryPB) }

// KVEntries converts key-value entries.
func KVEntries(es []*pb.KVEntry) []api.KVEntry { return list(es, KVEntry) }

// EventPB converts an event from a plugin.
func EventPB(e api.Event) *pb.Event {
	out := &pb.Event{Type: e.Type, Subject: e.Subject, Message: e.Message, Attributes: e.Attributes, Time: TS(e.Time)}
	if e.Progress != nil {
		out.Progress = ProgressPB(*e.Progress)
	}
	return out
}

// Event converts an event from a plugin.
func Event(e *pb.Event) api.Event {
	out := api.Event{Type: e.GetType(), Subject: e.GetSubject(), Message: e.GetMessage(), Attributes: e.GetAttributes(), Time: Time(e.GetTime())}
	if e.GetProgress() != nil {
		p := Progress(e.GetProgress())
		out.Progress = &p
	}
	return out
}
