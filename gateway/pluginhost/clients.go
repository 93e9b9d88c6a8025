package pluginhost

import (
	"context"
	"fmt"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// invoke runs one call through the supervisor and returns its result.
func invoke[T any](in *instance, ctx context.Context, method string, fn func(*proc) (T, error)) (T, error) {
	var out T
	err := in.call(ctx, method, func(pr *proc) error {
		var err error
		out, err = fn(pr)
		return err
	})
	return out, err
}

func (in *instance) missing(c sdk.Capability) error {
	return fmt.Errorf("plugin %q: %s: %w", in.name, c, ErrNoCapability)
}

// notifierClient is a pluginclient.Notifier whose calls go through the
// supervisor.
type notifierClient struct{ in *instance }

var _ pluginclient.Notifier = notifierClient{}

func (c notifierClient) n(pr *proc) (pluginclient.Notifier, error) {
	if pr.notifier == nil {
		return nil, c.in.missing(sdk.CapabilityNotifier)
	}
	return pr.notifier, nil
}

func (c notifierClient) ListChannels(ctx context.Context) ([]sdk.Channel, error) {
	return invoke(c.in, ctx, "ListChannels", func(pr *proc) ([]sdk.Channel, error) {
		n, err := c.n(pr)
		if err != nil {
			return nil, err
		}
		return n.ListChannels(ctx)
	})
}

func (c notifierClient) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	return invoke(c.in, ctx, "Send", func(pr *proc) (sdk.Delivery, error) {
		n, err := c.n(pr)
		if err != nil {
			return sdk.Delivery{}, err
		}
		return n.Send(ctx, msg)
	})
}

// billingClient is a pluginclient.Billing whose calls go through the
// supervisor; a plugin that is not running fails them with ErrUnavailable.
type billingClient struct{ in *instance }

var _ pluginclient.Billing = billingClient{}

func (c billingClient) b(pr *proc) (pluginclient.Billing, error) {
	if pr.billing == nil {
		return nil, c.in.missing(sdk.CapabilityBilling)
	}
	return pr.billing, nil
}

func (c billingClient) ListPlans(ctx context.Context) ([]sdk.Plan, error) {
	return invoke(c.in, ctx, "ListPlans", func(pr *proc) ([]sdk.Plan, error) {
		b, err := c.b(pr)
		if err != nil {
			return nil, err
		}
		return b.ListPlans(ctx)
	})
}

func (c billingClient) CreateCheckout(ctx context.Context, req sdk.CheckoutRequest) (sdk.Checkout, error) {
	return invoke(c.in, ctx, "CreateCheckout", func(pr *proc) (sdk.Checkout, error) {
		b, err := c.b(pr)
		if err != nil {
			return sdk.Checkout{}, err
		}
		return b.CreateCheckout(ctx, req)
	})
}

func (c billingClient) HandleWebhook(ctx context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	return invoke(c.in, ctx, "HandleWebhook", func(pr *proc) ([]sdk.BillingEvent, error) {
		b, err := c.b(pr)
		if err != nil {
			return nil, err
		}
		return b.HandleWebhook(ctx, req)
	})
}

func (c billingClient) Cancel(ctx context.Context, req sdk.CancelRequest) error {
	_, err := invoke(c.in, ctx, "Cancel", func(pr *proc) (struct{}, error) {
		b, err := c.b(pr)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, b.Cancel(ctx, req)
	})
	return err
}

func (c billingClient) GetEntitlement(ctx context.Context, userID string) (sdk.Entitlement, error) {
	return invoke(c.in, ctx, "GetEntitlement", func(pr *proc) (sdk.Entitlement, error) {
		b, err := c.b(pr)
		if err != nil {
			return sdk.Entitlement{}, err
		}
		return b.GetEntitlement(ctx, userID)
	})
}

// provisionerClient is a pluginclient.Provisioner whose calls go through
// the supervisor.
type provisionerClient struct{ in *instance }

var _ pluginclient.Provisioner = provisionerClient{}

func (c provisionerClient) p(pr *proc) (pluginclient.Provisioner, error) {
	if pr.prov == nil {
		return nil, c.in.missing(sdk.CapabilityProvisioner)
	}
	return pr.prov, nil
}

func (c provisionerClient) CreateCluster(ctx context.Context, req sdk.CreateClusterRequest) (sdk.Operation, error) {
	return invoke(c.in, ctx, "CreateCluster", func(pr *proc) (sdk.Operation, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.Operation{}, err
		}
		return p.CreateCluster(ctx, req)
	})
}

func (c provisionerClient) UpdateCluster(ctx context.Context, req sdk.UpdateClusterRequest) (sdk.Operation, error) {
	return invoke(c.in, ctx, "UpdateCluster", func(pr *proc) (sdk.Operation, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.Operation{}, err
		}
		return p.UpdateCluster(ctx, req)
	})
}

func (c provisionerClient) GetCluster(ctx context.Context, name string) (sdk.Cluster, error) {
	return invoke(c.in, ctx, "GetCluster", func(pr *proc) (sdk.Cluster, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.Cluster{}, err
		}
		return p.GetCluster(ctx, name)
	})
}

func (c provisionerClient) ListClusters(ctx context.Context) ([]sdk.Cluster, error) {
	return invoke(c.in, ctx, "ListClusters", func(pr *proc) ([]sdk.Cluster, error) {
		p, err := c.p(pr)
		if err != nil {
			return nil, err
		}
		return p.ListClusters(ctx)
	})
}

func (c provisionerClient) DeleteCluster(ctx context.Context, req sdk.DeleteClusterRequest) (sdk.Operation, error) {
	return invoke(c.in, ctx, "DeleteCluster", func(pr *proc) (sdk.Operation, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.Operation{}, err
		}
		return p.DeleteCluster(ctx, req)
	})
}

func (c provisionerClient) GetOperation(ctx context.Context, id string) (sdk.Operation, error) {
	return invoke(c.in, ctx, "GetOperation", func(pr *proc) (sdk.Operation, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.Operation{}, err
		}
		return p.GetOperation(ctx, id)
	})
}

func (c provisionerClient) GetConnection(ctx context.Context, name string) (sdk.Connection, error) {
	return invoke(c.in, ctx, "GetConnection", func(pr *proc) (sdk.Connection, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.Connection{}, err
		}
		return p.GetConnection(ctx, name)
	})
}

func (c provisionerClient) GetJoinMaterial(ctx context.Context, req sdk.JoinMaterialRequest) (sdk.JoinMaterial, error) {
	return invoke(c.in, ctx, "GetJoinMaterial", func(pr *proc) (sdk.JoinMaterial, error) {
		p, err := c.p(pr)
		if err != nil {
			return sdk.JoinMaterial{}, err
		}
		return p.GetJoinMaterial(ctx, req)
	})
}

// WatchOperation streams an operation's changes. The stream is not held
// open through the shutdown drain (it may last as long as the operation);
// it ends with an error when the plugin stops or restarts, after which
// the caller watches again or polls GetOperation.
func (c provisionerClient) WatchOperation(ctx context.Context, id string, send func(sdk.Operation) error) error {
	pr, err := c.in.acquire(ctx)
	if err != nil {
		return err
	}
	c.in.calls.Done()
	p, err := c.p(pr)
	if err != nil {
		return err
	}
	err = p.WatchOperation(ctx, id, send)
	if err != nil && (pr.p.Exited() || pr.p.Ping() != nil) {
		c.in.kickSupervisor()
		return &UnavailableError{Plugin: c.in.name, State: StateRestarting, Cause: err}
	}
	return err
}

// dnsClient is a pluginclient.DNSProvider whose calls go through the
// supervisor.
type dnsClient struct{ in *instance }

var _ pluginclient.DNSProvider = dnsClient{}

func (c dnsClient) d(pr *proc) (pluginclient.DNSProvider, error) {
	if pr.dns == nil {
		return nil, c.in.missing(sdk.CapabilityDNS)
	}
	return pr.dns, nil
}

func (c dnsClient) GetRecords(ctx context.Context, zone string) ([]sdk.Record, error) {
	return invoke(c.in, ctx, "GetRecords", func(pr *proc) ([]sdk.Record, error) {
		d, err := c.d(pr)
		if err != nil {
			return nil, err
		}
		return d.GetRecords(ctx, zone)
	})
}

func (c dnsClient) AppendRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return invoke(c.in, ctx, "AppendRecords", func(pr *proc) ([]sdk.Record, error) {
		d, err := c.d(pr)
		if err != nil {
			return nil, err
		}
		return d.AppendRecords(ctx, req)
	})
}

func (c dnsClient) SetRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return invoke(c.in, ctx, "SetRecords", func(pr *proc) ([]sdk.Record, error) {
		d, err := c.d(pr)
		if err != nil {
			return nil, err
		}
		return d.SetRecords(ctx, req)
	})
}

func (c dnsClient) DeleteRecords(ctx context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	return invoke(c.in, ctx, "DeleteRecords", func(pr *proc) ([]sdk.Record, error) {
		d, err := c.d(pr)
		if err != nil {
			return nil, err
		}
		return d.DeleteRecords(ctx, req)
	})
}
