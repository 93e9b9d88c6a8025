package breakglass

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
)

// fakeObject is a labelled break-glass object in sweepCluster.
type fakeObject struct {
	name, uid, username string
	roleRef, subject    string // bindings only
}

// sweepCluster is a cluster for the sweep: its labelled accounts and
// bindings, each user's role there, and what its API answers. A fake,
// because the decisions are what is tested here; TestAdminKubeconfigEndToEnd
// runs the sweep against a real kube-apiserver.
type sweepCluster struct {
	accounts, bindings []fakeObject
	roles              map[string]string // user id -> role on the cluster
	unreachable        bool
	deleteCode         int
	deleted            []string // "<kind> <name> uid=<precondition>", in order
}

func (c *sweepCluster) Access(p *identity.Principal, _ string) (string, bool) {
	if slices.Contains(p.Permissions, identity.PermAll) {
		return "cluster-admin", true
	}
	r, ok := c.roles[p.UserID]
	return r, ok
}

func (c *sweepCluster) Call(p *identity.Principal, _, method, path, _ string, body []byte) (int, []byte, error) {
	if p != sweeper {
		return 0, nil, errors.New("not called as the sweeper")
	}
	if c.unreachable {
		return 0, nil, errors.New("dial tcp: connection refused")
	}
	kind := "account"
	if strings.Contains(path, "clusterrolebindings") {
		kind = "binding"
	}
	if method == http.MethodGet {
		objs := c.accounts
		if kind == "binding" {
			objs = c.bindings
		}
		var list struct {
			Items []map[string]any `json:"items"`
		}
		for _, o := range objs {
			item := map[string]any{"metadata": map[string]any{"name": o.name, "uid": "k8s-" + kind + "-" + o.name,
				"labels":      map[string]string{labelManagedBy: "berth", labelBreakGlass: "true"},
				"annotations": map[string]string{annotationUID: o.uid, annotationUser: o.username}}}
			if kind == "binding" {
				item["roleRef"] = map[string]string{"kind": "ClusterRole", "name": o.roleRef}
				item["subjects"] = []map[string]string{{"kind": "ServiceAccount", "name": o.subject, "namespace": Namespace}}
			}
			list.Items = append(list.Items, item)
		}
		b, _ := json.Marshal(list)
		return http.StatusOK, b, nil
	}
	var opts struct{ Preconditions struct{ UID string } }
	json.Unmarshal(body, &opts)
	c.deleted = append(c.deleted, kind+" "+path[strings.LastIndex(path, "/")+1:]+" uid="+opts.Preconditions.UID)
	return c.deleteCode, []byte(`{"kind":"Status"}`), nil
}

func (c *sweepCluster) Endpoint(string) (string, []byte, error) { return "", nil, nil }
func (c *sweepCluster) ServerName(string) (string, error)       { return "", nil }
func (c *sweepCluster) Names() []string                         { return []string{"prod"} }

// sweepUsers is the identity store: active users by id, and ids whose
// lookup fails.
type sweepUsers struct {
	active map[string]bool
	broken map[string]bool
}

func (u sweepUsers) UserPrincipal(id string) (*identity.Principal, error) {
	switch {
	case u.broken[id]:
		return nil, errors.New("store: read failed")
	case u.active[id]:
		return &identity.Principal{UserID: id}, nil
	}
	return nil, identity.ErrUnauthenticated
}

// The sweep deletes the binding, then the account, of everyone who no
// longer holds cluster-admin, and only theirs; what it cannot attribute to
// a user by Berth's own naming, or cannot decide, it leaves alone.
func TestSweepRevokesWhatIsNoLongerHeld(t *testing.T) {
	ann := ServiceAccountName(&identity.Principal{UserID: "usr_a", Username: "ann"})
	account := fakeObject{name: ann, uid: "usr_a", username: "ann"}
	binding := fakeObject{name: ann, uid: "usr_a", username: "ann", roleRef: "cluster-admin", subject: ann}
	both := []string{"binding " + ann + " uid=k8s-binding-" + ann, "account " + ann + " uid=k8s-account-" + ann}
	tests := []struct {
		name               string
		accounts, bindings []fakeObject
		role               string // ann's role now; "" for none
		active, broken     bool
		deleteCode         int
		deleted            []string
		fails              bool
	}{
		{"still cluster-admin", []fakeObject{account}, []fakeObject{binding}, "cluster-admin", true, false, 200, nil, false},
		{"lowered to admin", []fakeObject{account}, []fakeObject{binding}, "admin", true, false, 200, both, false},
		{"membership removed", []fakeObject{account}, []fakeObject{binding}, "", true, false, 200, both, false},
		{"user disabled or deleted", []fakeObject{account}, []fakeObject{binding}, "cluster-admin", false, false, 200, both, false},
		{"already deleted by hand", []fakeObject{account}, []fakeObject{binding}, "", true, false, 404, both, false},
		{"binding left behind by a hand-deleted account", nil, []fakeObject{binding}, "", true, false, 200, both[:1], false},
		{"store error keeps it", []fakeObject{account}, []fakeObject{binding}, "", true, true, 200, nil, true},
		{"the cluster refuses: the account stays for the next sweep", []fakeObject{account}, []fakeObject{binding}, "", true, false, 403, both[:1], true},
		{"a binding of something else is not Berth's", []fakeObject{account},
			[]fakeObject{{name: ann, uid: "usr_a", username: "ann", roleRef: "view", subject: ann}}, "", true, false, 200, both[1:], false},
		{"an account without a user is left alone", []fakeObject{{name: ann}}, nil, "", false, false, 200, nil, true},
		{"a name Berth would not give its user is left alone", []fakeObject{{name: "cilium", uid: "usr_a", username: "ann"}},
			[]fakeObject{{name: "cilium", uid: "usr_a", username: "ann", roleRef: "cluster-admin", subject: "cilium"}}, "", true, false, 200, nil, true},
		{"account and binding name different users", []fakeObject{{name: ann, uid: "usr_b", username: "ann"}}, []fakeObject{binding}, "", true, false, 200, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &sweepCluster{accounts: tt.accounts, bindings: tt.bindings, roles: map[string]string{}, deleteCode: tt.deleteCode}
			if tt.role != "" {
				c.roles["usr_a"] = tt.role
			}
			users := sweepUsers{active: map[string]bool{"usr_a": tt.active}, broken: map[string]bool{"usr_a": tt.broken}}
			n, err := NewService(c, nil, users, nil, nil, nil).Sweep(context.Background())
			if (err != nil) != tt.fails {
				t.Errorf("err = %v, want failure %v", err, tt.fails)
			}
			if !slices.Equal(c.deleted, tt.deleted) {
				t.Errorf("deleted %q, want %q", c.deleted, tt.deleted)
			}
			if want := len(tt.deleted) > 0 && !tt.fails; (n == 1) != want {
				t.Errorf("counted %d revocations, want one: %v", n, want)
			}
		})
	}
	unreachable := &sweepCluster{accounts: []fakeObject{account}, unreachable: true}
	if n, err := NewService(unreachable, nil, sweepUsers{}, nil, nil, nil).Sweep(context.Background()); n != 0 || err == nil {
		t.Errorf("unreachable cluster: %d revoked, err %v", n, err)
	}
}

// RevokeAll, for a cluster Berth lets go of, revokes every grant there,
// a current holder's too, through the call it is given.
func TestRevokeAll(t *testing.T) {
	ann := ServiceAccountName(&identity.Principal{UserID: "usr_a", Username: "ann"})
	c := &sweepCluster{accounts: []fakeObject{{name: ann, uid: "usr_a", username: "ann"}},
		roles: map[string]string{"usr_a": "cluster-admin"}, deleteCode: 200}
	s := NewService(c, nil, sweepUsers{active: map[string]bool{"usr_a": true}}, nil, nil, nil)
	call := func(method, path, contentType string, body []byte) (int, []byte, error) {
		return c.Call(sweeper, "prod", method, path, contentType, body)
	}
	if n, err := s.RevokeAll(context.Background(), "prod", call); n != 1 || err != nil {
		t.Fatalf("RevokeAll: %d, %v", n, err)
	}
	if want := []string{"account " + ann + " uid=k8s-account-" + ann}; !slices.Equal(c.deleted, want) {
		t.Errorf("deleted %q, want %q", c.deleted, want)
	}
}
