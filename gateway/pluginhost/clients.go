package pluginhost

import (
	"context"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// capability picks one capability's client out of a plugin process.
type capability[C any] struct {
	name sdk.Capability
	of   func(*proc) C
}

var (
	notifierCap    = capability[pluginclient.Notifier]{sdk.CapabilityNotifier, func(pr *proc) pluginclient.Notifier { return pr.notifier }}
	billingCap     = capability[pluginclient.Billing]{sdk.CapabilityBilling, func(pr *proc) pluginclient.Billing { return pr.billing }}
	provisionerCap = capability[pluginclient.Provisioner]{sdk.CapabilityProvisioner, func(pr *proc) pluginclient.Provisioner { return pr.prov }}
	dnsCap         = capability[pluginclient.DNSProvider]{sdk.CapabilityDNS, func(pr *proc) pluginclient.DNSProvider { return pr.dns }}
)

// lease runs one call through the supervisor: it waits for the plugin's
// current process (in.call), takes the capability's client from it, calls
// fn, releases the process, and classifies the error.
func lease[C, T any](in *instance, ctx context.Context, method string, c capability[C], fn func(C) (T, error)) (T, error) {
	var out T
	err := in.call(ctx, method, func(pr *proc) error {
		client := c.of(pr)
		if any(client) == nil {
			return missing(in.name, c.name)
		}
		var err error
		out, err = fn(client)
		return err
	})
	return out, classify(err)
}

// leaseErr is lease for calls that answer only an error.
func leaseErr[C any](in *instance, ctx context.Context, method string, c capability[C], fn func(C) error) error {
	_, err := lease(in, ctx, method, c, func(client C) (struct{}, error) { return struct{}{}, fn(client) })
	return err
}

// notifierClient is a pluginclient.Notifier whose calls go through the
// supervisor.
type notifierClient struct{ in *instance }

var _ pluginclient.Notifier = notifierClient{}

func (c notifierClient) ListChannels(ctx context.Context) ([]sdk.Channel, error) {
	return lease(c.in, ctx, "ListChannels", notifierCap, func(n pluginclient.Notifier) ([]sdk.Channel, error) { return n.ListChannels(ctx) })
}

func (c notifierClient) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	return lease(c.in, ctx, "Send", notifierCap, func(n pluginclient.Notifier) (sdk.Delivery, error) { return n.Send(ctx, msg) })
}

func (c notifierClient) CheckChannel(ctx context.Context, check sdk.ChannelCheck) error {
	_, err := lease(c.in, ctx, "CheckChannel", notifierCap, func(n pluginclient.Notifier) (struct{}, error) { return struct{}{}, n.CheckChannel(ctx, check) })
	return err
}

// billingClient is a pluginclient.Billing whose calls go through the
// supervisor; a plugin that is not running fails them as unavailable.
type billingClient struct{ in *instance }

var _ pluginclient.Billing = billingClient{}

func (c billingClient) Settings(ctx context.Context) ([]sdk.Setting, error) {
	return lease(c.in, ctx, "Settings", billingCap, func(b pluginclient.Billing) ([]sdk.Setting, error) { return b.Settings(ctx) })
}

func (c billingClient) CheckSettings(ctx context.Context, settings map[string]string) error {
	return leaseErr(c.in, ctx, "CheckSettings", billingCap, func(b pluginclient.Billing) error { return b.CheckSettings(ctx, settings) })
}

func (c billingClient) CreateCheckout(ctx context.Context, req sdk.CheckoutRequest) (sdk.Checkout, error) {
	return lease(c.in, ctx, "CreateCheckout", billingCap, func(b pluginclient.Billing) (sdk.Checkout, error) { return b.CreateCheckout(ctx, req) })
}

func (c billingClient) CreatePortal(ctx context.Context, req sdk.PortalRequest) (sdk.Portal, error) {
	return lease(c.in, ctx, "CreatePortal", billingCap, func(b pluginclient.Billing) (sdk.Portal, error) { return b.CreatePortal(ctx, req) })
}

func (c billingClient) ListInvoices(ctx context.Context, req sdk.InvoicesRequest) ([]sdk.Invoice, error) {
	return lease(c.in, ctx, "ListInvoices", billingCap, func(b pluginclient.Billing) ([]sdk.Invoice, error) { return b.ListInvoices(ctx, req) })
}

func (c billingClient) HandleWebhook(ctx context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	return lease(c.in, ctx, "HandleWebhook", billingCap, func(b pluginclient.Billing) ([]sdk.BillingEvent, error) { return b.HandleWebhook(ctx, req) })
}

func (c billingClient) CancelSubscription(ctx context.Context, req sdk.CancelRequest) error {
	return leaseErr(c.in, ctx, "CancelSubscription", billingCap, func(b pluginclient.Billing) error { return b.CancelSubscription(ctx, req) })
}

// provisionerClient is a pluginclient.Provisioner whose calls go through
// the supervisor.
type provisionerClient struct{ in *instance }

var _ pluginclient.Provisioner = provisionerClient{}

func (c provisionerClient) CreateCluster(ctx context.Context, req sdk.CreateClusterRequest) (sdk.Operation, error) {
	return lease(c.in, ctx, "CreateCluster", provisionerCap, func(p pluginclient.Provisioner) (sdk.Operation, error) { return p.CreateCluster(ctx, req) })
}

func (c provisionerClient) UpdateCluster(ctx context.Context, req sdk.UpdateClusterRequest) (sdk.Operation, error) {
	return lease(c.in, ctx, "UpdateCluster", provisionerCap, func(p pluginclient.Provisioner) (sdk.Operation, error) { return p.UpdateCluster(ctx, req) })
}

func (c provisionerClient) GetCluster(ctx context.Context, name string) (sdk.Cluster, error) {
	return lease(c.in, ctx, "GetCluster", provisionerCap, func(p pluginclient.Provisioner) (sdk.Cluster, error) { return p.GetCluster(ctx, name) })
}

func (c provisionerClient) ListClusters(ctx context.Context) ([]sdk.Cluster, error) {
	return lease(c.in, ctx, "ListClusters", provisionerCap, func(p pluginclient.Provisioner) ([]sdk.Cluster, error) { return p.ListClusters(ctx) })
}

func (c provisionerClient) DeleteCluster(ctx context.Context, req sdk.DeleteClusterRequest) (sdk.Operation, error) {
	return lease(c.in, ctx, "DeleteCluster", provisionerCap, func(p pluginclient.Provisioner) (sdk.Operation, error) { return p.DeleteCluster(ctx, req) })
}

func (c provisionerClient) GetOperation(ctx context.Context, id string) (sdk.Operation, error) {
	return lease(c.in, ctx, "GetOperation", provisionerCap, func(p pluginclient.Provisioner) (sdk.Operation, error) { return p.GetOperation(ctx, id) })
}

func (c provisionerClient) GetConnection(ctx context.Context, name string) (sdk.Connection, error) {
	return lease(c.in, ctx, "GetConnection", provisionerCap, func(p pluginclient.Provisioner) (sdk.Connection, error) { return p.GetConnection(ctx, name) })
}

func (c provisionerClient) GetJoinMaterial(ctx context.Context, req sdk.JoinMaterialRequest) (sdk.JoinMaterial, error) {
	return lease(c.in, ctx, "GetJoinMaterial", provisionerCap, func(p pluginclient.Provisioner) (sdk.JoinMaterial, error) { return p.GetJoinMaterial(ctx, req) })
}

// WatchOperation streams an operation's changes. The stream is not held
// open through the shutdown drain (it may last as long as the operation);
// it ends with an error when the plugin stops or restarts, after which
// the caller watches again or polls GetOperation.
func (c provisionerClient) WatchOperation(ctx context.Context, id string, send func(sdk.Operation) error) error {
	pr, err := c.in.acquire(ctx)
	if err != nil {
		return classify(err)
	}
	c.in.calls.Done()
	p := pr.prov
	if p == nil {
		return missing(c.in.name, sdk.CapabilityProvisioner)
	}
	err = p.WatchOperation(ctx, id, send)
	if err != nil && (pr.p.Exited() || pr.p.Ping() != nil) {
		c.in.kickSupervisor()
		err = &unavailableError{Plugin: c.in.name, State: StateRestarting, Cause: err}
	}
	return classify(err)
}

// dnsClient is a pluginclient.DNSProvider whose calls go through the
// supervisor.
type dnsClient struct{ in *instance }

var _ pluginclient.DNSProvider = dnsClient{}

func (c dnsClient) GetRecords(ctx context.Context, zone string) ([]sdk.Record, error) {
	return lease(c.in, ctx, "GetRecords", dnsCap, func(d pluginclient.DNSProvider) ([]sdk.Record, error) { return d.GetRecords(ctx, zone) })
}

func (c dnsClient) AppendRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return lease(c.in, ctx, "AppendRecords", dnsCap, func(d pluginclient.DNSProvider) ([]sdk.Record, error) { return d.AppendRecords(ctx, req) })
}

func (c dnsClient) SetRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return lease(c.in, ctx, "SetRecords", dnsCap, func(d pluginclient.DNSProvider) ([]sdk.Record, error) { return d.SetRecords(ctx, req) })
}

func (c dnsClient) DeleteRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return lease(c.in, ctx, "DeleteRecords", dnsCap, func(d pluginclient.DNSProvider) ([]sdk.Record, error) { return d.DeleteRecords(ctx, req) })
}
