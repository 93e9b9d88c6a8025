package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/hashicorp/go-hclog"
)

// Join material defaults: kubeadm's token lifetime, and a week at most, as
// a token is a credential to the cluster.
const (
	defaultTokenTTL = 24 * time.Hour
	maxTokenTTL     = 7 * 24 * time.Hour
)

// provisioner is the plugin: sdk.Provisioner, sdk.OperationWatcher and
// sdk.JoinMaterialProvider over control planes on this host.
type provisioner struct {
	log hclog.Logger
	// ctx bounds the background work (creates, deletes, restarts); it ends
	// when the plugin shuts down.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	configured bool
	cfg        Config
	bins       binaries
	version    string // of kube-apiserver, e.g. "v1.31.14"
	host       sdk.Host
	ops        *opStore
	clusters   map[string]*cluster
}

// cluster is one control plane. Its fields are guarded by provisioner.mu.
type cluster struct {
	// name and ports never change: background work reads them unlocked.
	name  string
	ports ports
	paths clusterPaths
	state clusterState
	creds *credentials
	etcd  *supervisor
	api   *supervisor
	// work is closed when the background work on the cluster (a create, a
	// restart) has finished; cancelWork cancels it. Nil when idle.
	work       chan struct{}
	cancelWork context.CancelFunc
}

func newProvisioner(log hclog.Logger) *provisioner {
	ctx, cancel := context.WithCancel(context.Background())
	return &provisioner{log: log, ctx: ctx, cancel: cancel, clusters: map[string]*cluster{}}
}

var _ interface {
	sdk.Provisioner
	sdk.OperationWatcher
	sdk.JoinMaterialProvider
} = (*provisioner)(nil)

// configure applies a configuration. The first call loads the clusters in
// the data directory and re-adopts or restarts them; later calls (the
// operator changed the configuration) apply to processes started from
// then on.
func (p *provisioner) configure(ctx context.Context, cfg Config, host sdk.Host) error {
	// Re-adoption reads /proc (see controlplane.ProcessHasArg).
	if runtime.GOOS != "linux" {
		return fmt.Errorf("provisioner-local runs on Linux only: %w", sdk.ErrInvalidConfig)
	}
	bins, err := findBinaries(cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", sdk.ErrInvalidConfig, err)
	}
	version, err := apiserverVersion(ctx, bins.KubeAPIServer)
	if err != nil {
		return fmt.Errorf("field \"kube_apiserver_path\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.configured && cfg.DataDir != p.cfg.DataDir {
		return fmt.Errorf("field \"data_dir\": cannot change while the plugin runs; restart the plugin: %w", sdk.ErrInvalidConfig)
	}
	first := !p.configured
	p.cfg, p.bins, p.version, p.host = cfg, bins, version, host
	if !first {
		return nil
	}
	for _, d := range []string{cfg.DataDir, p.clustersDir(), filepath.Join(cfg.DataDir, "operations")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("field \"data_dir\": %v: %w", err, sdk.ErrInvalidConfig)
		}
	}
	p.ops = newOpStore(filepath.Join(cfg.DataDir, "operations"))
	if err := p.ops.load(); err != nil {
		return err
	}
	if err := p.loadClustersLocked(); err != nil {
		return err
	}
	p.failOrphanOpsLocked()
	p.configured = true
	p.log.Info("configured", "data_dir", cfg.DataDir, "etcd", bins.Etcd, "kube_apiserver", bins.KubeAPIServer,
		"version", version, "clusters", len(p.clusters))
	return nil
}

func (p *provisioner) clustersDir() string { return filepath.Join(p.cfg.DataDir, "clusters") }

// loadClustersLocked reads every cluster's state and sets off the work
// that brings it back where it was: resume a create or delete, re-adopt
// or restart a ready cluster's processes.
func (p *provisioner) loadClustersLocked() error {
	entries, err := os.ReadDir(p.clustersDir())
	if err != nil {
		return fmt.Errorf("read clusters: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(p.clustersDir(), e.Name())
		st, err := loadState(dir)
		if err != nil {
			// A directory without state is a create that crashed before
			// its first write: nothing ran yet, so nothing is lost.
			p.log.Warn("ignoring a cluster directory without usable state", "dir", dir, "error", err.Error())
			continue
		}
		c := &cluster{name: st.Spec.Name, ports: st.Ports, paths: clusterPaths{dir: dir}, state: st}
		p.clusters[st.Spec.Name] = c
		switch st.Phase {
		case sdk.ClusterProvisioning:
			p.ensureOpLocked(st.CreateOp, sdk.OperationCreate, st.Spec.Name)
			p.startWorkLocked(c, func(ctx context.Context) { p.runCreate(ctx, c, st.CreateOp) })
		case sdk.ClusterDeleting:
			p.ensureOpLocked(st.DeleteOp, sdk.OperationDelete, st.Spec.Name)
			go p.runDelete(c, st.DeleteOp)
		case sdk.ClusterReady, sdk.ClusterUpdating:
			p.startWorkLocked(c, func(ctx context.Context) { p.runRestart(ctx, c) })
		}
	}
	return nil
}

// failOrphanOpsLocked ends running operations no cluster is working on:
// an earlier plugin stopped between recording one and recording its
// cluster, so nobody would ever finish it.
func (p *provisioner) failOrphanOpsLocked() {
	live := map[string]bool{}
	for _, c := range p.clusters {
		live[c.state.CreateOp], live[c.state.DeleteOp] = true, true
	}
	for _, op := range p.ops.running() {
		if !live[op.ID] {
			_, _ = p.ops.update(op.ID, func(o *sdk.Operation) {
				o.State, o.Error = sdk.OperationFailed, "interrupted: the plugin stopped before the work was recorded; try again"
			})
		}
	}
}

// ensureOpLocked recreates an operation record that was lost (its file
// torn by a crash), so the resumed work has somewhere to report.
func (p *provisioner) ensureOpLocked(id string, kind sdk.OperationKind, name string) {
	if _, _, ok := p.ops.get(id); ok || id == "" {
		return
	}
	now := time.Now().UTC()
	_ = p.ops.put(sdk.Operation{ID: id, ClusterName: name, Kind: kind, State: sdk.OperationRunning,
		Progress: sdk.Progress{Stage: "resumed", Message: "resumed after a plugin restart"}, StartedAt: now, UpdatedAt: now})
}

// startWorkLocked runs fn in the background as the cluster's current work.
func (p *provisioner) startWorkLocked(c *cluster, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(p.ctx)
	done := make(chan struct{})
	c.work, c.cancelWork = done, cancel
	go func() {
		defer close(done)
		defer cancel()
		fn(ctx)
	}()
}

// ready returns an error while the plugin has no configuration.
func (p *provisioner) readyLocked() error {
	if !p.configured {
		return fmt.Errorf("provisioner-local is not configured: %w", sdk.ErrFailedPrecondition)
	}
	return nil
}

// CreateCluster starts creating a cluster and returns at once.
//
// Besides the SDK's idempotency keys (remembered in memory), creating a
// cluster that exists with the same spec returns its create operation
// while that is still running, or at any time when the request carries the
// key that created it (kept on disk, so this survives a plugin restart).
// A different spec, or a new key for a cluster that finished creating, is
// ErrAlreadyExists.
func (p *provisioner) CreateCluster(_ context.Context, req sdk.CreateClusterRequest) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return sdk.Operation{}, err
	}
	spec, err := normalizeSpec(req.Spec, p.version)
	if err != nil {
		return sdk.Operation{}, err
	}
	if c, ok := p.clusters[spec.Name]; ok {
		sameKey := req.IdempotencyKey != "" && req.IdempotencyKey == c.state.CreateKey
		if sameSpec(c.state.Spec, spec) && (sameKey || c.state.Phase == sdk.ClusterProvisioning) {
			if op, _, ok := p.ops.get(c.state.CreateOp); ok {
				return op, nil
			}
		}
		return sdk.Operation{}, fmt.Errorf("cluster %q exists (%s): %w", spec.Name, c.state.Phase, sdk.ErrAlreadyExists)
	}
	if len(p.clusters) >= p.cfg.MaxClusters {
		return sdk.Operation{}, fmt.Errorf("max_clusters (%d) reached; delete a cluster first: %w", p.cfg.MaxClusters, sdk.ErrFailedPrecondition)
	}
	taken := map[int]bool{}
	for _, c := range p.clusters {
		for _, port := range c.state.Ports.list() {
			taken[port] = true
		}
	}
	pts, err := allocatePorts(p.cfg.PortRangeStart, p.cfg.PortRangeEnd, taken)
	if err != nil {
		return sdk.Operation{}, err
	}
	op, err := p.ops.create(sdk.OperationCreate, spec.Name)
	if err != nil {
		return sdk.Operation{}, err
	}
	now := time.Now().UTC()
	c := &cluster{
		name:  spec.Name,
		ports: pts,
		paths: clusterPaths{dir: filepath.Join(p.clustersDir(), spec.Name)},
		state: clusterState{Spec: spec, Phase: sdk.ClusterProvisioning, Message: "creating", CreatedAt: now, UpdatedAt: now,
			Ports: pts, CreateOp: op.ID, CreateKey: req.IdempotencyKey},
	}
	// A directory left by a create that crashed before writing its state
	// holds nothing worth keeping.
	if err := os.RemoveAll(c.paths.dir); err != nil {
		return sdk.Operation{}, fmt.Errorf("clear %s: %w", c.paths.dir, err)
	}
	for _, d := range []string{c.paths.dir, c.paths.logs(), c.paths.run()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return sdk.Operation{}, fmt.Errorf("create the cluster directory: %w", err)
		}
	}
	if err := saveState(c.paths.dir, c.state); err != nil {
		return sdk.Operation{}, err
	}
	p.clusters[spec.Name] = c
	p.log.Info("creating cluster", "cluster", spec.Name, "operation", op.ID, "ports", fmt.Sprint(pts.list()))
	p.startWorkLocked(c, func(ctx context.Context) { p.runCreate(ctx, c, op.ID) })
	return op, nil
}

// UpdateCluster records new resources. A local control plane has no
// machines to resize, and its version is that of the binaries, so there is
// nothing else to change: the operation succeeds at once.
func (p *provisioner) UpdateCluster(_ context.Context, req sdk.UpdateClusterRequest) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return sdk.Operation{}, err
	}
	c, err := p.clusterLocked(req.Spec.Name)
	if err != nil {
		return sdk.Operation{}, err
	}
	spec, err := normalizeSpec(req.Spec, p.version)
	if err != nil {
		return sdk.Operation{}, err
	}
	if c.state.Phase != sdk.ClusterReady {
		return sdk.Operation{}, fmt.Errorf("cluster %q is %s, not ready: %w", spec.Name, c.state.Phase, sdk.ErrFailedPrecondition)
	}
	op, err := p.ops.create(sdk.OperationUpdate, spec.Name)
	if err != nil {
		return sdk.Operation{}, err
	}
	c.state.Spec = spec
	c.state.UpdatedAt = time.Now().UTC()
	if err := saveState(c.paths.dir, c.state); err != nil {
		return sdk.Operation{}, err
	}
	return p.ops.update(op.ID, func(o *sdk.Operation) {
		o.State = sdk.OperationSucceeded
		o.Progress = sdk.Progress{Stage: "ready", Message: "spec recorded; nothing to change on a local control plane", Percent: 100}
	})
}

func (p *provisioner) clusterLocked(name string) (*cluster, error) {
	c, ok := p.clusters[name]
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", name, sdk.ErrNotFound)
	}
	return c, nil
}

// GetCluster returns a cluster, or ErrNotFound.
func (p *provisioner) GetCluster(_ context.Context, name string) (sdk.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return sdk.Cluster{}, err
	}
	c, err := p.clusterLocked(name)
	if err != nil {
		return sdk.Cluster{}, err
	}
	return c.publicLocked(), nil
}

// ListClusters returns every cluster, by name.
func (p *provisioner) ListClusters(context.Context) ([]sdk.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return nil, err
	}
	out := make([]sdk.Cluster, 0, len(p.clusters))
	for _, c := range p.clusters {
		out = append(out, c.publicLocked())
	}
	slices.SortFunc(out, func(a, b sdk.Cluster) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	return out, nil
}

func (c *cluster) publicLocked() sdk.Cluster {
	msg := c.state.Message
	if c.state.Phase == sdk.ClusterReady {
		// Say so when a supervisor is restarting a process.
		var down []string
		for _, s := range []*supervisor{c.etcd, c.api} {
			if s != nil {
				if _, up := s.running(); !up {
					down = append(down, s.spec.name)
				}
			}
		}
		if len(down) > 0 {
			msg = strings.Join(down, " and ") + " restarting"
		}
	}
	return sdk.Cluster{Spec: c.state.Spec, Phase: c.state.Phase, Message: msg, CreatedAt: c.state.CreatedAt, UpdatedAt: c.state.UpdatedAt}
}

// DeleteCluster starts deleting a cluster: its processes are stopped and
// its directory removed. Deleting a cluster being deleted returns the
// running delete.
func (p *provisioner) DeleteCluster(_ context.Context, req sdk.DeleteClusterRequest) (sdk.Operation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return sdk.Operation{}, err
	}
	c, err := p.clusterLocked(req.Name)
	if err != nil {
		return sdk.Operation{}, err
	}
	if c.state.Phase == sdk.ClusterDeleting {
		if op, _, ok := p.ops.get(c.state.DeleteOp); ok {
			return op, nil
		}
	}
	op, err := p.ops.create(sdk.OperationDelete, req.Name)
	if err != nil {
		return sdk.Operation{}, err
	}
	c.state.Phase, c.state.Message, c.state.DeleteOp = sdk.ClusterDeleting, "deleting", op.ID
	c.state.UpdatedAt = time.Now().UTC()
	if err := saveState(c.paths.dir, c.state); err != nil {
		return sdk.Operation{}, err
	}
	p.log.Info("deleting cluster", "cluster", req.Name, "operation", op.ID)
	go p.runDelete(c, op.ID)
	return op, nil
}

// GetOperation returns an operation, or ErrNotFound.
func (p *provisioner) GetOperation(_ context.Context, id string) (sdk.Operation, error) {
	p.mu.Lock()
	if err := p.readyLocked(); err != nil {
		p.mu.Unlock()
		return sdk.Operation{}, err
	}
	ops := p.ops
	p.mu.Unlock()
	op, _, ok := ops.get(id)
	if !ok {
		return sdk.Operation{}, fmt.Errorf("operation %q: %w", id, sdk.ErrNotFound)
	}
	return op, nil
}

// WatchOperation pushes each change of an operation as it happens.
func (p *provisioner) WatchOperation(ctx context.Context, id string, send func(sdk.Operation) error) error {
	p.mu.Lock()
	if err := p.readyLocked(); err != nil {
		p.mu.Unlock()
		return err
	}
	ops := p.ops
	p.mu.Unlock()
	return ops.watch(ctx, id, send)
}

// GetConnection returns the API endpoint, CA and a kubeconfig of the
// gateway identity (berth-gateway, allowed only to impersonate).
func (p *provisioner) GetConnection(_ context.Context, name string) (sdk.Connection, error) {
	c, creds, err := p.readyCluster(name)
	if err != nil {
		return sdk.Connection{}, err
	}
	server := c.server()
	return sdk.Connection{
		APIEndpoint: server,
		CAPEM:       creds.caPEM,
		Kubeconfig:  kubeconfig(name, server, creds.caPEM, creds.gatewayPEM, creds.gatewayKey, gatewayUser),
	}, nil
}

// GetJoinMaterial returns the endpoint and kubeadm's CA hash, with a new
// bootstrap token made for the request.
func (p *provisioner) GetJoinMaterial(ctx context.Context, req sdk.JoinMaterialRequest) (sdk.JoinMaterial, error) {
	ttl := req.TTL
	switch {
	case ttl < 0:
		return sdk.JoinMaterial{}, fmt.Errorf("token TTL %s is negative: %w", ttl, sdk.ErrInvalidArgument)
	case ttl == 0:
		ttl = defaultTokenTTL
	case ttl > maxTokenTTL:
		return sdk.JoinMaterial{}, fmt.Errorf("token TTL %s is above the maximum %s: %w", ttl, maxTokenTTL, sdk.ErrInvalidArgument)
	}
	c, creds, err := p.readyCluster(req.ClusterName)
	if err != nil {
		return sdk.JoinMaterial{}, err
	}
	k := newKubeClient(c.server(), creds.caPEM, creds.admin)
	token, expires, err := k.bootstrapToken(ctx, ttl, "made by Berth provisioner-local for a node join")
	if err != nil {
		return sdk.JoinMaterial{}, fmt.Errorf("cluster %q: %v: %w", req.ClusterName, err, sdk.ErrRetryable)
	}
	return sdk.JoinMaterial{APIEndpoint: c.server(), CACertHash: creds.caHash, BootstrapToken: token, ExpiresAt: expires}, nil
}

// readyCluster returns a ready cluster and its credentials.
func (p *provisioner) readyCluster(name string) (*cluster, *credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.readyLocked(); err != nil {
		return nil, nil, err
	}
	c, err := p.clusterLocked(name)
	if err != nil {
		return nil, nil, err
	}
	if c.state.Phase != sdk.ClusterReady {
		return nil, nil, fmt.Errorf("cluster %q is %s, not ready: %w", name, c.state.Phase, sdk.ErrFailedPrecondition)
	}
	creds, err := c.credentialsLocked()
	if err != nil {
		return nil, nil, err
	}
	return c, creds, nil
}

func (c *cluster) credentialsLocked() (*credentials, error) {
	if c.creds == nil {
		creds, err := loadCredentials(c.paths.pki())
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c.name, err)
		}
		c.creds = creds
	}
	return c.creds, nil
}

func (c *cluster) server() string {
	return fmt.Sprintf("https://127.0.0.1:%d", c.ports.APIServer)
}

// health is degraded while a ready cluster's process is down.
func (p *provisioner) health(context.Context) sdk.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.configured {
		return sdk.Health{Status: sdk.HealthNotServing, Message: "not configured"}
	}
	var restarting []string
	for name, c := range p.clusters {
		if c.state.Phase == sdk.ClusterReady && c.publicLocked().Message != c.state.Message {
			restarting = append(restarting, name)
		}
	}
	if len(restarting) > 0 {
		slices.Sort(restarting)
		return sdk.Health{Status: sdk.HealthDegraded, Message: "control planes restarting: " + strings.Join(restarting, ", ")}
	}
	return sdk.Health{Status: sdk.HealthServing, Message: fmt.Sprintf("%d clusters", len(p.clusters))}
}

// shutdown runs when the gateway stops the plugin. By default the control
// planes keep running, to be re-adopted by the next plugin process; with
// stop_on_exit they are stopped (their data kept, so the next start
// restarts them). go-plugin gives a plugin 2 seconds before killing it,
// hence the short grace.
func (p *provisioner) shutdown() {
	p.cancel()
	p.mu.Lock()
	stop := p.configured && p.cfg.StopOnExit
	var sups []*supervisor
	for _, c := range p.clusters {
		for _, s := range []*supervisor{c.api, c.etcd} {
			if s != nil {
				sups = append(sups, s)
			}
		}
	}
	p.mu.Unlock()
	if !stop {
		return
	}
	var wg sync.WaitGroup
	for _, s := range sups {
		wg.Go(func() { _ = s.stop(1500 * time.Millisecond) })
	}
	wg.Wait()
}

var versionLine = regexp.MustCompile(`\bv\d+\.\d+\.\d+\b`)

// apiserverVersion runs kube-apiserver --version ("Kubernetes v1.31.14").
func apiserverVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	v := versionLine.FindString(string(out))
	if v == "" {
		return "", errors.New(path + " --version printed no version")
	}
	return v, nil
}
