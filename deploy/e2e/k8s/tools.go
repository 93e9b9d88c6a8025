//go:build tools

// Package tools pins the Kubernetes binaries Berth's end-to-end tests run
// against. It is never compiled into Berth: build-k8s.sh builds
// k8s.io/kubernetes/cmd/kube-apiserver and k8s.io/kubernetes/cmd/kubectl
// from this module so that go.mod and go.sum fix every dependency.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
