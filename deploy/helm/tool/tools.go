//go:build tools

// Package tools pins the Helm that Berth's chart tests run. It is never
// compiled into Berth: the chart test (deploy/helm/chart_test.go) and
// `make helm` build helm.sh/helm/v4/cmd/helm from this module, so go.mod and
// go.sum fix every dependency. It is its own module because Helm needs
// newer k8s.io modules than the gateway's.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
