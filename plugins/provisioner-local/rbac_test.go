package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// The gateway identity's ClusterRole here and in
// deploy/rbac/berth-rbac.yaml grant the same things: impersonation, and
// reading nodes for the gateway's node history. The manifest is checked by
// text (this module may not depend on a YAML parser for a test): every
// resource and verb granted here must be named there.
func TestRBACImpersonatorMatchesManifest(t *testing.T) {
	manifest, err := os.ReadFile("../../deploy/rbac/berth-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	role, _, _ := strings.Cut(string(manifest), "\n---")
	var got []string
	for _, o := range rbacObjects() {
		if o.obj["kind"] != "ClusterRole" || o.name != "berth-impersonator" {
			continue
		}
		for _, r := range o.obj["rules"].([]any) {
			rule := r.(map[string]any)
			res, verbs := rule["resources"].([]string), rule["verbs"].([]string)
			for _, name := range append(slices.Clone(res), verbs...) {
				if !strings.Contains(role, `"`+name+`"`) {
					t.Errorf("%q is granted here but not in the manifest's berth-impersonator", name)
				}
			}
			got = append(got, strings.Join(rule["apiGroups"].([]string), ",")+"/"+strings.Join(res, ",")+":"+strings.Join(verbs, ","))
		}
	}
	want := []string{
		"/users,groups:impersonate",
		"authentication.k8s.io/userextras/berth.dev/client-ip,userextras/berth.dev/auth-method,userextras/berth.dev/request-id,userextras/berth.dev/impersonator:impersonate",
		"/nodes:get,list,watch",
	}
	if !slices.Equal(got, want) {
		t.Errorf("berth-impersonator rules:\n%q\nwant\n%q", got, want)
	}
}
