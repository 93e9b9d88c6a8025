package sdk

// Conversions between the SDK's Go types and the protocol's messages, for
// the plugin's side of the wire (requests in, answers out). The host's side
// has its own, in internal/convert, because that package needs these types
// and this package cannot import it back.

import (
	"net/http"
	"time"

	pb "github.com/berthgw/berth/sdk/proto/berth/plugin/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func tsOut(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tsIn(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

var capabilityToPB = map[Capability]pb.Capability{
	CapabilityProvisioner: pb.Capability_CAPABILITY_PROVISIONER,
	CapabilityBilling:     pb.Capability_CAPABILITY_BILLING,
	CapabilityNotifier:    pb.Capability_CAPABILITY_NOTIFIER,
	CapabilityDNS:         pb.Capability_CAPABILITY_DNS,
}

func progressOut(p Progress) *pb.Progress {
	return &pb.Progress{Stage: p.Stage, Message: p.Message, Percent: int32(p.Percent)}
}

func specIn(s *pb.ClusterSpec) ClusterSpec {
	return ClusterSpec{
		Name:              s.GetName(),
		KubernetesVersion: s.GetKubernetesVersion(),
		ControlPlane:      Resources{CPUMillicores: s.GetControlPlane().GetCpuMillicores(), MemoryBytes: s.GetControlPlane().GetMemoryBytes()},
		Workers:           Resources{CPUMillicores: s.GetWorkers().GetCpuMillicores(), MemoryBytes: s.GetWorkers().GetMemoryBytes()},
		Options:           s.GetOptions(),
	}
}

func specOut(s ClusterSpec) *pb.ClusterSpec {
	return &pb.ClusterSpec{
		Name:              s.Name,
		KubernetesVersion: s.KubernetesVersion,
		ControlPlane:      &pb.Resources{CpuMillicores: s.ControlPlane.CPUMillicores, MemoryBytes: s.ControlPlane.MemoryBytes},
		Workers:           &pb.Resources{CpuMillicores: s.Workers.CPUMillicores, MemoryBytes: s.Workers.MemoryBytes},
		Options:           s.Options,
	}
}

var phaseToPB = map[ClusterPhase]pb.ClusterPhase{
	ClusterProvisioning: pb.ClusterPhase_CLUSTER_PHASE_PROVISIONING,
	ClusterReady:        pb.ClusterPhase_CLUSTER_PHASE_READY,
	ClusterUpdating:     pb.ClusterPhase_CLUSTER_PHASE_UPDATING,
	ClusterDeleting:     pb.ClusterPhase_CLUSTER_PHASE_DELETING,
	ClusterFailed:       pb.ClusterPhase_CLUSTER_PHASE_FAILED,
}

func clusterOut(c Cluster) *pb.Cluster {
	return &pb.Cluster{
		Spec:      specOut(c.Spec),
		Phase:     phaseToPB[c.Phase],
		Message:   c.Message,
		CreatedAt: tsOut(c.CreatedAt),
		UpdatedAt: tsOut(c.UpdatedAt),
	}
}

var opKindToPB = map[OperationKind]pb.OperationKind{
	OperationCreate: pb.OperationKind_OPERATION_KIND_CREATE,
	OperationUpdate: pb.OperationKind_OPERATION_KIND_UPDATE,
	OperationDelete: pb.OperationKind_OPERATION_KIND_DELETE,
}

var opStateToPB = map[OperationState]pb.OperationState{
	OperationRunning:   pb.OperationState_OPERATION_STATE_RUNNING,
	OperationSucceeded: pb.OperationState_OPERATION_STATE_SUCCEEDED,
	OperationFailed:    pb.OperationState_OPERATION_STATE_FAILED,
}

func operationOut(o Operation) *pb.Operation {
	return &pb.Operation{
		Id:          o.ID,
		ClusterName: o.ClusterName,
		Kind:        opKindToPB[o.Kind],
		State:       opStateToPB[o.State],
		Progress:    progressOut(o.Progress),
		Error:       o.Error,
		StartedAt:   tsOut(o.StartedAt),
		UpdatedAt:   tsOut(o.UpdatedAt),
	}
}

func planOut(p Plan) *pb.Plan {
	return &pb.Plan{
		Id: p.ID, Name: p.Name, Description: p.Description, PriceMinor: p.PriceMinor,
		Currency: p.Currency, Interval: p.Interval, Limits: p.Limits,
	}
}

func headerIn(hs []*pb.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, kv := range hs {
		h.Add(kv.GetName(), kv.GetValue())
	}
	return h
}

var billingEventToPB = map[BillingEventType]pb.BillingEventType{
	EventOrderPaid:             pb.BillingEventType_BILLING_EVENT_TYPE_ORDER_PAID,
	EventOrderFailed:           pb.BillingEventType_BILLING_EVENT_TYPE_ORDER_FAILED,
	EventSubscriptionRenewed:   pb.BillingEventType_BILLING_EVENT_TYPE_SUBSCRIPTION_RENEWED,
	EventSubscriptionCancelled: pb.BillingEventType_BILLING_EVENT_TYPE_SUBSCRIPTION_CANCELED,
	EventRefunded:              pb.BillingEventType_BILLING_EVENT_TYPE_REFUNDED,
}

func billingEventOut(e BillingEvent) *pb.BillingEvent {
	return &pb.BillingEvent{
		Id: e.ID, Type: billingEventToPB[e.Type], OrderId: e.OrderID, UserId: e.UserID, PlanId: e.PlanID,
		AmountMinor: e.AmountMinor, Currency: e.Currency, OccurredAt: tsOut(e.OccurredAt), Metadata: e.Metadata,
	}
}

func recordIn(r *pb.Record) Record {
	return Record{
		ID: r.GetId(), Name: r.GetName(), Type: r.GetType(), Value: r.GetValue(),
		TTL: time.Duration(r.GetTtlSeconds()) * time.Second, Priority: uint(r.GetPriority()), Weight: uint(r.GetWeight()),
	}
}

func recordOut(r Record) *pb.Record {
	return &pb.Record{
		Id: r.ID, Name: r.Name, Type: r.Type, Value: r.Value,
		TtlSeconds: int64(r.TTL / time.Second), Priority: uint32(r.Priority), Weight: uint32(r.Weight),
	}
}

func recordsIn(rs []*pb.Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		out[i] = recordIn(r)
	}
	return out
}

func recordsOut(rs []Record) *pb.RecordsResponse {
	out := &pb.RecordsResponse{Records: make([]*pb.Record, len(rs))}
	for i, r := range rs {
		out.Records[i] = recordOut(r)
	}
	return out
}

func eventOut(e Event) *pb.Event {
	out := &pb.Event{Type: e.Type, Subject: e.Subject, Message: e.Message, Attributes: e.Attributes, Time: tsOut(e.Time)}
	if e.Progress != nil {
		out.Progress = progressOut(*e.Progress)
	}
	return out
}
