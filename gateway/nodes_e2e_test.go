package gateway

import (
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
)

const nodesManifest = `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Node, metadata: {name: node-1, labels: {node-role.kubernetes.io/worker: ""}}}
- {apiVersion: v1, kind: Node, metadata: {name: node-2}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: work}
- apiVersion: v1
  kind: Pod
  metadata: {name: app-a, namespace: work}
  spec: {nodeName: node-1, terminationGracePeriodSeconds: 0, containers: [{name: c, image: busybox}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: app-b, namespace: work}
  spec: {nodeName: node-1, terminationGracePeriodSeconds: 0, containers: [{name: c, image: busybox}]}
- apiVersion: v1
  kind: Pod
  metadata:
    name: agent
    namespace: work
    ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: 00000000-0000-0000-0000-000000000001}]
  spec: {nodeName: node-1, terminationGracePeriodSeconds: 0, containers: [{name: c, image: busybox}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: guarded, namespace: work, labels: {app: guarded}}
  spec: {nodeName: node-1, terminationGracePeriodSeconds: 0, containers: [{name: c, image: busybox}]}
- apiVersion: policy/v1
  kind: PodDisruptionBudget
  metadata: {name: guarded, namespace: work}
  spec: {minAvailable: 1, selector: {matchLabels: {app: guarded}}}
`

// Node list, cordon, uncordon and drain against Node objects in a real
// API server (no kubelet runs: the pods are bound to the nodes but never
// start). The PodDisruptionBudget is honoured: with no disruption
// controller it never allows one, so its pod stays and the drain times out.
func TestNodesEndToEnd(t *testing.T) {
	e := startE2E(t)
	akc := e.kubeconfigFor(t, "admin", e.admin)
	e.mustKubectl(t, akc, nodesManifest, "apply", "-f", "-")
	// The Eviction API ignores budgets for Pending pods, and no kubelet
	// runs here to start any: report the guarded pod Running, as a kubelet
	// would.
	e.mustKubectl(t, akc, "", "-n", "work", "patch", "pod", "guarded", "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`)

	list := e.must(t, 200, "GET", "/api/v1/clusters/e2e/nodes", nil, bearer(e.admin))
	if !strings.Contains(string(list), `"name":"node-1"`) || !strings.Contains(string(list), `"roles":["worker"]`) || !strings.Contains(string(list), `"total":2`) {
		t.Fatalf("nodes: %s", list)
	}
	if status, _, _ := e.call(t, "GET", "/api/v1/clusters/e2e/nodes/nope", nil, bearer(e.admin)); status != 404 {
		t.Errorf("unknown node: %d", status)
	}

	e.must(t, 200, "POST", "/api/v1/clusters/e2e/nodes/node-2/cordon", nil, bearer(e.admin))
	if out := e.mustKubectl(t, akc, "", "get", "node", "node-2", "-o", "jsonpath={.spec.unschedulable}"); out != "true" {
		t.Errorf("after cordon: %q", out)
	}
	e.must(t, 200, "POST", "/api/v1/clusters/e2e/nodes/node-2/uncordon", nil, bearer(e.admin))
	if out := e.mustKubectl(t, akc, "", "get", "node", "node-2", "-o", "jsonpath={.spec.unschedulable}"); out != "" && out != "false" {
		t.Errorf("after uncordon: %q", out)
	}

	// The PDB blocks one pod: the drain evicts the rest, then times out.
	status, body, _ := e.call(t, "POST", "/api/v1/clusters/e2e/nodes/node-1/drain", map[string]any{"timeout_seconds": 3}, bearer(e.admin))
	if status != 504 {
		t.Fatalf("drain with a blocking PDB: %d %s", status, body)
	}
	pods := e.mustKubectl(t, akc, "", "-n", "work", "get", "pods", "-o", "name")
	if strings.Contains(pods, "app-a") || strings.Contains(pods, "app-b") || !strings.Contains(pods, "guarded") || !strings.Contains(pods, "agent") {
		t.Fatalf("after blocked drain: %s", pods)
	}
	if out := e.mustKubectl(t, akc, "", "get", "node", "node-1", "-o", "jsonpath={.spec.unschedulable}"); out != "true" {
		t.Errorf("drained node not cordoned: %q", out)
	}
	// Without the PDB the drain completes; the DaemonSet pod stays.
	e.mustKubectl(t, akc, "", "-n", "work", "delete", "pdb", "guarded")
	res := e.must(t, 200, "POST", "/api/v1/clusters/e2e/nodes/node-1/drain", map[string]any{"timeout_seconds": 30}, bearer(e.admin))
	if !strings.Contains(string(res), "work/guarded") || !strings.Contains(string(res), "work/agent (DaemonSet pod)") {
		t.Errorf("drain result: %s", res)
	}
	if status, _, _ := e.call(t, "POST", "/api/v1/clusters/e2e/nodes/node-1/drain", map[string]any{"timeout_seconds": 99999}, bearer(e.admin)); status != 400 {
		t.Errorf("bad timeout: %d", status)
	}

	// A view member may look but the cluster refuses their cordon.
	e.createUser(t, e.admin, "vic", "vic-password-12345", "user")
	e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": "vic", "role": "view"}, bearer(e.admin))
	vic := e.login(t, "vic", "vic-password-12345").AccessToken
	if status, body, _ := e.call(t, "POST", "/api/v1/clusters/e2e/nodes/node-2/cordon", nil, bearer(vic)); status != 403 || !strings.Contains(string(body), "berth:vic") {
		t.Errorf("view member's cordon: %d %s", status, body)
	}
	if !e.hasEvent(t, "node", "node.drain", audit.ResultSuccess) || !e.hasEvent(t, "node", "node.cordon", audit.ResultFailure) {
		t.Error("node operations not audited")
	}
}
