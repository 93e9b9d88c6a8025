package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// The RBAC of deploy/rbac/berth-rbac.yaml, with the gateway's user filled
// in: the gateway may impersonate users, groups and the extras it sends,
// and read nodes (for the node history it records as itself), and nothing
// else; and Berth's member roles map onto the built-in ClusterRoles. Keep
// the two in step.

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
					"userextras/berth.dev/impersonator",
				},
				"verbs": []string{"impersonate"},
			},
			map[string]any{"apiGroups": []string{""}, "resources": []string{"nodes"}, "verbs": []string{"get", "list", "watch"}},
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
	return aggregateRoles(ctx, k)
}

// aggregateRoles fills in the rules of the aggregated ClusterRoles admin,
// edit and view, which Berth's role bindings point at. In a full cluster
// kube-controller-manager's clusterrole-aggregation controller does this;
// these control planes run no controller-manager, so without it the three
// roles would grant nothing. It is a one-shot copy made at create: roles
// labelled for aggregation later are not picked up.
func aggregateRoles(ctx context.Context, k *kubeClient) error {
	data, err := k.do(ctx, http.MethodGet, rbacPath+"/clusterroles", "", nil)
	if err != nil {
		return fmt.Errorf("list ClusterRoles: %w", err)
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("decode ClusterRoles: %w", err)
	}
	byName := map[string]map[string]any{}
	for _, r := range list.Items {
		byName[nameOf(r)] = r
	}
	// view is aggregated into edit, and edit into admin: in this order
	// each sees the rules the previous one just got.
	for _, name := range []string{"view", "edit", "admin"} {
		role, ok := byName[name]
		if !ok {
			return fmt.Errorf("ClusterRole %s is missing", name)
		}
		var rules []any
		seen := map[string]bool{}
		for _, sel := range selectors(role) {
			for _, other := range list.Items {
				if nameOf(other) == name || !labelsMatch(other, sel) {
					continue
				}
				otherRules, _ := other["rules"].([]any)
				for _, rule := range otherRules {
					key, _ := json.Marshal(rule)
					if !seen[string(key)] {
						seen[string(key)] = true
						rules = append(rules, rule)
					}
				}
			}
		}
		role["rules"] = rules
		body, err := json.Marshal(role)
		if err != nil {
			return fmt.Errorf("encode ClusterRole %s: %w", name, err)
		}
		out, err := k.do(ctx, http.MethodPut, rbacPath+"/clusterroles/"+name, "application/json", body)
		if err != nil {
			return fmt.Errorf("update ClusterRole %s: %w", name, err)
		}
		var updated map[string]any
		if err := json.Unmarshal(out, &updated); err == nil {
			for i := range list.Items {
				if nameOf(list.Items[i]) == name {
					list.Items[i] = updated
				}
			}
		}
	}
	return nil
}

func nameOf(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	return name
}

// selectors returns the matchLabels of a role's aggregationRule (the
// bootstrap roles use no matchExpressions).
func selectors(role map[string]any) []map[string]any {
	ar, _ := role["aggregationRule"].(map[string]any)
	sels, _ := ar["clusterRoleSelectors"].([]any)
	var out []map[string]any
	for _, s := range sels {
		sm, _ := s.(map[string]any)
		if ml, ok := sm["matchLabels"].(map[string]any); ok && len(ml) > 0 {
			out = append(out, ml)
		}
	}
	return out
}

func labelsMatch(obj map[string]any, want map[string]any) bool {
	md, _ := obj["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}
