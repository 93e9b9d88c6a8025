package breakglass

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/store"
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
			// Objects already gone (404) were revoked by someone else: not
			// counted, not audited again.
			if want := len(tt.deleted) > 0 && !tt.fails && tt.deleteCode != 404; (n == 1) != want {
				t.Errorf("counted %d revocations, want one: %v", n, want)
			}
		})
	}
	unreachable := &sweepCluster{accounts: []fakeObject{account}, unreachable: true}
	if n, err := NewService(unreachable, nil, sweepUsers{}, nil, nil, nil).Sweep(context.Background()); n != 0 || err == nil {
		t.Errorf("unreachable cluster: %d revoked, err %v", n, err)
	}
}

// Unregistering, for a cluster Berth lets go of, revokes every grant
// there, a current holder's too, through the call it is given, and audits
// each revocation and anything it had to leave.
func TestUnregistering(t *testing.T) {
	ann := ServiceAccountName(&identity.Principal{UserID: "usr_a", Username: "ann"})
	bob := ServiceAccountName(&identity.Principal{UserID: "usr_b", Username: "bob"})
	annAccount := fakeObject{name: ann, uid: "usr_a", username: "ann"}
	annBinding := fakeObject{name: ann, uid: "usr_a", username: "ann", roleRef: "cluster-admin", subject: ann}
	bobAccount := fakeObject{name: bob, uid: "usr_b", username: "bob"}
	forged := fakeObject{name: "cilium", uid: "usr_a", username: "ann"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name               string
		accounts, bindings []fakeObject
		unreachable        bool
		ctx                context.Context
		deleteCode         int
		deleted            []string
		// revoked are the users whose revocation is audited; failed says a
		// failure naming what was left is audited too.
		revoked []string
		failed  string
	}{
		{name: "every grant, a holder's too", accounts: []fakeObject{annAccount, bobAccount}, bindings: []fakeObject{annBinding},
			deleteCode: 200, deleted: []string{"binding " + ann + " uid=k8s-binding-" + ann, "account " + ann + " uid=k8s-account-" + ann,
				"account " + bob + " uid=k8s-account-" + bob}, revoked: []string{"ann", "bob"}},
		{name: "a forged object is left and reported", accounts: []fakeObject{forged, bobAccount}, deleteCode: 200,
			deleted: []string{"account " + bob + " uid=k8s-account-" + bob}, revoked: []string{"bob"}, failed: "cilium"},
		{name: "unreachable", accounts: []fakeObject{bobAccount}, unreachable: true, failed: "connection refused"},
		{name: "out of time", accounts: []fakeObject{annAccount, bobAccount}, ctx: cancelled, deleteCode: 200,
			failed: "not checked: " + ann + ", " + bob},
		{name: "already revoked by a sweep", accounts: []fakeObject{bobAccount}, deleteCode: 404,
			deleted: []string{"account " + bob + " uid=k8s-account-" + bob}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := store.Open(store.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			c := &sweepCluster{accounts: tt.accounts, bindings: tt.bindings, unreachable: tt.unreachable,
				roles: map[string]string{"usr_a": "cluster-admin"}, deleteCode: tt.deleteCode}
			s := NewService(c, nil, sweepUsers{active: map[string]bool{"usr_a": true}}, audit.New(db, audit.Options{}), nil, nil)
			call := func(_ context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
				return c.Call(sweeper, "prod", method, path, contentType, body)
			}
			ctx := cmp.Or(tt.ctx, context.Background())
			s.Unregistering(ctx, "prod", "root", call)
			if !slices.Equal(c.deleted, tt.deleted) {
				t.Errorf("deleted %q, want %q", c.deleted, tt.deleted)
			}
			var revoked []string
			failed := ""
			db.View(func(tx *store.Tx) error {
				return audit.Events.Scan(tx, store.ScanOptions{}, func(_ string, e *audit.Event) (bool, error) {
					if e.Action != RevokeAction || e.ResourceID != "prod" || e.Details["trigger"] != "cluster_unregistered" ||
						e.Details["deleted_by"] != "root" {
						t.Errorf("unexpected event %+v", e)
					}
					if e.Result == audit.ResultSuccess {
						revoked = append(revoked, e.Details["user"])
					} else {
						failed = e.Details["error"]
					}
					return true, nil
				})
			})
			if !slices.Equal(revoked, tt.revoked) {
				t.Errorf("audited revocations of %q, want %q", revoked, tt.revoked)
			}
			if (failed != "") != (tt.failed != "") || !strings.Contains(failed, tt.failed) {
				t.Errorf("audited failure %q, want one containing %q", failed, tt.failed)
			}
		})
	}
}

// A sweep that finds its cluster unregistered under it stops quietly:
// what is left there is the unregistering's to revoke and report, so the
// sweep neither fails nor audits a failed revocation.
func TestSweepStopsWhenItsClusterIsLetGo(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ann := ServiceAccountName(&identity.Principal{UserID: "usr_a", Username: "ann"})
	c := &goneCluster{sweepCluster: sweepCluster{accounts: []fakeObject{{name: ann, uid: "usr_a", username: "ann"}}, deleteCode: 200}}
	s := NewService(c, nil, sweepUsers{}, audit.New(db, audit.Options{}), nil, nil)
	if n, err := s.Sweep(context.Background()); n != 0 || err != nil {
		t.Errorf("sweep of a cluster let go of: %d revoked, err %v", n, err)
	}
	db.View(func(tx *store.Tx) error {
		return audit.Events.Scan(tx, store.ScanOptions{}, func(_ string, e *audit.Event) (bool, error) {
			t.Errorf("audited %+v", e)
			return true, nil
		})
	})
	// The same failure while the cluster is still registered is reported.
	c.stillThere = true
	if _, err := s.Sweep(context.Background()); err == nil {
		t.Error("a failed delete on a registered cluster was not reported")
	}
}

// goneCluster lists its objects, then is unregistered before the sweep's
// delete: the call fails and Names no longer has it.
type goneCluster struct {
	sweepCluster
	stillThere bool
	listed     bool
}

func (c *goneCluster) Call(p *identity.Principal, name, method, path, contentType string, body []byte) (int, []byte, error) {
	if method != http.MethodGet {
		c.listed = true
		return 0, nil, errors.New("cluster not found")
	}
	return c.sweepCluster.Call(p, name, method, path, contentType, body)
}

func (c *goneCluster) Names() []string {
	if c.listed && !c.stillThere {
		return nil
	}
	return []string{"prod"}
}
