// Command provisioner-local is a Berth provisioner plugin that creates real
// Kubernetes control planes on the gateway's own host, so that one machine
// can run a whole demo and tests can exercise real clusters.
//
// For each cluster it allocates three loopback ports, generates a PKI (a
// CA, the API server's serving certificate, admin and gateway client
// certificates, a separate etcd CA, service-account keys), runs etcd and
// kube-apiserver as supervised processes, waits for /readyz, lets the
// gateway identity (berth-gateway) impersonate, and hands back a
// kubeconfig for that identity. Control planes outlive the plugin: a
// restarted plugin re-adopts them from their pid files, or restarts them
// from their data. Delete stops them and removes their data.
//
// It uses nothing of Berth but the SDK. See docs/provisioners.md.
package main

import (
	"github.com/berthgw/berth/sdk"
)

// version is the plugin's semantic version.
const version = "0.1.0"

func options(p *provisioner) sdk.Options {
	return sdk.Options{
		Name:        "provisioner-local",
		Version:     version,
		Config:      sdk.TypedConfig(p.configure),
		Health:      p.health,
		Provisioner: p,
		Logger:      p.log,
	}
}

func main() {
	p := newProvisioner(sdk.NewLogger("provisioner-local"))
	sdk.Serve(options(p))
	// The gateway asked the plugin to stop (or closed its connection).
	p.shutdown()
}
