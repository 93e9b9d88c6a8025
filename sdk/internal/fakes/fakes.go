// Package fakes holds small in-memory plugins with every capability, for
// the SDK's own tests and benchmarks (in-process and, through
// internal/testplugin, as a real process). They keep the contracts the
// conformance suites check, so they double as a test of the suites.
package fakes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// Config is the fakes' configuration.
type Config struct {
	// SendDelay makes Notifier.Send sleep, for deadline tests.
	SendDelay string `json:"send_delay" berth:"description=Go duration Send waits before answering"`
	// Zones are the DNS zones that exist.
	Zones []string `json:"zones" berth:"description=DNS zones served"`
	// KVSelfTest makes Configure exercise the host KV (more keys than one
	// List page) and fail if it misbehaves.
	KVSelfTest bool `json:"kv_selftest"`
}

// Validate checks what tags cannot.
func (c Config) Validate() error {
	if c.SendDelay != "" {
		if _, err := time.ParseDuration(c.SendDelay); err != nil {
			return fmt.Errorf("field \"send_delay\": %v", err)
		}
	}
	return nil
}

// Plugin is all four capabilities in memory; its billing is
// plugintest.MemoryBilling.
type Plugin struct {
	*plugintest.MemoryBilling

	mu       sync.Mutex
	cfg      Config
	host     sdk.Host
	seq      int
	sent     []sdk.Message
	zones    map[string][]sdk.Record
	clusters map[string]*sdk.Cluster
	ops      map[string]*sdk.Operation
}

// New returns an unconfigured fake.
func New() *Plugin {
	return &Plugin{
		MemoryBilling: plugintest.NewMemoryBilling(),
		host:          sdk.Host{},
		zones:         map[string][]sdk.Record{},
		clusters:      map[string]*sdk.Cluster{},
		ops:           map[string]*sdk.Operation{},
	}
}

// Options serves every capability of p.
func (p *Plugin) Options() sdk.Options {
	return sdk.Options{
		Name:        "fakes",
		Version:     "1.0.0",
		Config:      sdk.TypedConfig(p.Configure),
		Provisioner: p,
		Billing:     p,
		Notifier:    p,
		DNS:         p,
	}
}

// Configure applies cfg.
func (p *Plugin) Configure(ctx context.Context, cfg Config, host sdk.Host) error {
	if cfg.KVSelfTest {
		if err := kvSelfTest(ctx, host.KV); err != nil {
			return fmt.Errorf("kv self-test: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg, p.host = cfg, host
	for _, z := range cfg.Zones {
		if _, ok := p.zones[z]; !ok {
			p.zones[z] = nil
		}
	}
	return nil
}

func (p *Plugin) next(prefix string) string {
	p.seq++
	return prefix + strconv.Itoa(p.seq)
}

// ListChannels implements sdk.Notifier.
func (p *Plugin) ListChannels(context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{{Type: "memory", Name: "memory", Description: "kept in the plugin's memory"}}, nil
}

// Send implements sdk.Notifier. It also stores the last subject in the
// host KV and emits an event, when the host offers them.
func (p *Plugin) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	if msg.Channel != "memory" {
		return sdk.Delivery{}, fmt.Errorf("channel %q: %w", msg.Channel, sdk.ErrNotFound)
	}
	p.mu.Lock()
	delay, _ := time.ParseDuration(p.cfg.SendDelay)
	host := p.host
	p.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return sdk.Delivery{}, ctx.Err()
		}
	}
	p.mu.Lock()
	p.sent = append(p.sent, msg)
	id := p.next("msg-")
	p.mu.Unlock()
	// A host that offers no services answers ErrUnimplemented: carry on.
	if host.KV != nil {
		if err := host.KV.Put(ctx, "last_subject", []byte(msg.Subject), time.Hour); err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
			return sdk.Delivery{}, fmt.Errorf("remember message: %w", err)
		}
		err := host.Events.Emit(ctx, sdk.Event{Type: "notifier.sent", Subject: id, Attributes: map[string]string{"target": msg.Target}})
		if err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
			return sdk.Delivery{}, fmt.Errorf("emit: %w", err)
		}
	}
	return sdk.Delivery{ProviderMessageID: id, AcceptedAt: time.Now()}, nil
}

// GetRecords implements sdk.DNSProvider.
func (p *Plugin) GetRecords(_ context.Context, zone string) ([]sdk.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs, ok := p.zones[zone]
	if !ok {
		return nil, fmt.Errorf("zone %q: %w", zone, sdk.ErrNotFound)
	}
	return slices.Clone(recs), nil
}

// AppendRecords implements sdk.DNSProvider.
func (p *Plugin) AppendRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.zones[req.Zone]; !ok {
		return nil, fmt.Errorf("zone %q: %w", req.Zone, sdk.ErrNotFound)
	}
	p.zones[req.Zone] = append(p.zones[req.Zone], req.Records...)
	return req.Records, nil
}

// SetRecords implements sdk.DNSProvider.
func (p *Plugin) SetRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs, ok := p.zones[req.Zone]
	if !ok {
		return nil, fmt.Errorf("zone %q: %w", req.Zone, sdk.ErrNotFound)
	}
	recs = slices.DeleteFunc(recs, func(r sdk.Record) bool {
		return slices.ContainsFunc(req.Records, func(n sdk.Record) bool { return n.Name == r.Name && n.Type == r.Type })
	})
	p.zones[req.Zone] = append(recs, req.Records...)
	return req.Records, nil
}

// DeleteRecords implements sdk.DNSProvider.
func (p *Plugin) DeleteRecords(_ context.Context, req sdk.RecordsChange) ([]sdk.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	recs, ok := p.zones[req.Zone]
	if !ok {
		return nil, fmt.Errorf("zone %q: %w", req.Zone, sdk.ErrNotFound)
	}
	var deleted []sdk.Record
	recs = slices.DeleteFunc(recs, func(r sdk.Record) bool {
		for _, d := range req.Records {
			if d.Name == r.Name && d.Type == r.Type && (d.Value == "" || d.Value == r.Value) {
				deleted = append(deleted, r)
				return true
			}
		}
		return false
	})
	p.zones[req.Zone] = recs
	return deleted, nil
}

// CreateCluster implements sdk.Provisioner; the cluster is ready after
// three progress steps driven by GetOperation calls.
func (p *Plugin) CreateCluster(_ context.Context, req sdk.CreateClusterRequest) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.clusters[req.Spec.Name]; ok {
		return sdk.Operation{}, fmt.Errorf("cluster %q: %w", req.Spec.Name, sdk.ErrAlreadyExists)
	}
	now := time.Now()
	p.clusters[req.Spec.Name] = &sdk.Cluster{Spec: req.Spec, Phase: sdk.ClusterProvisioning, CreatedAt: now, UpdatedAt: now}
	return p.startOp(req.Spec.Name, sdk.OperationCreate), nil
}

func (p *Plugin) startOp(cluster string, kind sdk.OperationKind) sdk.Operation {
	now := time.Now()
	op := &sdk.Operation{
		ID: p.next("op-"), ClusterName: cluster, Kind: kind, State: sdk.OperationRunning,
		Progress: sdk.Progress{Stage: "queued", Message: "waiting", Percent: 0}, StartedAt: now, UpdatedAt: now,
	}
	p.ops[op.ID] = op
	return *op
}

// UpdateCluster implements sdk.Provisioner.
func (p *Plugin) UpdateCluster(_ context.Context, req sdk.UpdateClusterRequest) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clusters[req.Spec.Name]
	if !ok {
		return sdk.Operation{}, fmt.Errorf("cluster %q: %w", req.Spec.Name, sdk.ErrNotFound)
	}
	c.Spec, c.Phase = req.Spec, sdk.ClusterUpdating
	return p.startOp(req.Spec.Name, sdk.OperationUpdate), nil
}

// GetCluster implements sdk.Provisioner.
func (p *Plugin) GetCluster(_ context.Context, name string) (sdk.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clusters[name]
	if !ok {
		return sdk.Cluster{}, fmt.Errorf("cluster %q: %w", name, sdk.ErrNotFound)
	}
	return *c, nil
}

// ListClusters implements sdk.Provisioner.
func (p *Plugin) ListClusters(context.Context) ([]sdk.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []sdk.Cluster
	for _, c := range p.clusters {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b sdk.Cluster) int {
		if a.Spec.Name < b.Spec.Name {
			return -1
		}
		return 1
	})
	return out, nil
}

// DeleteCluster implements sdk.Provisioner.
func (p *Plugin) DeleteCluster(_ context.Context, req sdk.DeleteClusterRequest) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clusters[req.Name]
	if !ok {
		return sdk.Operation{}, fmt.Errorf("cluster %q: %w", req.Name, sdk.ErrNotFound)
	}
	c.Phase = sdk.ClusterDeleting
	return p.startOp(req.Name, sdk.OperationDelete), nil
}

// GetOperation implements sdk.Provisioner; each call advances a running
// operation by one step, so tests finish without sleeping.
func (p *Plugin) GetOperation(_ context.Context, id string) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	op, ok := p.ops[id]
	if !ok {
		return sdk.Operation{}, fmt.Errorf("operation %q: %w", id, sdk.ErrNotFound)
	}
	if op.State == sdk.OperationRunning {
		op.Progress.Percent += 50
		op.Progress.Stage, op.Progress.Message = "working", fmt.Sprintf("%d%% done", op.Progress.Percent)
		op.UpdatedAt = time.Now()
		if op.Progress.Percent >= 100 {
			op.State, op.Progress.Stage = sdk.OperationSucceeded, "done"
			switch op.Kind {
			case sdk.OperationDelete:
				delete(p.clusters, op.ClusterName)
			default:
				if c, ok := p.clusters[op.ClusterName]; ok {
					c.Phase, c.UpdatedAt = sdk.ClusterReady, time.Now()
				}
			}
		}
	}
	return *op, nil
}

// GetConnection implements sdk.Provisioner.
func (p *Plugin) GetConnection(_ context.Context, name string) (sdk.Connection, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clusters[name]
	if !ok {
		return sdk.Connection{}, fmt.Errorf("cluster %q: %w", name, sdk.ErrNotFound)
	}
	if c.Phase != sdk.ClusterReady {
		return sdk.Connection{}, fmt.Errorf("cluster %q is %s: %w", name, c.Phase, sdk.ErrFailedPrecondition)
	}
	return sdk.Connection{APIEndpoint: "https://" + name + ".fake:6443", CAPEM: []byte("-----BEGIN CERTIFICATE-----\n"), Kubeconfig: []byte("apiVersion: v1\nkind: Config\n")}, nil
}

// KVSelfTestKeys is how many keys the KV self-test writes: more than one
// List page (1000), so paging is exercised.
const KVSelfTestKeys = 1205

func kvSelfTest(ctx context.Context, kv sdk.KV) error {
	for i := range KVSelfTestKeys {
		if err := kv.Put(ctx, fmt.Sprintf("self/%05d", i), []byte(strconv.Itoa(i)), 0); err != nil {
			return err
		}
	}
	if err := kv.Put(ctx, "other", []byte("x"), time.Minute); err != nil {
		return err
	}
	entries, err := kv.List(ctx, "self/")
	if err != nil {
		return err
	}
	if len(entries) != KVSelfTestKeys {
		return fmt.Errorf("listed %d keys, want %d", len(entries), KVSelfTestKeys)
	}
	for i, e := range entries {
		if e.Key != fmt.Sprintf("self/%05d", i) || string(e.Value) != strconv.Itoa(i) {
			return fmt.Errorf("entry %d is %s=%s", i, e.Key, e.Value)
		}
	}
	if err := kv.Delete(ctx, "self/00000"); err != nil {
		return err
	}
	if _, err := kv.Get(ctx, "self/00000"); !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("get of a deleted key: %v, want ErrNotFound", err)
	}
	v, err := kv.Get(ctx, "self/00001")
	if err != nil || string(v) != "1" {
		return fmt.Errorf("get self/00001 = %q, %v", v, err)
	}
	return nil
}
