package pluginclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
	"github.com/berthgw/berth/sdk/internal/convert"
	pb "github.com/berthgw/berth/sdk/proto/berth/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Base is the service every plugin serves.
type Base interface {
	// GetInfo describes the plugin.
	GetInfo(ctx context.Context) (sdk.Info, error)
	// ValidateConfig checks a JSON configuration without applying it; an
	// invalid one is an error matching sdk.ErrInvalidConfig.
	ValidateConfig(ctx context.Context, config []byte) error
	// Configure applies a JSON configuration, first offering the plugin
	// the host services it was set up with (see SetOptions.Host).
	Configure(ctx context.Context, config []byte) error
	// Health asks the plugin how it is.
	Health(ctx context.Context) (sdk.Health, error)
}

// Provisioner is a provisioner plugin as the host sees it. WatchOperation
// always works (the SDK polls for plugins that cannot push);
// GetJoinMaterial returns sdk.ErrUnimplemented for plugins without node
// joins.
type Provisioner interface {
	sdk.Provisioner
	sdk.OperationWatcher
	sdk.JoinMaterialProvider
}

// Billing is a billing plugin as the host sees it.
type Billing interface {
	sdk.Billing
}

// Notifier is a notifier plugin as the host sees it.
type Notifier interface {
	sdk.Notifier
	// CheckChannel is sdk.ErrUnimplemented when the plugin has no checker.
	sdk.ChannelChecker
}

// DNSProvider is a DNS plugin as the host sees it.
type DNSProvider interface {
	sdk.DNSProvider
}

// NewIdempotencyKey returns a random key. The clients fill in one for a
// mutating call whose request has none, so every call carries a key; a
// host that retries calls must set its own, stable, key to make retries
// safe.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func keyOr(k string) string {
	if k == "" {
		return NewIdempotencyKey()
	}
	return k
}

type baseClient struct {
	c        pb.PluginClient
	broker   *plugin.GRPCBroker
	services host.Services
	logger   hclog.Logger

	once     sync.Once
	brokerID uint32
}

func (b *baseClient) GetInfo(ctx context.Context) (sdk.Info, error) {
	resp, err := b.c.GetInfo(ctx, &pb.GetInfoRequest{})
	if err != nil {
		return sdk.Info{}, fmt.Errorf("GetInfo: %w", err)
	}
	return convert.Info(resp), nil
}

func (b *baseClient) ValidateConfig(ctx context.Context, config []byte) error {
	if _, err := b.c.ValidateConfig(ctx, &pb.ValidateConfigRequest{Config: config}); err != nil {
		return fmt.Errorf("ValidateConfig: %w", err)
	}
	return nil
}

func (b *baseClient) Configure(ctx context.Context, config []byte) error {
	// The services are registered on the broker once, at the first
	// Configure, so that the plugin dials them right away: go-plugin drops
	// a broker offer nobody picks up within 5 seconds.
	if !b.services.Empty() && b.broker != nil {
		b.once.Do(func() { b.brokerID = host.Register(b.broker, b.services, b.logger) })
	}
	req := &pb.ConfigureRequest{IdempotencyKey: NewIdempotencyKey(), Config: config, HostBrokerId: b.brokerID}
	if _, err := b.c.Configure(ctx, req); err != nil {
		return fmt.Errorf("Configure: %w", err)
	}
	return nil
}

func (b *baseClient) Health(ctx context.Context) (sdk.Health, error) {
	resp, err := b.c.Health(ctx, &pb.HealthRequest{})
	if err != nil {
		return sdk.Health{}, fmt.Errorf("Health: %w", err)
	}
	return convert.Health(resp), nil
}

type provisionerClient struct{ c pb.ProvisionerClient }

func (p *provisionerClient) CreateCluster(ctx context.Context, req sdk.CreateClusterRequest) (sdk.Operation, error) {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	op, err := p.c.CreateCluster(ctx, convert.CreateClusterRequestPB(req))
	if err != nil {
		return sdk.Operation{}, fmt.Errorf("CreateCluster %q: %w", req.Spec.Name, err)
	}
	return convert.Operation(op), nil
}

func (p *provisionerClient) UpdateCluster(ctx context.Context, req sdk.UpdateClusterRequest) (sdk.Operation, error) {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	op, err := p.c.UpdateCluster(ctx, convert.UpdateClusterRequestPB(req))
	if err != nil {
		return sdk.Operation{}, fmt.Errorf("UpdateCluster %q: %w", req.Spec.Name, err)
	}
	return convert.Operation(op), nil
}

func (p *provisionerClient) GetCluster(ctx context.Context, name string) (sdk.Cluster, error) {
	c, err := p.c.GetCluster(ctx, &pb.GetClusterRequest{Name: name})
	if err != nil {
		return sdk.Cluster{}, fmt.Errorf("GetCluster %q: %w", name, err)
	}
	return convert.Cluster(c), nil
}

func (p *provisionerClient) ListClusters(ctx context.Context) ([]sdk.Cluster, error) {
	resp, err := p.c.ListClusters(ctx, &pb.ListClustersRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListClusters: %w", err)
	}
	return convert.Clusters(resp), nil
}

func (p *provisionerClient) DeleteCluster(ctx context.Context, req sdk.DeleteClusterRequest) (sdk.Operation, error) {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	op, err := p.c.DeleteCluster(ctx, convert.DeleteClusterRequestPB(req))
	if err != nil {
		return sdk.Operation{}, fmt.Errorf("DeleteCluster %q: %w", req.Name, err)
	}
	return convert.Operation(op), nil
}

func (p *provisionerClient) GetOperation(ctx context.Context, id string) (sdk.Operation, error) {
	op, err := p.c.GetOperation(ctx, &pb.GetOperationRequest{Id: id})
	if err != nil {
		return sdk.Operation{}, fmt.Errorf("GetOperation %q: %w", id, err)
	}
	return convert.Operation(op), nil
}

// WatchOperation calls send with each change of the operation until it is
// done, ctx ends, or send fails. The stream has no default deadline: bound
// it with ctx.
func (p *provisionerClient) WatchOperation(ctx context.Context, id string, send func(sdk.Operation) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := p.c.WatchOperation(ctx, &pb.WatchOperationRequest{Id: id})
	if err != nil {
		return fmt.Errorf("WatchOperation %q: %w", id, err)
	}
	for {
		op, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("WatchOperation %q: %w", id, err)
		}
		if err := send(convert.Operation(op)); err != nil {
			return err
		}
	}
}

func (p *provisionerClient) GetConnection(ctx context.Context, name string) (sdk.Connection, error) {
	c, err := p.c.GetConnection(ctx, &pb.GetConnectionRequest{Name: name})
	if err != nil {
		return sdk.Connection{}, fmt.Errorf("GetConnection %q: %w", name, err)
	}
	return convert.Connection(c), nil
}

func (p *provisionerClient) GetJoinMaterial(ctx context.Context, req sdk.JoinMaterialRequest) (sdk.JoinMaterial, error) {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	m, err := p.c.GetJoinMaterial(ctx, convert.JoinMaterialRequestPB(req))
	if err != nil {
		return sdk.JoinMaterial{}, fmt.Errorf("GetJoinMaterial %q: %w", req.ClusterName, err)
	}
	return convert.JoinMaterial(m), nil
}

type billingClient struct{ c pb.BillingClient }

func (b *billingClient) Settings(ctx context.Context) ([]sdk.Setting, error) {
	resp, err := b.c.ListSettings(ctx, &pb.ListBillingSettingsRequest{})
	if err != nil {
		return nil, fmt.Errorf("billing Settings: %w", err)
	}
	return convert.BillingSettings(resp), nil
}

func (b *billingClient) CheckSettings(ctx context.Context, settings map[string]string) error {
	if _, err := b.c.CheckSettings(ctx, &pb.CheckBillingSettingsRequest{Settings: settings}); err != nil {
		return fmt.Errorf("billing CheckSettings: %w", err)
	}
	return nil
}

func (b *billingClient) CreateCheckout(ctx context.Context, req sdk.CheckoutRequest) (sdk.Checkout, error) {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	c, err := b.c.CreateCheckout(ctx, convert.CheckoutRequestPB(req))
	if err != nil {
		return sdk.Checkout{}, fmt.Errorf("CreateCheckout for order %q: %w", req.OrderID, err)
	}
	return convert.Checkout(c), nil
}

func (b *billingClient) CreatePortal(ctx context.Context, req sdk.PortalRequest) (sdk.Portal, error) {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	p, err := b.c.CreatePortal(ctx, convert.PortalRequestPB(req))
	if err != nil {
		return sdk.Portal{}, fmt.Errorf("CreatePortal for customer %q: %w", req.CustomerID, err)
	}
	return convert.Portal(p), nil
}

func (b *billingClient) ListInvoices(ctx context.Context, req sdk.InvoicesRequest) ([]sdk.Invoice, error) {
	resp, err := b.c.ListInvoices(ctx, convert.InvoicesRequestPB(req))
	if err != nil {
		return nil, fmt.Errorf("ListInvoices for customer %q: %w", req.CustomerID, err)
	}
	return convert.Invoices(resp), nil
}

func (b *billingClient) HandleWebhook(ctx context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	resp, err := b.c.HandleWebhook(ctx, convert.WebhookRequestPB(req))
	if err != nil {
		return nil, fmt.Errorf("HandleWebhook: %w", err)
	}
	return convert.BillingEvents(resp), nil
}

func (b *billingClient) CancelSubscription(ctx context.Context, req sdk.CancelRequest) error {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	if _, err := b.c.CancelSubscription(ctx, convert.CancelRequestPB(req)); err != nil {
		return fmt.Errorf("CancelSubscription %q: %w", req.SubscriptionID, err)
	}
	return nil
}

type notifierClient struct{ c pb.NotifierClient }

func (n *notifierClient) ListChannels(ctx context.Context) ([]sdk.Channel, error) {
	resp, err := n.c.ListChannels(ctx, &pb.ListChannelsRequest{})
	if err != nil {
		return nil, fmt.Errorf("ListChannels: %w", err)
	}
	return convert.Channels(resp), nil
}

func (n *notifierClient) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	msg.IdempotencyKey = keyOr(msg.IdempotencyKey)
	d, err := n.c.Send(ctx, convert.MessagePB(msg))
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("Send via %q: %w", msg.Channel, err)
	}
	return convert.Delivery(d), nil
}

func (n *notifierClient) CheckChannel(ctx context.Context, check sdk.ChannelCheck) error {
	if _, err := n.c.CheckChannel(ctx, convert.ChannelCheckPB(check)); err != nil {
		return fmt.Errorf("CheckChannel %q: %w", check.Channel, err)
	}
	return nil
}

type dnsClient struct{ c pb.DNSProviderClient }

func (d *dnsClient) GetRecords(ctx context.Context, zone string) ([]sdk.Record, error) {
	resp, err := d.c.GetRecords(ctx, &pb.GetRecordsRequest{Zone: zone})
	if err != nil {
		return nil, fmt.Errorf("GetRecords %q: %w", zone, err)
	}
	return convert.Records(resp), nil
}

func (d *dnsClient) changeRequest(req sdk.RecordsChange) *pb.ChangeRecordsRequest {
	req.IdempotencyKey = keyOr(req.IdempotencyKey)
	return convert.RecordsChangePB(req)
}

func (d *dnsClient) AppendRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	resp, err := d.c.AppendRecords(ctx, d.changeRequest(req))
	if err != nil {
		return nil, fmt.Errorf("AppendRecords %q: %w", req.Zone, err)
	}
	return convert.Records(resp), nil
}

func (d *dnsClient) SetRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	resp, err := d.c.SetRecords(ctx, d.changeRequest(req))
	if err != nil {
		return nil, fmt.Errorf("SetRecords %q: %w", req.Zone, err)
	}
	return convert.Records(resp), nil
}

func (d *dnsClient) DeleteRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	resp, err := d.c.DeleteRecords(ctx, d.changeRequest(req))
	if err != nil {
		return nil, fmt.Errorf("DeleteRecords %q: %w", req.Zone, err)
	}
	return convert.Records(resp), nil
}
