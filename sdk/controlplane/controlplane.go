// Package controlplane runs a single-node Kubernetes control plane, etcd and
// kube-apiserver, on the loopback interface: its key material, the two
// command lines, the processes (each leading its own process group) and the
// checks that they are healthy.
//
// It is a helper for provisioner plugins that run control planes on their
// own host (Berth's provisioner-local) and for tests that need a genuine API
// server (Berth's deploy/e2e/kubeenv). It uses only the standard library, so
// importing it adds nothing to a plugin's dependencies. What to run, with
// which identities, and whether to restart or re-adopt processes is the
// caller's business.
package controlplane

import "time"

// PinnedVersion is the Kubernetes version whose kube-apiserver and kubectl
// Berth's deploy/e2e/build-k8s.sh builds into CacheBinDir.
const PinnedVersion = "v1.31.14"

// ServiceAccountIssuer is the --service-account-issuer of the API servers
// started with APIServer: the in-cluster name of the kubernetes Service.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// pollInterval and callTimeout pace Poll.
const (
	pollInterval = 250 * time.Millisecond
	callTimeout  = 10 * time.Second
)
