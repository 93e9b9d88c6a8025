// Package convert turns protocol messages into the SDK's Go types and back
// for the host's side of the wire (requests out, answers in, and the host
// services). The plugin's side has its own in package sdk (wire.go).
package convert

import (
	"net/http"
	"sort"
	"time"

	"github.com/berthgw/berth/sdk"
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

var capabilities = map[pb.Capability]sdk.Capability{
	pb.Capability_CAPABILITY_PROVISIONER: sdk.CapabilityProvisioner,
	pb.Capability_CAPABILITY_BILLING:     sdk.CapabilityBilling,
	pb.Capability_CAPABILITY_NOTIFIER:    sdk.CapabilityNotifier,
	pb.Capability_CAPABILITY_DNS:         sdk.CapabilityDNS,
}

// Info converts GetInfo's answer. Unknown capabilities (from a newer
// plugin) are dropped: this host cannot use them.
func Info(r *pb.GetInfoResponse) sdk.Info {
	info := sdk.Info{Name: r.GetName(), Version: r.GetVersion(), ConfigSchema: r.GetConfigSchema(), SDKVersion: r.GetSdkVersion()}
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

// Progress converts progress.
func Progress(p *pb.Progress) sdk.Progress {
	return sdk.Progress{Stage: p.GetStage(), Message: p.GetMessage(), Percent: int(p.GetPercent())}
}

// ProgressPB converts progress.
func ProgressPB(p sdk.Progress) *pb.Progress {
	return &pb.Progress{Stage: p.Stage, Message: p.Message, Percent: int32(p.Percent)}
}

// SpecPB converts a cluster spec.
func SpecPB(s sdk.ClusterSpec) *pb.ClusterSpec {
	return &pb.ClusterSpec{
		Name:              s.Name,
		KubernetesVersion: s.KubernetesVersion,
		ControlPlane:      &pb.Resources{CpuMillicores: s.ControlPlane.CPUMillicores, MemoryBytes: s.ControlPlane.MemoryBytes},
		Workers:           &pb.Resources{CpuMillicores: s.Workers.CPUMillicores, MemoryBytes: s.Workers.MemoryBytes},
		Options:           s.Options,
	}
}

// Spec converts a cluster spec.
func Spec(s *pb.ClusterSpec) sdk.ClusterSpec {
	return sdk.ClusterSpec{
		Name:              s.GetName(),
		KubernetesVersion: s.GetKubernetesVersion(),
		ControlPlane:      sdk.Resources{CPUMillicores: s.GetControlPlane().GetCpuMillicores(), MemoryBytes: s.GetControlPlane().GetMemoryBytes()},
		Workers:           sdk.Resources{CPUMillicores: s.GetWorkers().GetCpuMillicores(), MemoryBytes: s.GetWorkers().GetMemoryBytes()},
		Options:           s.GetOptions(),
	}
}

var phases = map[pb.ClusterPhase]sdk.ClusterPhase{
	pb.ClusterPhase_CLUSTER_PHASE_PROVISIONING: sdk.ClusterProvisioning,
	pb.ClusterPhase_CLUSTER_PHASE_READY:        sdk.ClusterReady,
	pb.ClusterPhase_CLUSTER_PHASE_UPDATING:     sdk.ClusterUpdating,
	pb.ClusterPhase_CLUSTER_PHASE_DELETING:     sdk.ClusterDeleting,
	pb.ClusterPhase_CLUSTER_PHASE_FAILED:       sdk.ClusterFailed,
}

// Cluster converts a cluster.
func Cluster(c *pb.Cluster) sdk.Cluster {
	return sdk.Cluster{
		Spec:      Spec(c.GetSpec()),
		Phase:     phases[c.GetPhase()],
		Message:   c.GetMessage(),
		CreatedAt: Time(c.GetCreatedAt()),
		UpdatedAt: Time(c.GetUpdatedAt()),
	}
}

var opKinds = map[pb.OperationKind]sdk.OperationKind{
	pb.OperationKind_OPERATION_KIND_CREATE: sdk.OperationCreate,
	pb.OperationKind_OPERATION_KIND_UPDATE: sdk.OperationUpdate,
	pb.OperationKind_OPERATION_KIND_DELETE: sdk.OperationDelete,
}

var opStates = map[pb.OperationState]sdk.OperationState{
	pb.OperationState_OPERATION_STATE_RUNNING:   sdk.OperationRunning,
	pb.OperationState_OPERATION_STATE_SUCCEEDED: sdk.OperationSucceeded,
	pb.OperationState_OPERATION_STATE_FAILED:    sdk.OperationFailed,
}

// Operation converts an operation.
func Operation(o *pb.Operation) sdk.Operation {
	return sdk.Operation{
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

// Plan converts a plan.
func Plan(p *pb.Plan) sdk.Plan {
	return sdk.Plan{
		ID: p.GetId(), Name: p.GetName(), Description: p.GetDescription(), PriceMinor: p.GetPriceMinor(),
		Currency: p.GetCurrency(), Interval: p.GetInterval(), Limits: p.GetLimits(),
	}
}

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

var billingEvents = map[pb.BillingEventType]sdk.BillingEventType{
	pb.BillingEventType_BILLING_EVENT_TYPE_ORDER_PAID:            sdk.EventOrderPaid,
	pb.BillingEventType_BILLING_EVENT_TYPE_ORDER_FAILED:          sdk.EventOrderFailed,
	pb.BillingEventType_BILLING_EVENT_TYPE_SUBSCRIPTION_RENEWED:  sdk.EventSubscriptionRenewed,
	pb.BillingEventType_BILLING_EVENT_TYPE_SUBSCRIPTION_CANCELED: sdk.EventSubscriptionCancelled,
	pb.BillingEventType_BILLING_EVENT_TYPE_REFUNDED:              sdk.EventRefunded,
}

// BillingEvent converts a billing event.
func BillingEvent(e *pb.BillingEvent) sdk.BillingEvent {
	return sdk.BillingEvent{
		ID: e.GetId(), Type: billingEvents[e.GetType()], OrderID: e.GetOrderId(), UserID: e.GetUserId(), PlanID: e.GetPlanId(),
		AmountMinor: e.GetAmountMinor(), Currency: e.GetCurrency(), OccurredAt: Time(e.GetOccurredAt()), Metadata: e.GetMetadata(),
	}
}

// RecordPB converts a DNS record.
func RecordPB(r sdk.Record) *pb.Record {
	return &pb.Record{
		Id: r.ID, Name: r.Name, Type: r.Type, Value: r.Value,
		TtlSeconds: int64(r.TTL / time.Second), Priority: uint32(r.Priority), Weight: uint32(r.Weight),
	}
}

// Record converts a DNS record.
func Record(r *pb.Record) sdk.Record {
	return sdk.Record{
		ID: r.GetId(), Name: r.GetName(), Type: r.GetType(), Value: r.GetValue(),
		TTL: time.Duration(r.GetTtlSeconds()) * time.Second, Priority: uint(r.GetPriority()), Weight: uint(r.GetWeight()),
	}
}

// RecordsPB converts DNS records.
func RecordsPB(rs []sdk.Record) []*pb.Record {
	out := make([]*pb.Record, len(rs))
	for i, r := range rs {
		out[i] = RecordPB(r)
	}
	return out
}

// Records converts DNS records.
func Records(rs []*pb.Record) []sdk.Record {
	out := make([]sdk.Record, len(rs))
	for i, r := range rs {
		out[i] = Record(r)
	}
	return out
}

// Event converts an event from a plugin.
func Event(e *pb.Event) sdk.Event {
	out := sdk.Event{Type: e.GetType(), Subject: e.GetSubject(), Message: e.GetMessage(), Attributes: e.GetAttributes(), Time: Time(e.GetTime())}
	if e.GetProgress() != nil {
		p := Progress(e.GetProgress())
		out.Progress = &p
	}
	return out
}
