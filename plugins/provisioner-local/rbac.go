package main

import (
	"context"
	"fmt"
)

// The RBAC of deploy/rbac/berth-rbac.yaml, with the gateway's user filled
// in: the gateway may impersonate users, groups and the extras it sends,
// and nothing else; and Berth's member roles map onto the built-in
// ClusterRoles. Keep the two in step.

const rbacPath = "/apis/rbac.authorization.k8s.io/v1"

type rbacObject struct {
	collection string
	name       string
	obj        map[string]any
}

func rbacObjects() []rbacObject {
	impersonator := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRole",
		"metadata":   map[string]any{"name": "berth-impersonator"},
		"rules": []any{
			map[string]any{"apiGroups": []string{""}, "resources": []string{"users", "groups"}, "verbs": []string{"impersonate"}},
			map[string]any{
				"apiGroups": []string{"authentication.k8s.io"},
				"resources": []string{
					"userextras/berth.dev/client-ip",
					"userextras/berth.dev/auth-method",
					"userextras/berth.dev/request-id",
				},
				"verbs": []string{"impersonate"},
			},
		},
	}
	objs := []rbacObject{
		{rbacPath + "/clusterroles", "berth-impersonator", impersonator},
		{rbacPath + "/clusterrolebindings", "berth-impersonator", binding("berth-impersonator", "berth-impersonator", "User", gatewayUser)},
	}
	for _, role := range []string{"view", "edit", "admin", "cluster-admin"} {
		name := "berth-role-" + role
		objs = append(objs, rbacObject{rbacPath + "/clusterrolebindings", name, binding(name, role, "Group", "berth:role:"+role)})
	}
	return objs
}

func binding(name, role, kind, subject string) map[string]any {
	return map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRoleBinding",
		"metadata":   map[string]any{"name": name},
		"roleRef":    map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
		"subjects":   []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}},
	}
}

// applyRBAC applies rbacObjects to a cluster.
func applyRBAC(ctx context.Context, k *kubeClient) error {
	for _, o := range rbacObjects() {
		if err := k.apply(ctx, o.collection, o.name, o.obj); err != nil {
			return fmt.Errorf("apply %s %s: %w", o.obj["kind"], o.name, err)
		}
	}
	return nil
}
