package gateway

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kubectlDiscoveryTTL is how long kubectl trusts its discovery cache
// (k8s.io/cli-runtime's ConfigFlags, 6 hours in v1.31).
const kubectlDiscoveryTTL = 6 * time.Hour

// kubectlCacheDir is the --cache-dir kubectlCmd gives kubeconfig.
func (e *e2eCluster) kubectlCacheDir(kubeconfig string) string {
	return filepath.Join(e.dir, "kubectl-cache", filepath.Base(kubeconfig))
}

// expireDiscovery ages kubectl's discovery cache for kubeconfig past its
// TTL, as time does, keeping its HTTP cache: the next kubectl revalidates
// every discovery document with If-None-Match and gets 304s, whose
// headers its HTTP cache merges into the cached documents.
func (e *e2eCluster) expireDiscovery(t *testing.T, kubeconfig string) {
	t.Helper()
	old := time.Now().Add(-kubectlDiscoveryTTL - time.Hour)
	dir := filepath.Join(e.kubectlCacheDir(kubeconfig), "discovery")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(path, old, old)
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("expire kubectl's discovery cache: %v", err)
	}
}

// readOnlyKubectl reports whether args run a kubectl command that changes
// nothing and ends by itself, so running it twice must give the same
// outcome.
func readOnlyKubectl(args []string) bool {
	verbs := []string{"get", "describe", "auth", "api-resources", "api-versions", "explain", "version", "wait"}
	writes := []string{"create", "apply", "patch", "delete", "replace", "edit", "label", "annotate", "scale", "exec", "attach", "port-forward", "proxy", "cp", "run", "expose", "rollout", "drain", "cordon", "uncordon", "taint", "set"}
	for _, a := range args {
		if slices.Contains(writes, a) {
			return false
		}
		if slices.Contains(verbs, a) {
			return !slices.Contains(args, "-w") && !slices.Contains(args, "--watch")
		}
	}
	return false
}

// sameOutcome says whether two runs of one read-only kubectl command
// agree: both succeed or both fail, with as many lines of output (ages
// and timestamps may move; a discovery cache that lost its resources
// prints only a header, or fails).
func sameOutcome(out1 string, err1 error, out2 string, err2 error) bool {
	if err1 != nil || err2 != nil {
		// Both must fail alike. The words differ: with its discovery
		// expired, kubectl rediscovers first and words the refusal in
		// client-go's generic text, so only kubectl's own error line,
		// up to the server's reason in parentheses, is compared.
		return err1 != nil && err2 != nil && err1.Error() == err2.Error() && kubectlError(out1) == kubectlError(out2)
	}
	return strings.Count(out1, "\n") == strings.Count(out2, "\n")
}

// kubectlError is what kubectl says of a failure in out: the reason of an
// "Error from server (Reason): …" line, or an "error: …" line without the
// server's words in parentheses after it.
func kubectlError(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Error from server") {
			reason, _, _ := strings.Cut(line, ": ") // "Error from server (NotFound)"
			return reason
		}
		if strings.HasPrefix(line, "error: ") {
			msg, _, _ := strings.Cut(line, " (")
			return msg
		}
	}
	return ""
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.berth.dev}
spec:
  group: example.berth.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// kubectl through Berth with one cache directory, as a user's
// ~/.kube/cache: a listing, then api-resources (which rereads discovery
// through the HTTP cache: 304s), a new CRD, api-resources again, and the
// plain resources still resolve. Berth once added a Content-Type to 304s,
// which kubectl's HTTP cache merged into the cached discovery document:
// api-resources printed only its header and `get pods` failed with "the
// server doesn't have a resource type".
func TestKubectlDiscoveryCacheAcrossRuns(t *testing.T) {
	e := startE2E(t)
	kc := e.kubeconfigFor(t, "admin", e.admin)
	run := func(args ...string) string {
		t.Helper()
		out, err := e.kubectlOnce(kc, "", args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	hasResource := func(out, name string) bool {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name {
				return true
			}
		}
		return false
	}

	run("get", "deploy", "-A")
	if out := run("api-resources"); !hasResource(out, "pods") || !hasResource(out, "deployments") {
		t.Fatalf("api-resources after a listing, same cache:\n%s", out)
	}
	run("get", "pods", "-A")

	run("apply", "-f", writeTemp(t, e.dir, "crd.yaml", widgetCRD))
	run("wait", "--for=condition=established", "--timeout=60s", "crd/widgets.example.berth.dev")
	if out := run("api-resources"); !hasResource(out, "widgets") || !hasResource(out, "pods") {
		t.Fatalf("api-resources after a new CRD, same cache:\n%s", out)
	}
	run("get", "widgets", "-A")
	run("get", "pods", "-A")

	// The cache expires, as it does after six hours: every document is
	// revalidated (304) and must still read.
	e.expireDiscovery(t, kc)
	run("get", "pods", "-A")
	if out := run("api-resources"); !hasResource(out, "widgets") || !hasResource(out, "pods") {
		t.Fatalf("api-resources after the discovery cache expired:\n%s", out)
	}
	e.expireDiscovery(t, kc)
	run("get", "widgets", "-A")
}
