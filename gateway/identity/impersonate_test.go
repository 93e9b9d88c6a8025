package identity

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/fault"
)

// Who may act as whom (kubectl --as): the permission, a scoped key, system
// names, unknown, disabled and id-named users, and a target holding more
// than the caller. Every refusal is 403, and names its reason.
func TestImpersonate(t *testing.T) {
	now := time.Now()
	s, _ := newTestService(t, &now, eventSettings)
	ctx := context.Background()
	mk := func(name string, roles, groups []string) *User {
		u, err := s.CreateUser(ctx, grantAdmin, NewUser{Username: name, Password: name + "-long-password-1", Roles: roles, Groups: groups}, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if _, err := s.PutRole(ctx, grantAdmin, Role{Name: "support", Permissions: []string{PermClustersRead, PermUsersImpersonate}}, true, Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRole(ctx, grantAdmin, Role{Name: "auditor", Permissions: []string{PermClustersRead, PermAuditRead}}, true, Meta{}); err != nil {
		t.Fatal(err)
	}
	bob := mk("Bob", []string{RoleUser}, []string{"devs", "ops"})
	mk("root2", []string{RoleAdmin}, nil)
	mk("aud", []string{"auditor"}, nil)
	gone := mk("gone", []string{RoleUser}, nil)
	disabled := StatusDisabled
	if _, err := s.UpdateUser(ctx, grantAdmin, gone.ID, UserChanges{Status: &disabled}, Meta{}); err != nil {
		t.Fatal(err)
	}
	principal := func(name string) *Principal {
		u, err := s.UserByName(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.UserPrincipal(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	admin := &Principal{UserID: "usr_admin", Username: "admin", Permissions: []string{PermAll}, AuthMethod: MethodPassword}
	mk("helper", []string{"support"}, nil)
	support := principal("helper")
	plain := principal("bob")
	kubeconfigKey := *admin
	kubeconfigKey.AuthMethod, kubeconfigKey.Scopes = MethodAPIKey, []string{PermClustersRead, ClusterScopePrefix + "prod"}
	clusterOnlyKey := *admin
	clusterOnlyKey.AuthMethod, clusterOnlyKey.Scopes = MethodAPIKey, []string{ClusterScopePrefix + "prod"}
	robotKey := *admin
	robotKey.AuthMethod, robotKey.Scopes = MethodAPIKey, []string{PermUsersImpersonate, PermClustersRead}

	tests := []struct {
		name   string
		caller *Principal
		as     string
		want   string // the username acted as, or "" for a refusal
		why    string // in the refusal's message
	}{
		{"admin as a user", admin, "bob", "Bob", ""},
		{"case-insensitive, like sign-in", admin, "BOB", "Bob", ""},
		{"admin as another admin", admin, "root2", "root2", ""},
		{"a custom role as a plain user", support, "bob", "Bob", ""},
		{"a key scoped to impersonate", &robotKey, "bob", "Bob", ""},
		{"no permission", plain, "helper", "", "needs the users:impersonate permission"},
		{"no permission, unknown user", plain, "nobody", "", "needs the users:impersonate permission"},
		{"kubeconfig key", &kubeconfigKey, "bob", "", "scoped"},
		{"cluster-scoped key", &clusterOnlyKey, "bob", "", "scoped"},
		{"system name", admin, "system:admin", "", "Kubernetes system name"},
		{"system name, any case", admin, "System:kube-proxy", "", "Kubernetes system name"},
		{"system service account", admin, "system:serviceaccount:kube-system:default", "", "Kubernetes system name"},
		{"unknown user", admin, "nobody", "", `no Berth user "nobody"`},
		{"not a username at all", admin, "a b/c", "", "no Berth user"},
		{"prefixed name", admin, "berth:bob", "", "no Berth user"},
		{"user id", admin, bob.ID, "", "takes the username (\"Bob\")"},
		{"disabled user", admin, "gone", "", "disabled"},
		{"non-admin as an admin", support, "root2", "", "they hold permissions you do not (*)"},
		{"non-admin as someone with more", support, "aud", "", "audit:read"},
		{"scoped key as an admin", &robotKey, "root2", "", "they hold permissions you do not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Impersonate(tt.caller, tt.as)
			if tt.want != "" {
				if err != nil || got.Username != tt.want {
					t.Fatalf("got %+v, %v; want to act as %s", got, err, tt.want)
				}
				if got.AuthMethod != tt.caller.AuthMethod || got.Scoped() || got.CredentialID != "" || got.SessionID != "" {
					t.Errorf("the principal acted as: %+v", got)
				}
				return
			}
			if !fault.Is(err, fault.Forbidden) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("got %+v, %v; want 403 saying %q", got, err, tt.why)
			}
		})
	}

	// The target's own groups and permissions, read now.
	got, err := s.Impersonate(admin, "bob")
	if err != nil || !slices.Equal(got.Groups, []string{"devs", "ops"}) || !slices.Equal(got.Permissions, []string{PermClustersRead}) || got.UserID != bob.ID {
		t.Errorf("as bob: %+v, %v", got, err)
	}
}
