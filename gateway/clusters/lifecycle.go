package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/operations"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// Lifecycle statuses of a cluster. Registered clusters are ready from the
// start; provisioned ones move through the others as their operations run.
const (
	StatusProvisioning = "provisioning"
	StatusReady        = "ready"
	StatusError        = "error"
	StatusDeleting     = "deleting"
	StatusDeleted      = "deleted"
)

// ConnKubeconfigPending is the connection status of a cluster being
// provisioned: Berth has no credentials for it yet.
const ConnKubeconfigPending = "kubeconfig_pending"

// Resources are CPU and memory for one part of a cluster.
type Resources struct {
	CPUMillicores int64 `json:"cpu_millicores"`
	MemoryBytes   int64 `json:"memory_bytes"`
}

// Shape is what a provisioned cluster was asked to be.
type Shape struct {
	KubernetesVersion string            `json:"kubernetes_version,omitempty"`
	ControlPlane      Resources         `json:"control_plane"`
	Workers           Resources         `json:"workers"`
	Options           map[string]string `json:"options,omitempty"`
}

func (sh *Shape) total() Resources {
	return Resources{sh.ControlPlane.CPUMillicores + sh.Workers.CPUMillicores, sh.ControlPlane.MemoryBytes + sh.Workers.MemoryBytes}
}

func (sh *Shape) validate() error {
	for _, r := range []Resources{sh.ControlPlane, sh.Workers} {
		if r.CPUMillicores < 0 || r.MemoryBytes < 0 {
			return fault.New(fault.Invalid, "cpu and memory must not be negative")
		}
	}
	if len(sh.KubernetesVersion) > 64 || len(sh.Options) > 32 {
		return fault.New(fault.Invalid, "kubernetes_version (64) or options (32) too long")
	}
	for k, v := range sh.Options {
		if k == "" || len(k) > 63 || len(v) > 1024 {
			return fault.New(fault.Invalid, "option %q too long or empty", k)
		}
	}
	return nil
}

func (sh *Shape) spec(name string) sdk.ClusterSpec {
	return sdk.ClusterSpec{
		Name: name, KubernetesVersion: sh.KubernetesVersion,
		ControlPlane: sdk.Resources{CPUMillicores: sh.ControlPlane.CPUMillicores, MemoryBytes: sh.ControlPlane.MemoryBytes},
		Workers:      sdk.Resources{CPUMillicores: sh.Workers.CPUMillicores, MemoryBytes: sh.Workers.MemoryBytes},
		Options:      sh.Options,
	}
}

// Quota bounds what one user may provision; zero fields do not limit.
type Quota struct {
	MaxClusters      int
	MaxCPUMillicores int64
	MaxMemoryBytes   int64
}

// Lifecycle configures provisioning in Options.
type Lifecycle struct {
	// Operations stores and runs the operations.
	Operations *operations.Service
	// Provisioner finds a provisioner plugin by name.
	Provisioner func(name string) (pluginclient.Provisioner, error)
	// DefaultProvisioner is used when a request names none.
	DefaultProvisioner string
	// Quota is the default quota: users without a plan of their own.
	Quota Quota
	// QuotaFor, when set, returns the quota of user's plan, read within
	// the provisioning transaction; false means the default applies.
	QuotaFor func(tx *store.Tx, user string) (Quota, bool, error)
}

// ProvisionSpec asks for a new cluster made by a provisioner.
type ProvisionSpec struct {
	Name        string
	DisplayName string
	Description string
	Labels      map[string]string
	Provisioner string
	Shape       Shape
}

// Provision records a new cluster and the operation that creates it, after
// checking the name, the provisioner and the caller's quota. The creator
// becomes the cluster's cluster-admin member.
func (s *Service) Provision(ctx context.Context, actor *identity.Principal, ps ProvisionSpec, ev audit.Event) (*operations.Operation, error) {
	lc := s.opts.Lifecycle
	if lc.Operations == nil {
		return nil, fault.New(fault.Invalid, "provisioning is not enabled on this gateway")
	}
	meta := Spec{Name: ps.Name, DisplayName: ps.DisplayName, Description: ps.Description, Labels: ps.Labels}
	if err := validateMeta(&meta, true); err != nil {
		return nil, err
	}
	if err := ps.Shape.validate(); err != nil {
		return nil, err
	}
	if ps.Provisioner == "" {
		ps.Provisioner = lc.DefaultProvisioner
	}
	if ps.Provisioner == "" {
		return nil, fault.New(fault.Invalid, "name a provisioner (no provisioning.provisioner is configured)")
	}
	if _, err := lc.Provisioner(ps.Provisioner); err != nil {
		return nil, fault.New(fault.Invalid, "provisioner %q: %v", ps.Provisioner, unwrapPlugin(err))
	}
	op, err := operations.New(operations.Create, ps.Name, ps.Provisioner, actor.UserID, ps.Shape.spec(ps.Name))
	if err != nil {
		return nil, err
	}
	err = s.db.Update(func(tx *store.Tx) error {
		if err := claimName(tx, ps.Name); err != nil {
			return err
		}
		if err := s.checkQuota(tx, actor.UserID, "", ps.Shape.total()); err != nil {
			return err
		}
		now := tx.Now().UTC()
		sh := ps.Shape
		r := &Record{
			Name: ps.Name, DisplayName: ps.DisplayName, Description: ps.Description, Labels: ps.Labels,
			AuthType: "none", Status: StatusProvisioning, ConnectionStatus: ConnKubeconfigPending,
			Provisioner: ps.Provisioner, Shape: &sh, Operation: op.ID,
			CreatedBy: actor.UserID, CreatedAt: now, UpdatedAt: now,
		}
		if err := records.Insert(tx, r.Name, r); err != nil {
			return err
		}
		m := &Member{ID: store.NewID("mbr"), Cluster: r.Name, Kind: "user", Subject: actor.UserID, Name: actor.Username, Role: "cluster-admin", Created: now}
		if err := members.Put(tx, m.ID, m); err != nil {
			return err
		}
		return operations.Insert(tx, op)
	})
	ev.Details = map[string]string{"provisioner": ps.Provisioner, "operation": op.ID}
	s.record(ctx, ev, "cluster.create", ps.Name, err)
	s.refresh(ps.Name)
	if q := (*quotaRefusal)(nil); errors.As(err, &q) {
		s.reportQuota(actor.UserID, actor.UserID, ps.Name, q)
	}
	if err != nil {
		return nil, mapStoreErr(err)
	}
	lc.Operations.Kick()
	return op, nil
}

// Reshape starts an operation that changes a provisioned cluster to shape.
func (s *Service) Reshape(ctx context.Context, actor *identity.Principal, name string, shape Shape, ev audit.Event) (*operations.Operation, error) {
	lc := s.opts.Lifecycle
	if err := shape.validate(); err != nil {
		return nil, err
	}
	var (
		op    *operations.Operation
		owner string
	)
	err := s.db.Update(func(tx *store.Tx) error {
		r, err := records.Get(tx, name)
		if err != nil || r.Status == StatusDeleted {
			return ErrNotFound
		}
		if r.Provisioner == "" || lc.Operations == nil {
			return fault.New(fault.Invalid, "cluster %q was registered, not provisioned: Berth cannot change its shape", name)
		}
		owner = r.CreatedBy
		if err := s.checkQuota(tx, r.CreatedBy, name, shape.total()); err != nil {
			return err
		}
		op, err = operations.New(operations.Update, name, r.Provisioner, actor.UserID, shape.spec(name))
		if err != nil {
			return err
		}
		if err := operations.Insert(tx, op); err != nil {
			return err
		}
		r.Operation, r.UpdatedAt = op.ID, tx.Now().UTC()
		return records.Put(tx, name, r)
	})
	if op != nil {
		ev.Details = map[string]string{"operation": op.ID}
	}
	s.record(ctx, ev, "cluster.update", name, err)
	s.refresh(name)
	if q := (*quotaRefusal)(nil); errors.As(err, &q) {
		// The quota is the owner's, whoever asked.
		s.reportQuota(actor.UserID, owner, name, q)
	}
	if err != nil {
		return nil, mapStoreErr(err)
	}
	lc.Operations.Kick()
	return op, nil
}

// deprovision starts the operation that deletes a provisioned cluster.
func (s *Service) deprovision(tx *store.Tx, r *Record, actor string) (*operations.Operation, error) {
	op, err := operations.New(operations.Delete, r.Name, r.Provisioner, actor, nil)
	if err != nil {
		return nil, err
	}
	if err := operations.Insert(tx, op); err != nil {
		return nil, err
	}
	r.Status, r.Operation, r.UpdatedAt = StatusDeleting, op.ID, tx.Now().UTC()
	return op, records.Put(tx, r.Name, r)
}

// claimName frees name for a new cluster: a deleted cluster's record and
// memberships give way (its audit and operations stay); a live one is
// ErrExists.
func claimName(tx *store.Tx, name string) error {
	old, err := records.Get(tx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if old.Status != StatusDeleted {
		return ErrExists
	}
	if err := records.Delete(tx, name); err != nil {
		return err
	}
	return deleteMembers(tx, name)
}

func deleteMembers(tx *store.Tx, cluster string) error {
	ids, err := members.IDsBy(tx, "cluster", cluster)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := members.Delete(tx, id); err != nil {
			return err
		}
	}
	return nil
}

// checkQuota refuses adding want to what user's provisioned clusters hold
// when the sum passes the quota. except names a cluster whose current
// shape want replaces.
func (s *Service) checkQuota(tx *store.Tx, user, except string, want Resources) error {
	q := s.opts.Lifecycle.Quota
	if f := s.opts.Lifecycle.QuotaFor; f != nil {
		planned, ok, err := f(tx, user)
		if err != nil {
			return err
		}
		if ok {
			q = planned
		}
	}
	count, used, err := usage(tx, user, except)
	if err != nil {
		return err
	}
	cpu, mem := used.CPUMillicores+want.CPUMillicores, used.MemoryBytes+want.MemoryBytes
	if except == "" {
		count++
	}
	switch {
	case q.MaxClusters > 0 && count > q.MaxClusters:
		return &quotaRefusal{fault.New(fault.QuotaExceeded, "quota exceeded: at most %d clusters per user", q.MaxClusters),
			"clusters", fmt.Sprint(q.MaxClusters), fmt.Sprint(count)}
	case q.MaxCPUMillicores > 0 && cpu > q.MaxCPUMillicores:
		return &quotaRefusal{fault.New(fault.QuotaExceeded, "quota exceeded: at most %s CPU per user; this would make %s", cpuString(q.MaxCPUMillicores), cpuString(cpu)),
			"cpu", cpuString(q.MaxCPUMillicores), cpuString(cpu)}
	case q.MaxMemoryBytes > 0 && mem > q.MaxMemoryBytes:
		return &quotaRefusal{fault.New(fault.QuotaExceeded, "quota exceeded: at most %s memory per user; this would make %s", memString(q.MaxMemoryBytes), memString(mem)),
			"memory", memString(q.MaxMemoryBytes), memString(mem)}
	}
	return nil
}

// usage is what user's provisioned clusters that are not deleted hold,
// except the one called except.
func usage(tx *store.Tx, user, except string) (count int, total Resources, err error) {
	err = records.Scan(tx, store.ScanOptions{}, func(_ string, r *Record) (bool, error) {
		if r.CreatedBy != user || r.Provisioner == "" || r.Status == StatusDeleted || r.Name == except || r.Shape == nil {
			return true, nil
		}
		t := r.Shape.total()
		count, total.CPUMillicores, total.MemoryBytes = count+1, total.CPUMillicores+t.CPUMillicores, total.MemoryBytes+t.MemoryBytes
		return true, nil
	})
	return count, total, err
}

// Usage is what user's provisioned clusters hold against their quota.
func (s *Service) Usage(user string) (clusters int, total Resources, err error) {
	err = s.db.View(func(tx *store.Tx) (err error) { clusters, total, err = usage(tx, user, ""); return err })
	return clusters, total, err
}

func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, store.ErrExists):
		return ErrExists
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	}
	return err
}

// unwrapPlugin shortens plugin-host errors for API messages.
func unwrapPlugin(err error) string {
	switch {
	case fault.Is(err, fault.NotFound):
		return "no such plugin is configured"
	case fault.Is(err, fault.Invalid):
		return "the plugin does not offer the provisioner capability"
	}
	return err.Error()
}

// Executor returns the operations.Executor that runs this registry's
// operations through the provisioner plugins.
func (s *Service) Executor() operations.Executor { return executor{s} }

type executor struct{ s *Service }

func (e executor) provisioner(op *operations.Operation) (pluginclient.Provisioner, error) {
	p, err := e.s.opts.Lifecycle.Provisioner(op.Provisioner)
	if err != nil {
		// A provisioner removed from the configuration will not come back
		// by waiting.
		return nil, fmt.Errorf("provisioner %q: %s", op.Provisioner, unwrapPlugin(err))
	}
	return p, nil
}

// classify marks the plugin errors worth retrying.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sdk.ErrRetryable), fault.Is(err, fault.Unavailable),
		errors.Is(err, sdk.ErrDeadline), errors.Is(err, context.DeadlineExceeded):
		return operations.Retryable(err)
	}
	return err
}

func (e executor) Begin(ctx context.Context, op *operations.Operation) (string, error) {
	p, err := e.provisioner(op)
	if err != nil {
		return "", err
	}
	var remote sdk.Operation
	switch op.Type {
	case operations.Create, operations.Update:
		var spec sdk.ClusterSpec
		if err := json.Unmarshal(op.Spec, &spec); err != nil {
			return "", fmt.Errorf("operation spec: %w", err)
		}
		if op.Type == operations.Create {
			remote, err = p.CreateCluster(ctx, sdk.CreateClusterRequest{IdempotencyKey: op.ID, Spec: spec})
		} else {
			remote, err = p.UpdateCluster(ctx, sdk.UpdateClusterRequest{IdempotencyKey: op.ID, Spec: spec})
		}
	case operations.Delete:
		remote, err = p.DeleteCluster(ctx, sdk.DeleteClusterRequest{IdempotencyKey: op.ID, Name: op.Cluster})
		if errors.Is(err, sdk.ErrNotFound) {
			return "", operations.ErrNothingToDo
		}
	default:
		return "", fmt.Errorf("unknown operation type %q", op.Type)
	}
	if err != nil {
		return "", classify(err)
	}
	if remote.ID == "" {
		return "", fmt.Errorf("provisioner %q returned an operation without an id", op.Provisioner)
	}
	return remote.ID, nil
}

func (e executor) Follow(ctx context.Context, op *operations.Operation, progress func(operations.Progress)) error {
	p, err := e.provisioner(op)
	if err != nil {
		return err
	}
	var final *sdk.Operation
	err = p.WatchOperation(ctx, op.ProvisionerOperation, func(o sdk.Operation) error {
		progress(operations.Progress{Stage: o.Progress.Stage, Message: o.Progress.Message, Percent: o.Progress.Percent})
		if o.Done() {
			final = &o
		}
		return nil
	})
	switch {
	case final != nil && final.State == sdk.OperationSucceeded:
		return nil
	case final != nil:
		msg := final.Error
		if msg == "" {
			msg = "the provisioner reported a failure without a reason"
		}
		return errors.New(msg)
	case errors.Is(err, sdk.ErrNotFound):
		return operations.ErrRemoteLost
	case err == nil:
		return operations.Retryable(errors.New("the watch ended before the operation did"))
	case ctx.Err() != nil:
		return err
	}
	// A broken watch says nothing about the work itself: watch again.
	if c := classify(err); operations.IsRetryable(c) {
		return c
	}
	return operations.Retryable(err)
}

func (e executor) Complete(ctx context.Context, op *operations.Operation) error {
	if op.Type != operations.Create {
		return nil
	}
	p, err := e.provisioner(op)
	if err != nil {
		return err
	}
	conn, err := p.GetConnection(ctx, op.Cluster)
	if errors.Is(err, sdk.ErrFailedPrecondition) {
		return operations.Retryable(err)
	}
	if err != nil {
		return classify(err)
	}
	c, err := FromKubeconfig(conn.Kubeconfig, "")
	if err != nil {
		return fmt.Errorf("the provisioner's kubeconfig: %w", err)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("the provisioner's kubeconfig: %w", err)
	}
	plain, _ := json.Marshal(c)
	var r *Record
	e.s.connMu.Lock()
	defer e.s.connMu.Unlock()
	err = e.s.db.Update(func(tx *store.Tx) error {
		var err error
		if r, err = records.Get(tx, op.Cluster); err != nil {
			return err
		}
		r.Server, r.AuthType, r.Sealed = c.Server, c.AuthType(), e.s.box.Seal(plain, sealContext(r.Name))
		r.ConnectionStatus, r.UpdatedAt = ConnPending, tx.Now().UTC()
		return records.Put(tx, r.Name, r)
	})
	if err != nil {
		return fmt.Errorf("store the new cluster's connection: %w", err)
	}
	return e.s.addToPool(r)
}

func (e executor) Settle(tx *store.Tx, op *operations.Operation) error {
	r, err := records.Get(tx, op.Cluster)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	now := tx.Now().UTC()
	r.UpdatedAt = now
	ok, failed, cancelled := op.Status == operations.Succeeded, op.Status == operations.Failed, op.Status == operations.Cancelled
	switch op.Type {
	case operations.Create:
		switch {
		case ok:
			r.Status, r.LastError = StatusReady, ""
			if err := emitRegistered(tx, e.s.opts.Now().UTC(), op.CreatedBy, r, sourceProvisioned); err != nil {
				return err
			}
		case failed:
			r.Status, r.LastError = StatusError, "create failed: "+op.Error
		case cancelled && op.AttemptCount == 0:
			// The provisioner never heard of it: nothing to clean up.
			if err := records.Delete(tx, r.Name); err != nil {
				return err
			}
			return deleteMembers(tx, r.Name)
		case cancelled:
			// The provisioner may have made part of it: delete that.
			_, err := e.s.deprovision(tx, r, op.CreatedBy)
			return err
		}
	case operations.Update:
		switch {
		case ok:
			var spec sdk.ClusterSpec
			if err := json.Unmarshal(op.Spec, &spec); err == nil {
				r.Shape = shapeOf(spec)
			}
			r.Status, r.LastError = StatusReady, ""
		case failed:
			r.LastError = "update failed: " + op.Error
		}
	case operations.Delete:
		switch {
		case ok:
			r.Status, r.DeletedAt, r.Sealed, r.LastError = StatusDeleted, &now, nil, ""
			r.ConnectionStatus, r.UnreachableSince = ConnPending, nil
			if err := deleteMembers(tx, r.Name); err != nil {
				return err
			}
			if err := emitDeleted(tx, e.s.opts.Now().UTC(), op.CreatedBy, r.Name); err != nil {
				return err
			}
		case failed:
			r.Status, r.LastError = StatusError, "delete failed: "+op.Error
		case cancelled:
			r.Status = StatusReady
			if r.Sealed == nil {
				r.Status = StatusError
			}
		}
	}
	return records.Put(tx, r.Name, r)
}

func shapeOf(s sdk.ClusterSpec) *Shape {
	return &Shape{
		KubernetesVersion: s.KubernetesVersion, Options: s.Options,
		ControlPlane: Resources{s.ControlPlane.CPUMillicores, s.ControlPlane.MemoryBytes},
		Workers:      Resources{s.Workers.CPUMillicores, s.Workers.MemoryBytes},
	}
}

func (e executor) Settled(op *operations.Operation) {
	s := e.s
	s.refresh(op.Cluster)
	switch {
	case op.Type == operations.Delete && op.Status == operations.Succeeded:
		// Unless the name was registered again since the operation ended.
		s.connMu.Lock()
		if _, err := s.Get(op.Cluster); err != nil {
			s.pool.Remove(op.Cluster)
		}
		s.connMu.Unlock()
	case op.Type == operations.Create && op.Status == operations.Succeeded:
		// Probe now so the console shows the new cluster reachable
		// without waiting for the next round.
		_, _, _ = s.probe(op.Cluster)
	}
}

func cpuString(millicores int64) string {
	return resource.NewMilliQuantity(millicores, resource.DecimalSI).String()
}

func memString(bytes int64) string {
	return resource.NewQuantity(bytes, resource.BinarySI).String()
}
