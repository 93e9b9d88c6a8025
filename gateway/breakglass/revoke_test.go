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

// sweepCluster is a cluster for the sweep: its break-glass accounts, each
// user's role there, and what its API answers. A fake, because the
// decisions are what is tested here; TestAdminKubeconfigEndToEnd runs the
// sweep against a real kube-apiserver.
type sweepCluster struct {
	accounts    map[string]string // ServiceAccount name -> user id annotation
	roles       map[string]string // user id -> role on the cluster
	unreachable bool
	deleteCode  int
	deleted     []string
}

func (c *sweepCluster) Access(p *identity.Principal, _ string) (string, bool) {
	if slices.Contains(p.Permissions, identity.PermAll) {
		return "cluster-admin", true
	}
	r, ok := c.roles[p.UserID]
	return r, ok
}

func (c *sweepCluster) Call(p *identity.Principal, _, method, path, _ string, _ []byte) (int, []byte, error) {
	if p != sweeper {
		return 0, nil, errors.New("not called as the sweeper")
	}
	if c.unreachable {
		return 0, nil, errors.New("dial tcp: connection refused")
	}
	if method == http.MethodGet {
		var list struct {
			Items []map[string]any `json:"items"`
		}
		for name, uid := range c.accounts {
			md := map[string]any{"name": name}
			if uid != "" {
				md["annotations"] = map[string]string{annotationUID: uid}
			}
			list.Items = append(list.Items, map[string]any{"metadata": md})
		}
		b, _ := json.Marshal(list)
		return http.StatusOK, b, nil
	}
	c.deleted = append(c.deleted, path[strings.LastIndex(path, "/")+1:]+" "+path[:strings.LastIndex(path, "/")])
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

// The sweep deletes the account and binding of everyone who no longer
// holds cluster-admin, and only theirs; what it cannot decide it keeps.
func TestSweepRevokesWhatIsNoLongerHeld(t *testing.T) {
	tests := []struct {
		name       string
		uid        string
		role       string // the user's role now; "" for none
		active     bool
		broken     bool
		deleteCode int
		revoked    bool
		fails      bool
	}{
		{"still cluster-admin", "usr_a", "cluster-admin", true, false, 200, false, false},
		{"lowered to admin", "usr_a", "admin", true, false, 200, true, false},
		{"membership removed", "usr_a", "", true, false, 200, true, false},
		{"user disabled or deleted", "usr_a", "cluster-admin", false, false, 200, true, false},
		{"no user annotation", "", "", false, false, 200, true, false},
		{"already deleted by hand", "usr_a", "", true, false, 404, true, false},
		{"store error keeps it", "usr_a", "", true, true, 200, false, true},
		{"the cluster refuses the delete", "usr_a", "", true, false, 403, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &sweepCluster{accounts: map[string]string{"berth-admin-ann-0a1b2c3d": tt.uid},
				roles: map[string]string{}, deleteCode: tt.deleteCode}
			if tt.role != "" {
				c.roles[tt.uid] = tt.role
			}
			users := sweepUsers{active: map[string]bool{tt.uid: tt.active}, broken: map[string]bool{tt.uid: tt.broken}}
			s := NewService(c, nil, users, nil, nil)
			n, err := s.Sweep(context.Background())
			if (err != nil) != tt.fails {
				t.Errorf("err = %v, want failure %v", err, tt.fails)
			}
			if got := n == 1; got != tt.revoked {
				t.Errorf("revoked %d accounts, want revoked %v", n, tt.revoked)
			}
			if tt.revoked && !slices.Equal(c.deleted, []string{
				"berth-admin-ann-0a1b2c3d /api/v1/namespaces/kube-system/serviceaccounts",
				"berth-admin-ann-0a1b2c3d /apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
			}) {
				t.Errorf("deleted %q", c.deleted)
			}
			if !tt.revoked && !tt.fails && len(c.deleted) > 0 {
				t.Errorf("deleted %q of a holder", c.deleted)
			}
		})
	}
	unreachable := &sweepCluster{accounts: map[string]string{"berth-admin-ann-0a1b2c3d": "usr_a"}, unreachable: true}
	if n, err := NewService(unreachable, nil, sweepUsers{}, nil, nil).Sweep(context.Background()); n != 0 || err == nil {
		t.Errorf("unreachable cluster: %d revoked, err %v", n, err)
	}
}
