package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/controlplane"
)

// Settings of the control planes.
const (
	serviceCIDR         = "10.96.0.0/12"
	kubernetesServiceIP = "10.96.0.1"
	// maxStartCrashes is how often a process may die while a create waits
	// for it before the create gives up: a wrong flag or a taken port
	// fails fast instead of at the start timeout.
	maxStartCrashes = 3
	// deleteGrace is how long a process gets to exit on SIGTERM at Delete.
	deleteGrace = 15 * time.Second
)

// Progress stages of a create, with their percentages.
var (
	stageAllocating = sdk.Progress{Stage: "allocating", Percent: 5}
	stagePKI        = sdk.Progress{Stage: "pki", Percent: 15}
	stageEtcd       = sdk.Progress{Stage: "etcd", Percent: 30}
	stageAPIServer  = sdk.Progress{Stage: "apiserver", Percent: 50}
	stageRBAC       = sdk.Progress{Stage: "rbac", Percent: 90}
	stageReady      = sdk.Progress{Stage: "ready", Percent: 100}
)

// runCreate brings a cluster from nothing (or from wherever a crashed
// plugin left it: every step can run again) to ready.
func (p *provisioner) runCreate(ctx context.Context, c *cluster, opID string) {
	name := c.name
	err := p.createSteps(ctx, c, opID)
	if ctx.Err() != nil {
		// Deleted meanwhile (the delete reports), or the plugin is
		// shutting down (the next plugin resumes the create).
		return
	}
	if err != nil {
		p.log.Error("create failed", "cluster", name, "operation", opID, "error", err.Error())
		p.stopProcesses(c, deleteGrace)
		p.setPhase(c, sdk.ClusterFailed, err.Error())
		p.finish(opID, name, err)
		return
	}
	p.setPhase(c, sdk.ClusterReady, "ready")
	p.progress(opID, name, stageReady, "the API server is ready at "+c.server())
	p.finish(opID, name, nil)
	p.log.Info("cluster ready", "cluster", name, "operation", opID, "endpoint", c.server())
}

func (p *provisioner) createSteps(ctx context.Context, c *cluster, opID string) error {
	name := c.name
	pts := c.ports
	p.progress(opID, name, stageAllocating, fmt.Sprintf("ports %d (etcd), %d (etcd peer), %d (API server) on 127.0.0.1", pts.EtcdClient, pts.EtcdPeer, pts.APIServer))

	p.progress(opID, name, stagePKI, "generating the CAs, certificates and service-account keys")
	if _, err := os.Stat(c.paths.pki()); errors.Is(err, os.ErrNotExist) {
		if err := writePKI(c.paths.pki()); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	p.mu.Lock()
	creds, err := c.credentialsLocked()
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	adminPEM, err := os.ReadFile(c.paths.file(fileAdminCert))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	adminKey, err := os.ReadFile(c.paths.file(fileAdminKey))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	// For the operator of the host: kubectl --kubeconfig <dir>/admin.kubeconfig.
	if err := writeFileAtomic(c.paths.adminKubeconfig(), kubeconfig(name, c.server(), creds.caPEM, adminPEM, adminKey, adminUser), 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}

	if err := p.ensureRunning(ctx, c, opID); err != nil {
		return err
	}

	p.progress(opID, name, stageRBAC, "letting "+gatewayUser+" impersonate, binding Berth's roles")
	k := newKubeClient(c.server(), creds.caPEM, creds.admin)
	// RBAC's own bootstrap policy may still be settling just after /readyz:
	// retry until the start timeout.
	return p.retry(ctx, func(ctx context.Context) error { return applyRBAC(ctx, k) })
}

// ensureRunning starts (or adopts) etcd and then the API server, waiting
// for each to be healthy. opID is empty for a restart after a plugin
// restart, which reports no progress.
func (p *provisioner) ensureRunning(ctx context.Context, c *cluster, opID string) error {
	name := c.name
	p.mu.Lock()
	creds, err := c.credentialsLocked()
	p.mu.Unlock()
	if err != nil {
		return err
	}

	p.progress(opID, name, stageEtcd, "starting etcd")
	etcd, err := p.supervise(c, p.etcdSpec(c), func(s *supervisor) { c.etcd = s })
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", c.ports.EtcdClient)
	etcdHTTP := controlplane.HTTPClient(creds.etcdCAPEM, creds.etcdClient)
	if err := p.waitHealthy(ctx, etcd, func(ctx context.Context) error { return controlplane.EtcdHealthy(ctx, etcdHTTP, etcdURL) }); err != nil {
		return fmt.Errorf("etcd did not become healthy: %w", err)
	}
	p.progress(opID, name, sdk.Progress{Stage: "etcd", Percent: 45}, "etcd is healthy")

	p.progress(opID, name, stageAPIServer, "starting kube-apiserver")
	api, err := p.supervise(c, p.apiserverSpec(c), func(s *supervisor) { c.api = s })
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	apiHTTP := controlplane.HTTPClient(creds.caPEM, creds.admin)
	if err := p.waitHealthy(ctx, api, func(ctx context.Context) error { return controlplane.APIServerReady(ctx, apiHTTP, c.server(), "") }); err != nil {
		return fmt.Errorf("kube-apiserver did not become ready: %w", err)
	}
	p.progress(opID, name, sdk.Progress{Stage: "apiserver", Percent: 85}, "kube-apiserver is ready")
	return nil
}

// supervise starts a supervisor for spec unless the cluster has one, and
// records it with set.
func (p *provisioner) supervise(c *cluster, spec procSpec, set func(*supervisor)) (*supervisor, error) {
	p.mu.Lock()
	existing := c.etcd
	if spec.name == "kube-apiserver" {
		existing = c.api
	}
	p.mu.Unlock()
	if existing != nil {
		return existing, nil
	}
	name := c.name
	s := newSupervisor(spec, p.log.With("cluster", name), func(pid int) {
		p.emit(sdk.Event{Type: "cluster.process.restarted", Subject: name, Message: spec.name + " died and was restarted",
			Attributes: map[string]string{"cluster": name, "process": spec.name, "pid": strconv.Itoa(pid)}})
	})
	adopted, err := s.start()
	if err != nil {
		return nil, err
	}
	if adopted {
		pid, _ := s.running()
		p.emit(sdk.Event{Type: "cluster.process.adopted", Subject: name, Message: spec.name + " was running and has been re-adopted",
			Attributes: map[string]string{"cluster": name, "process": spec.name, "pid": strconv.Itoa(pid)}})
	}
	p.mu.Lock()
	set(s)
	p.mu.Unlock()
	return s, nil
}

func (p *provisioner) etcdSpec(c *cluster) procSpec {
	f := c.paths.file
	p.mu.Lock()
	path := p.bins.Etcd
	p.mu.Unlock()
	etcd := controlplane.Etcd{
		Name:          c.name,
		DataDir:       c.paths.etcdData(),
		ClientURL:     fmt.Sprintf("https://127.0.0.1:%d", c.ports.EtcdClient),
		PeerURL:       fmt.Sprintf("https://127.0.0.1:%d", c.ports.EtcdPeer),
		CertFile:      f(fileEtcdCert),
		KeyFile:       f(fileEtcdKey),
		TrustedCAFile: f(fileEtcdCACert),
		// Fewer entries between snapshots: far less memory for a small
		// cluster than etcd 3.4's default of 100 000.
		Extra: []string{"--snapshot-count=10000"},
	}
	return procSpec{
		name:    "etcd",
		path:    path,
		args:    etcd.Args(),
		marker:  etcd.DataDirArg(),
		pidFile: filepath.Join(c.paths.run(), "etcd.pid"),
		logFile: filepath.Join(c.paths.logs(), "etcd.log"),
	}
}

func (p *provisioner) apiserverSpec(c *cluster) procSpec {
	f := c.paths.file
	p.mu.Lock()
	path := p.bins.KubeAPIServer
	p.mu.Unlock()
	api := controlplane.APIServer{
		EtcdURL:               fmt.Sprintf("https://127.0.0.1:%d", c.ports.EtcdClient),
		EtcdCAFile:            f(fileEtcdCACert),
		EtcdCertFile:          f(fileEtcdClientCert),
		EtcdKeyFile:           f(fileEtcdClientKey),
		Port:                  c.ports.APIServer,
		CertDir:               c.paths.certDir(),
		CertFile:              f(fileServingCert),
		KeyFile:               f(fileServingKey),
		ClientCAFile:          f(fileCACert),
		ServiceAccountKeyFile: f(fileSAKey),
		ServiceAccountPubFile: f(fileSAPub),
		ServiceCIDR:           serviceCIDR,
	}
	return procSpec{
		name:    "kube-apiserver",
		path:    path,
		args:    api.Args(),
		marker:  api.CertFileArg(),
		pidFile: filepath.Join(c.paths.run(), "kube-apiserver.pid"),
		logFile: filepath.Join(c.paths.logs(), "kube-apiserver.log"),
	}
}

// waitHealthy polls check until it passes, the start timeout passes, or
// the process crashes maxStartCrashes times (its supervisor restarts it
// meanwhile).
func (p *provisioner) waitHealthy(ctx context.Context, s *supervisor, check func(context.Context) error) error {
	start := s.deathCount()
	return p.retry(ctx, func(ctx context.Context) error {
		if n := s.deathCount() - start; n >= maxStartCrashes {
			return controlplane.Permanent(fmt.Errorf("%s died %d times while starting; see %s", s.spec.name, n, s.spec.logFile))
		}
		return check(ctx)
	})
}

// retry polls fn (see controlplane.Poll) until the start timeout.
func (p *provisioner) retry(ctx context.Context, fn func(context.Context) error) error {
	p.mu.Lock()
	timeout := time.Duration(p.cfg.StartTimeoutSec) * time.Second
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return controlplane.Poll(ctx, fn)
}

// runRestart brings a ready cluster's processes back after a plugin
// restart: re-adopted when still running, restarted from their data
// otherwise.
func (p *provisioner) runRestart(ctx context.Context, c *cluster) {
	name := c.name
	if err := p.ensureRunning(ctx, c, ""); err != nil {
		if ctx.Err() == nil {
			// The supervisors keep trying; the cluster's message says so.
			p.log.Error("cluster did not come back", "cluster", name, "error", err.Error())
		}
		return
	}
	p.log.Info("cluster running", "cluster", name)
}

// runDelete stops a cluster's processes and removes its directory.
func (p *provisioner) runDelete(c *cluster, opID string) {
	name := c.name
	p.mu.Lock()
	work, cancel := c.work, c.cancelWork
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-work
	}
	p.progress(opID, name, sdk.Progress{Stage: "stopping", Percent: 20}, "stopping kube-apiserver and etcd")
	p.stopProcesses(c, deleteGrace)
	p.progress(opID, name, sdk.Progress{Stage: "removing", Percent: 70}, "removing the cluster's data")
	if err := os.RemoveAll(c.paths.dir); err != nil {
		p.log.Error("delete failed", "cluster", name, "error", err.Error())
		p.setPhase(c, sdk.ClusterFailed, "delete failed: "+err.Error())
		p.finish(opID, name, fmt.Errorf("remove the cluster's data: %w", err))
		return
	}
	p.mu.Lock()
	if p.clusters[name] == c {
		delete(p.clusters, name)
	}
	p.mu.Unlock()
	p.progress(opID, name, sdk.Progress{Stage: "deleted", Percent: 100}, "cluster deleted")
	p.finish(opID, name, nil)
	p.log.Info("cluster deleted", "cluster", name, "operation", opID)
}

// stopProcesses stops the API server and then etcd. Processes without a
// supervisor (a failed cluster after a plugin restart) are found through
// their pid files.
func (p *provisioner) stopProcesses(c *cluster, grace time.Duration) {
	p.mu.Lock()
	api, etcd := c.api, c.etcd
	c.api, c.etcd = nil, nil
	p.mu.Unlock()
	for _, pair := range []struct {
		s    *supervisor
		spec procSpec
	}{{api, p.apiserverSpec(c)}, {etcd, p.etcdSpec(c)}} {
		s := pair.s
		if s == nil {
			s = newSupervisor(pair.spec, p.log, nil)
			pid, ok := s.adoptable()
			if !ok {
				continue
			}
			s.adopt(pid)
			close(s.loopDone) // never started its loop
		}
		if err := s.stop(grace); err != nil {
			p.log.Error("stopping a process failed", "cluster", c.name, "error", err.Error())
		}
	}
}

// setPhase records a cluster's phase and message.
func (p *provisioner) setPhase(c *cluster, phase sdk.ClusterPhase, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.state.Phase, c.state.Message, c.state.UpdatedAt = phase, msg, time.Now().UTC()
	if err := saveState(c.paths.dir, c.state); err != nil {
		p.log.Error("saving cluster state failed", "cluster", c.name, "error", err.Error())
	}
}

// progress records a stage of an operation and emits it to the host.
// Without an operation (a restart) it does nothing.
func (p *provisioner) progress(opID, cluster string, pr sdk.Progress, msg string) {
	if opID == "" {
		return
	}
	pr.Message = msg
	if _, err := p.ops.update(opID, func(o *sdk.Operation) { o.Progress = pr }); err != nil {
		p.log.Error("recording progress failed", "operation", opID, "error", err.Error())
	}
	p.emit(sdk.Event{Type: "operation.progress", Subject: opID, Message: msg, Progress: &pr,
		Attributes: map[string]string{"cluster": cluster, "stage": pr.Stage}})
}

// finish ends an operation, successfully when err is nil.
func (p *provisioner) finish(opID, cluster string, err error) {
	op, uerr := p.ops.update(opID, func(o *sdk.Operation) {
		if err != nil {
			o.State, o.Error = sdk.OperationFailed, err.Error()
		} else {
			o.State = sdk.OperationSucceeded
		}
	})
	if uerr != nil {
		p.log.Error("finishing the operation failed", "operation", opID, "error", uerr.Error())
		return
	}
	ev := sdk.Event{Type: "operation." + string(op.State), Subject: opID, Message: op.Error,
		Attributes: map[string]string{"cluster": cluster, "kind": string(op.Kind)}}
	if ev.Message == "" {
		ev.Message = string(op.Kind) + " of " + cluster + " " + string(op.State)
	}
	p.emit(ev)
}

// emit sends an event to the host. The host may offer no event service
// (some tests) or be slow; neither may hold up the work, so errors are
// only logged.
func (p *provisioner) emit(ev sdk.Event) {
	p.mu.Lock()
	events := p.host.Events
	p.mu.Unlock()
	if events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := events.Emit(ctx, ev); err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
		p.log.Debug("emitting an event failed", "type", ev.Type, "error", err.Error())
	}
}
