package sdk

// The gRPC services on the plugin's side: they decode requests, call the
// plugin's Go implementation, and encode its answers. Mutating calls go
// through the idempotency cache; errors are mapped to status codes by the
// interceptors of internal/rpc.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk/internal/convert"
	"github.com/berthgw/berth/sdk/internal/idempotency"
	"github.com/berthgw/berth/sdk/internal/rpc"
	pb "github.com/berthgw/berth/sdk/proto/berth/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// watchPollInterval is how often WatchOperation polls GetOperation for a
// Provisioner that does not implement OperationWatcher.
var watchPollInterval = 500 * time.Millisecond

type server struct {
	opts     Options
	schema   []byte
	versions []int
	logger   hclog.Logger
	idem     *idempotency.Cache

	mu       sync.Mutex
	broker   *plugin.GRPCBroker
	brokerID uint32
	hostConn *grpc.ClientConn
	host     Host
}

func newServer(opts Options, schema []byte, versions []int, logger hclog.Logger) *server {
	return &server{
		opts:     opts,
		schema:   schema,
		versions: versions,
		logger:   logger,
		idem:     idempotency.New(idempotency.DefaultTTL, idempotency.DefaultMaxEntries),
		host:     Host{KV: noHost{}, Events: noHost{}},
	}
}

// once runs fn at most once per idempotency key and request.
func once[R proto.Message](ctx context.Context, s *server, method, key string, req proto.Message, fn func() (R, error)) (R, error) {
	resp, err := s.idem.Do(ctx, method, key, req, func() (proto.Message, error) { return fn() })
	if err != nil {
		var zero R
		return zero, err
	}
	return resp.(R), nil
}

func required(field, value string) error {
	if value == "" {
		return fmt.Errorf("%s is required: %w", field, ErrInvalidArgument)
	}
	return nil
}

// grpcPlugin is the plugin side of one entry in the go-plugin PluginSet:
// it registers a service on the plugin's gRPC server.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	register func(*plugin.GRPCBroker, *grpc.Server)
}

func (p *grpcPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	p.register(b, s)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, fmt.Errorf("sdk: the plugin's side of the set cannot dispense clients; use package pluginclient")
}

// pluginSet returns the services this plugin serves, keyed by dispense name.
func (s *server) pluginSet() plugin.PluginSet {
	set := plugin.PluginSet{
		PluginName: &grpcPlugin{register: func(b *plugin.GRPCBroker, g *grpc.Server) {
			s.mu.Lock()
			s.broker = b
			s.mu.Unlock()
			pb.RegisterPluginServer(g, &baseServer{s: s})
		}},
	}
	if p := s.opts.Provisioner; p != nil {
		set[ProvisionerPluginName] = &grpcPlugin{register: func(_ *plugin.GRPCBroker, g *grpc.Server) {
			pb.RegisterProvisionerServer(g, &provisionerServer{s: s, p: p})
		}}
	}
	if b := s.opts.Billing; b != nil {
		set[BillingPluginName] = &grpcPlugin{register: func(_ *plugin.GRPCBroker, g *grpc.Server) {
			pb.RegisterBillingServer(g, &billingServer{s: s, b: b})
		}}
	}
	if n := s.opts.Notifier; n != nil {
		set[NotifierPluginName] = &grpcPlugin{register: func(_ *plugin.GRPCBroker, g *grpc.Server) {
			pb.RegisterNotifierServer(g, &notifierServer{s: s, n: n})
		}}
	}
	if d := s.opts.DNS; d != nil {
		set[DNSPluginName] = &grpcPlugin{register: func(_ *plugin.GRPCBroker, g *grpc.Server) {
			pb.RegisterDNSProviderServer(g, &dnsServer{s: s, d: d})
		}}
	}
	return set
}

func (s *server) capabilities() []Capability {
	var caps []Capability
	if s.opts.Provisioner != nil {
		caps = append(caps, CapabilityProvisioner)
	}
	if s.opts.Billing != nil {
		caps = append(caps, CapabilityBilling)
	}
	if s.opts.Notifier != nil {
		caps = append(caps, CapabilityNotifier)
	}
	if s.opts.DNS != nil {
		caps = append(caps, CapabilityDNS)
	}
	return caps
}

// hostFor returns the Host for a broker id from Configure, dialling the
// host's services the first time an id is seen.
func (s *server) hostFor(id uint32) (Host, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 {
		return Host{KV: noHost{}, Events: noHost{}}, nil
	}
	if id == s.brokerID && s.hostConn != nil {
		return s.host, nil
	}
	if s.broker == nil {
		return Host{}, fmt.Errorf("host offered services on broker id %d but the plugin has no broker: %w", id, ErrFailedPrecondition)
	}
	conn, err := s.broker.DialWithOptions(id, rpc.DialOptions(0)...)
	if err != nil {
		return Host{}, fmt.Errorf("dial host services on broker id %d: %w", id, err)
	}
	if s.hostConn != nil {
		_ = s.hostConn.Close()
	}
	s.brokerID, s.hostConn = id, conn
	s.host = Host{KV: &kvClient{c: pb.NewHostKVClient(conn)}, Events: &eventsClient{c: pb.NewHostEventsClient(conn)}}
	return s.host, nil
}

type baseServer struct {
	pb.UnimplementedPluginServer
	s *server
}

func (b *baseServer) GetInfo(context.Context, *pb.GetInfoRequest) (*pb.GetInfoResponse, error) {
	return convert.InfoPB(Info{
		Name:             b.s.opts.Name,
		Version:          b.s.opts.Version,
		ProtocolVersions: b.s.versions,
		Capabilities:     b.s.capabilities(),
		ConfigSchema:     b.s.schema,
		SDKVersion:       SDKVersion,
	}), nil
}

func (b *baseServer) ValidateConfig(ctx context.Context, req *pb.ValidateConfigRequest) (*pb.ValidateConfigResponse, error) {
	if err := b.s.validateConfig(ctx, req.GetConfig()); err != nil {
		return nil, err
	}
	return &pb.ValidateConfigResponse{}, nil
}

func (s *server) validateConfig(ctx context.Context, raw []byte) error {
	if s.opts.Config != nil {
		return s.opts.Config.ValidateConfig(ctx, raw)
	}
	// A plugin without configuration accepts only an empty one: a typo'd
	// key in the operator's file must not pass silently.
	_, err := DecodeConfig[struct{}](raw)
	if err != nil {
		return fmt.Errorf("plugin %q takes no configuration: %w", s.opts.Name, err)
	}
	return nil
}

func (b *baseServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return once(ctx, b.s, "Plugin.Configure", req.GetIdempotencyKey(), req, func() (*pb.ConfigureResponse, error) {
		host, err := b.s.hostFor(req.GetHostBrokerId())
		if err != nil {
			return nil, err
		}
		if b.s.opts.Config == nil {
			if err := b.s.validateConfig(ctx, req.GetConfig()); err != nil {
				return nil, err
			}
			return &pb.ConfigureResponse{}, nil
		}
		if err := b.s.opts.Config.Configure(ctx, req.GetConfig(), host); err != nil {
			return nil, err
		}
		return &pb.ConfigureResponse{}, nil
	})
}

func (b *baseServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	if b.s.opts.Health == nil {
		return &pb.HealthResponse{Status: pb.HealthResponse_STATUS_SERVING}, nil
	}
	return convert.HealthPB(b.s.opts.Health(ctx)), nil
}

type provisionerServer struct {
	pb.UnimplementedProvisionerServer
	s *server
	p Provisioner
}

func (x *provisionerServer) CreateCluster(ctx context.Context, req *pb.CreateClusterRequest) (*pb.Operation, error) {
	if err := required("spec.name", req.GetSpec().GetName()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Provisioner.CreateCluster", req.GetIdempotencyKey(), req, func() (*pb.Operation, error) {
		op, err := x.p.CreateCluster(ctx, convert.CreateClusterRequest(req))
		if err != nil {
			return nil, err
		}
		return convert.OperationPB(op), nil
	})
}

func (x *provisionerServer) UpdateCluster(ctx context.Context, req *pb.UpdateClusterRequest) (*pb.Operation, error) {
	if err := required("spec.name", req.GetSpec().GetName()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Provisioner.UpdateCluster", req.GetIdempotencyKey(), req, func() (*pb.Operation, error) {
		op, err := x.p.UpdateCluster(ctx, convert.UpdateClusterRequest(req))
		if err != nil {
			return nil, err
		}
		return convert.OperationPB(op), nil
	})
}

func (x *provisionerServer) GetCluster(ctx context.Context, req *pb.GetClusterRequest) (*pb.Cluster, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	c, err := x.p.GetCluster(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return convert.ClusterPB(c), nil
}

func (x *provisionerServer) ListClusters(ctx context.Context, _ *pb.ListClustersRequest) (*pb.ListClustersResponse, error) {
	cs, err := x.p.ListClusters(ctx)
	if err != nil {
		return nil, err
	}
	return convert.ClustersPB(cs), nil
}

func (x *provisionerServer) DeleteCluster(ctx context.Context, req *pb.DeleteClusterRequest) (*pb.Operation, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Provisioner.DeleteCluster", req.GetIdempotencyKey(), req, func() (*pb.Operation, error) {
		op, err := x.p.DeleteCluster(ctx, convert.DeleteClusterRequest(req))
		if err != nil {
			return nil, err
		}
		return convert.OperationPB(op), nil
	})
}

func (x *provisionerServer) GetOperation(ctx context.Context, req *pb.GetOperationRequest) (*pb.Operation, error) {
	if err := required("id", req.GetId()); err != nil {
		return nil, err
	}
	op, err := x.p.GetOperation(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return convert.OperationPB(op), nil
}

func (x *provisionerServer) WatchOperation(req *pb.WatchOperationRequest, stream grpc.ServerStreamingServer[pb.Operation]) error {
	if err := required("id", req.GetId()); err != nil {
		return err
	}
	ctx := stream.Context()
	if w, ok := x.p.(OperationWatcher); ok {
		return w.WatchOperation(ctx, req.GetId(), func(op Operation) error {
			return stream.Send(convert.OperationPB(op))
		})
	}
	// Poll for provisioners that cannot push, sending only changes.
	ticker := time.NewTicker(watchPollInterval)
	defer ticker.Stop()
	var last *pb.Operation
	for {
		op, err := x.p.GetOperation(ctx, req.GetId())
		if err != nil {
			return err
		}
		if out := convert.OperationPB(op); last == nil || !proto.Equal(last, out) {
			if err := stream.Send(out); err != nil {
				return err
			}
			last = out
		}
		if op.Done() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func (x *provisionerServer) GetConnection(ctx context.Context, req *pb.GetConnectionRequest) (*pb.ClusterConnection, error) {
	if err := required("name", req.GetName()); err != nil {
		return nil, err
	}
	c, err := x.p.GetConnection(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return convert.ConnectionPB(c), nil
}

func (x *provisionerServer) GetJoinMaterial(ctx context.Context, req *pb.GetJoinMaterialRequest) (*pb.JoinMaterial, error) {
	j, ok := x.p.(JoinMaterialProvider)
	if !ok {
		return nil, fmt.Errorf("provisioner %q does not provide node join material: %w", x.s.opts.Name, ErrUnimplemented)
	}
	if err := required("cluster_name", req.GetClusterName()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Provisioner.GetJoinMaterial", req.GetIdempotencyKey(), req, func() (*pb.JoinMaterial, error) {
		m, err := j.GetJoinMaterial(ctx, convert.JoinMaterialRequest(req))
		if err != nil {
			return nil, err
		}
		return convert.JoinMaterialPB(m), nil
	})
}

type billingServer struct {
	pb.UnimplementedBillingServer
	s *server
	b Billing
}

func (x *billingServer) ListSettings(ctx context.Context, _ *pb.ListBillingSettingsRequest) (*pb.ListBillingSettingsResponse, error) {
	sts, err := x.b.Settings(ctx)
	if err != nil {
		return nil, err
	}
	return convert.BillingSettingsPB(sts), nil
}

func (x *billingServer) CheckSettings(ctx context.Context, req *pb.CheckBillingSettingsRequest) (*pb.CheckBillingSettingsResponse, error) {
	if err := x.b.CheckSettings(ctx, req.GetSettings()); err != nil {
		return nil, err
	}
	return &pb.CheckBillingSettingsResponse{}, nil
}

// checkPlan holds a plan to what every provider needs: an id to find the
// order's plan again, a name to show, a price that is not negative, a
// lower-case ISO 4217 currency and a known interval.
func checkPlan(p *pb.Plan) error {
	if err := required("plan.id", p.GetId()); err != nil {
		return err
	}
	if err := required("plan.name", p.GetName()); err != nil {
		return err
	}
	if p.GetPriceMinor() < 0 {
		return fmt.Errorf("plan.price_minor %d is negative: %w", p.GetPriceMinor(), ErrInvalidArgument)
	}
	if c := p.GetCurrency(); len(c) != 3 || strings.Trim(c, "abcdefghijklmnopqrstuvwxyz") != "" {
		return fmt.Errorf("plan.currency %q is not a lower-case ISO 4217 code such as \"eur\": %w", c, ErrInvalidArgument)
	}
	switch p.GetInterval() {
	case IntervalOnce, IntervalMonth, IntervalYear:
	default:
		return fmt.Errorf("plan.interval %q is not %q, %q or %q: %w", p.GetInterval(), IntervalOnce, IntervalMonth, IntervalYear, ErrInvalidArgument)
	}
	return nil
}

func (x *billingServer) CreateCheckout(ctx context.Context, req *pb.CreateCheckoutRequest) (*pb.Checkout, error) {
	if err := required("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	if err := required("success_url", req.GetSuccessUrl()); err != nil {
		return nil, err
	}
	if err := checkPlan(req.GetPlan()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Billing.CreateCheckout", req.GetIdempotencyKey(), req, func() (*pb.Checkout, error) {
		c, err := x.b.CreateCheckout(ctx, convert.CheckoutRequest(req))
		if err != nil {
			return nil, err
		}
		return convert.CheckoutPB(c), nil
	})
}

func (x *billingServer) CreatePortal(ctx context.Context, req *pb.CreatePortalRequest) (*pb.Portal, error) {
	if err := required("customer_id", req.GetCustomerId()); err != nil {
		return nil, err
	}
	if err := required("return_url", req.GetReturnUrl()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Billing.CreatePortal", req.GetIdempotencyKey(), req, func() (*pb.Portal, error) {
		p, err := x.b.CreatePortal(ctx, convert.PortalRequest(req))
		if err != nil {
			return nil, err
		}
		return convert.PortalPB(p), nil
	})
}

func (x *billingServer) ListInvoices(ctx context.Context, req *pb.ListInvoicesRequest) (*pb.ListInvoicesResponse, error) {
	if err := required("customer_id", req.GetCustomerId()); err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 {
		return nil, fmt.Errorf("limit %d is negative: %w", req.GetLimit(), ErrInvalidArgument)
	}
	invoices, err := x.b.ListInvoices(ctx, convert.InvoicesRequest(req))
	if err != nil {
		return nil, err
	}
	return convert.InvoicesPB(invoices), nil
}

// HandleWebhook is not cached by idempotency key: it has no side effect,
// and the gateway drops replayed events by their id.
func (x *billingServer) HandleWebhook(ctx context.Context, req *pb.HandleWebhookRequest) (*pb.HandleWebhookResponse, error) {
	events, err := x.b.HandleWebhook(ctx, convert.WebhookRequest(req))
	if err != nil {
		return nil, err
	}
	return convert.BillingEventsPB(events), nil
}

func (x *billingServer) CancelSubscription(ctx context.Context, req *pb.CancelSubscriptionRequest) (*pb.CancelSubscriptionResponse, error) {
	if err := required("subscription_id", req.GetSubscriptionId()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Billing.CancelSubscription", req.GetIdempotencyKey(), req, func() (*pb.CancelSubscriptionResponse, error) {
		if err := x.b.CancelSubscription(ctx, convert.CancelRequest(req)); err != nil {
			return nil, err
		}
		return &pb.CancelSubscriptionResponse{}, nil
	})
}

type notifierServer struct {
	pb.UnimplementedNotifierServer
	s *server
	n Notifier
}

func (x *notifierServer) ListChannels(ctx context.Context, _ *pb.ListChannelsRequest) (*pb.ListChannelsResponse, error) {
	chans, err := x.n.ListChannels(ctx)
	if err != nil {
		return nil, err
	}
	return convert.ChannelsPB(chans), nil
}

func (x *notifierServer) Send(ctx context.Context, req *pb.SendRequest) (*pb.Delivery, error) {
	if err := required("channel", req.GetChannel()); err != nil {
		return nil, err
	}
	return once(ctx, x.s, "Notifier.Send", req.GetIdempotencyKey(), req, func() (*pb.Delivery, error) {
		d, err := x.n.Send(ctx, convert.Message(req))
		if err != nil {
			return nil, err
		}
		return convert.DeliveryPB(d), nil
	})
}

func (x *notifierServer) CheckChannel(ctx context.Context, req *pb.CheckChannelRequest) (*pb.CheckChannelResponse, error) {
	if err := required("channel", req.GetChannel()); err != nil {
		return nil, err
	}
	c, ok := x.n.(ChannelChecker)
	if !ok {
		return nil, fmt.Errorf("CheckChannel: %w", ErrUnimplemented)
	}
	if err := c.CheckChannel(ctx, convert.ChannelCheck(req)); err != nil {
		return nil, err
	}
	return &pb.CheckChannelResponse{}, nil
}

type dnsServer struct {
	pb.UnimplementedDNSProviderServer
	s *server
	d DNSProvider
}

func (x *dnsServer) GetRecords(ctx context.Context, req *pb.GetRecordsRequest) (*pb.RecordsResponse, error) {
	if err := required("zone", req.GetZone()); err != nil {
		return nil, err
	}
	recs, err := x.d.GetRecords(ctx, req.GetZone())
	if err != nil {
		return nil, err
	}
	return convert.RecordsPB(recs), nil
}

func (x *dnsServer) change(ctx context.Context, method string, req *pb.ChangeRecordsRequest, fn func(context.Context, RecordsChange) ([]Record, error)) (*pb.RecordsResponse, error) {
	if err := required("zone", req.GetZone()); err != nil {
		return nil, err
	}
	for i, r := range req.GetRecords() {
		if r.GetName() == "" || r.GetType() == "" {
			return nil, fmt.Errorf("records[%d]: name and type are required: %w", i, ErrInvalidArgument)
		}
	}
	return once(ctx, x.s, method, req.GetIdempotencyKey(), req, func() (*pb.RecordsResponse, error) {
		recs, err := fn(ctx, convert.RecordsChange(req))
		if err != nil {
			return nil, err
		}
		return convert.RecordsPB(recs), nil
	})
}

func (x *dnsServer) AppendRecords(ctx context.Context, req *pb.ChangeRecordsRequest) (*pb.RecordsResponse, error) {
	return x.change(ctx, "DNSProvider.AppendRecords", req, x.d.AppendRecords)
}

func (x *dnsServer) SetRecords(ctx context.Context, req *pb.ChangeRecordsRequest) (*pb.RecordsResponse, error) {
	return x.change(ctx, "DNSProvider.SetRecords", req, x.d.SetRecords)
}

func (x *dnsServer) DeleteRecords(ctx context.Context, req *pb.ChangeRecordsRequest) (*pb.RecordsResponse, error) {
	return x.change(ctx, "DNSProvider.DeleteRecords", req, x.d.DeleteRecords)
}

// kvClient is the plugin's view of the host's HostKV service.
type kvClient struct{ c pb.HostKVClient }

func (k *kvClient) Get(ctx context.Context, key string) ([]byte, error) {
	resp, err := k.c.Get(ctx, &pb.KVGetRequest{Key: key})
	if err != nil {
		return nil, fmt.Errorf("host KV get %q: %w", key, err)
	}
	return resp.GetValue(), nil
}

func (k *kvClient) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	var secs int64
	if ttl > 0 {
		// Round up: a TTL must never be shortened to zero (no expiry).
		secs = int64((ttl + time.Second - 1) / time.Second)
	}
	if _, err := k.c.Put(ctx, &pb.KVPutRequest{Key: key, Value: value, TtlSeconds: secs}); err != nil {
		return fmt.Errorf("host KV put %q: %w", key, err)
	}
	return nil
}

func (k *kvClient) Delete(ctx context.Context, key string) error {
	if _, err := k.c.Delete(ctx, &pb.KVDeleteRequest{Key: key}); err != nil {
		return fmt.Errorf("host KV delete %q: %w", key, err)
	}
	return nil
}

func (k *kvClient) List(ctx context.Context, prefix string) ([]KVEntry, error) {
	var out []KVEntry
	after := ""
	for {
		resp, err := k.c.List(ctx, &pb.KVListRequest{Prefix: prefix, StartAfter: after})
		if err != nil {
			return nil, fmt.Errorf("host KV list %q: %w", prefix, err)
		}
		out = append(out, convert.KVEntries(resp.GetEntries())...)
		if !resp.GetMore() || len(resp.GetEntries()) == 0 {
			return out, nil
		}
		after = resp.GetEntries()[len(resp.GetEntries())-1].GetKey()
	}
}

// eventsClient is the plugin's view of the host's HostEvents service.
type eventsClient struct{ c pb.HostEventsClient }

func (e *eventsClient) Emit(ctx context.Context, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if _, err := e.c.Emit(ctx, &pb.EmitRequest{Event: convert.EventPB(ev)}); err != nil {
		return fmt.Errorf("host events emit %q: %w", ev.Type, err)
	}
	return nil
}

// servedVersions lists the protocol versions in a versioned plugin map.
func servedVersions(m map[int]plugin.PluginSet) []int {
	var vs []int
	for v := range m {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}
