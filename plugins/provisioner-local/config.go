package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/berthgw/berth/sdk/controlplane"
)

// Config is the plugin's configuration, decoded by sdk.DecodeConfig.
type Config struct {
	DataDir           string `json:"data_dir" berth:"required,description=Absolute directory holding every cluster's PKI, etcd data, logs and pid files, and the operations; it must survive plugin restarts"`
	EtcdPath          string `json:"etcd_path" berth:"description=etcd binary; empty means PATH, then ~/.cache/berth/k8s/v1.31.14/bin"`
	KubeAPIServerPath string `json:"kube_apiserver_path" berth:"description=kube-apiserver binary; empty means PATH, then ~/.cache/berth/k8s/v1.31.14/bin"`
	MaxClusters       int    `json:"max_clusters" berth:"min=1,max=64,default=4,description=How many clusters may exist at once (each runs an etcd and a kube-apiserver, about 300 MB of memory)"`
	PortRangeStart    int    `json:"port_range_start" berth:"min=1024,max=65535,default=17000,description=First port on 127.0.0.1 the plugin may give a cluster (three per cluster); keep the range out of the kernel's ephemeral ports (32768-60999 on Linux), which outgoing connections take at random"`
	PortRangeEnd      int    `json:"port_range_end" berth:"min=1024,max=65535,default=17999,description=Last port on 127.0.0.1 the plugin may give a cluster"`
	StartTimeoutSec   int    `json:"start_timeout_seconds" berth:"min=10,max=3600,default=300,description=How long creating a cluster may wait for etcd and for the API server's /readyz"`
	StopOnExit        bool   `json:"stop_on_exit" berth:"description=Stop every control plane when the gateway shuts the plugin down (data is kept, and the next start restarts them). Off by default: control planes outlive the plugin and are re-adopted"`
}

// Validate checks what the tags cannot say.
func (c Config) Validate() error {
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("field \"data_dir\": %q is not an absolute path", c.DataDir)
	}
	if c.PortRangeEnd < c.PortRangeStart {
		return fmt.Errorf("field \"port_range_end\": %d is below port_range_start %d", c.PortRangeEnd, c.PortRangeStart)
	}
	if n := c.PortRangeEnd - c.PortRangeStart + 1; n < portsPerCluster*c.MaxClusters {
		return fmt.Errorf("field \"port_range_end\": the range holds %d ports but max_clusters %d needs %d", n, c.MaxClusters, portsPerCluster*c.MaxClusters)
	}
	for field, p := range map[string]string{"etcd_path": c.EtcdPath, "kube_apiserver_path": c.KubeAPIServerPath} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("field %q: %q is not an absolute path", field, p)
		}
	}
	return nil
}

// binaries are the programs a cluster runs.
type binaries struct {
	Etcd          string
	KubeAPIServer string
}

// findBinaries resolves the configured paths, else looks on PATH, else in
// build-k8s.sh's cache. The gateway hands plugins only the environment
// variables its configuration allows, so PATH and HOME may well be unset:
// operators should configure the paths.
func findBinaries(c Config) (binaries, error) {
	var errs []error
	find := func(field, configured, name string) string {
		if configured != "" {
			if err := controlplane.CheckExecutable(configured); err != nil {
				errs = append(errs, fmt.Errorf("field %q: %w", field, err))
				return ""
			}
			return configured
		}
		p, err := controlplane.Find(name, controlplane.InPATH, controlplane.InCache)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %q: %w; set the path, or run deploy/e2e/build-k8s.sh", field, err))
		}
		return p
	}
	b := binaries{
		Etcd:          find("etcd_path", c.EtcdPath, "etcd"),
		KubeAPIServer: find("kube_apiserver_path", c.KubeAPIServerPath, "kube-apiserver"),
	}
	return b, errors.Join(errs...)
}
