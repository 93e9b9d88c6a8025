package breakglass

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/kubestatus"
)

// A break-glass token lives an hour and cannot be recalled, but the
// ServiceAccount behind it can: the API server checks the account on every
// request. So when a user no longer holds cluster-admin on a cluster (the
// membership is removed or lowered, the user leaves the group it was
// granted to, is disabled or deleted), Berth deletes their break-glass
// ServiceAccount and its binding there, and the kubeconfigs they took stop
// working. Sweeps run soon after the writes that can take the role away
// and, as a safety net for missed or failed ones, every SweepInterval.
// A cluster being unregistered has every grant revoked (Unregistering).

// RevokeAction is the audit action of a revocation.
const RevokeAction = "cluster.kubeconfig.admin.revoke"

// SweepInterval is how often every cluster is swept although nothing was
// written.
const SweepInterval = 5 * time.Minute

// sweepDelay merges a burst of writes (a user's groups, then their
// memberships) into one sweep.
const sweepDelay = time.Second

// Users gives what a user may do now (identity.Service).
type Users interface {
	// UserPrincipal is the user's principal as a sign-in would make it;
	// identity.ErrUnauthenticated for a deleted or disabled user.
	UserPrincipal(userID string) (*identity.Principal, error)
}

// sweeper is who Berth lists and deletes break-glass objects as: a fleet
// administrator, so it is cluster-admin on every cluster, named so that
// the cluster's own audit log says what deleted them. Berth usernames
// cannot hold a colon, so no person is asserted to a cluster as this one.
var sweeper = &identity.Principal{UserID: "system", Username: "system:break-glass-sweeper",
	Permissions: []string{identity.PermAll}, AuthMethod: "system"}

// AccessChanged asks for a sweep soon; it never blocks.
func (s *Service) AccessChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Run sweeps at once (a change may have come just before a restart),
// then after AccessChanged and every interval, until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.AccessChanged()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.changed:
			select {
			case <-ctx.Done():
				return
			case <-time.After(sweepDelay):
			}
		}
		n, err := s.Sweep(ctx)
		if n > 0 {
			s.log.Info("break-glass access revoked", "service_accounts", n)
		}
		if err != nil {
			s.log.Warn("break-glass sweep incomplete", "err", err)
		}
	}
}

// Sweep revokes, on every cluster, the break-glass ServiceAccounts of users
// who no longer hold cluster-admin there, and returns how many. A cluster
// that cannot be reached is left for the next sweep.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	revoked := 0
	var errs []error
	for _, cluster := range s.clusters.Names() {
		if ctx.Err() != nil {
			break
		}
		call := func(_ context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
			code, resp, err := s.clusters.Call(sweeper, cluster, method, path, contentType, body)
			if err != nil && !slices.Contains(s.clusters.Names(), cluster) {
				return 0, nil, errLetGo
			}
			return code, resp, err
		}
		n, err := s.sweepCluster(ctx, cluster, call, func(userID string) (bool, error) { return s.holds(userID, cluster) }, nil)
		revoked += n
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cluster, err))
		}
	}
	return revoked, errors.Join(errs...)
}

// errLetGo ends a sweep of a cluster that was unregistered while it ran:
// what is left there is the unregistering's to revoke and report.
var errLetGo = errors.New("cluster unregistered during the sweep")

// CallFunc makes one request to a cluster, as the sweeper, bounded by ctx.
type CallFunc func(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error)

// Unregistering revokes every break-glass grant in a cluster Berth has
// just deleted (see clusters.Service.OnUnregister): no one holds anything
// there through Berth any more, and Berth will not sweep it again. call
// reaches that cluster as the sweeper (Sweeper); deletedBy names who
// deleted it, for the audit log. It waits for admin kubeconfigs being
// issued there to finish, then gives up after unregisterTimeout or when
// ctx ends. Each revocation is audited; so is a failure, as a failed
// revocation naming what was left, since only a person can remove it now.
func (s *Service) Unregistering(ctx context.Context, cluster, deletedBy string, call CallFunc) {
	mu := s.clusterLock(cluster)
	mu.Lock()
	defer mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, unregisterTimeout)
	defer cancel()
	why := map[string]string{"trigger": "cluster_unregistered", "deleted_by": deletedBy}
	n, err := s.sweepCluster(ctx, cluster, call, func(string) (bool, error) { return false, nil }, why)
	if n > 0 {
		s.log.Info("break-glass access revoked from an unregistered cluster", "cluster", cluster, "service_accounts", n)
	}
	if err == nil {
		return
	}
	s.log.Warn("break-glass objects may be left in an unregistered cluster; remove them by hand (docs/clusters.md)",
		"cluster", cluster, "err", err)
	if s.audit != nil {
		details := maps.Clone(why)
		details["error"] = err.Error()
		s.audit.Record(context.WithoutCancel(ctx), audit.Event{Category: audit.CategorySecurity, Action: RevokeAction,
			ResourceType: "cluster", ResourceID: cluster, Result: audit.ResultFailure, Reason: "incomplete",
			ActorName: "berth", Details: details})
	}
}

// Sweeper is the principal Berth revokes break-glass access as.
func Sweeper() *identity.Principal { return sweeper }

// unregisterTimeout bounds the revocation in a cluster being let go of.
const unregisterTimeout = 20 * time.Second

// clusterLock is the lock that keeps an unregistering (which holds it) from
// listing a cluster while an admin kubeconfig is being issued there (each
// holding it shared), so an account or binding created just after the
// list is not left behind.
func (s *Service) clusterLock(cluster string) *sync.RWMutex {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	if s.locks == nil {
		s.locks = map[string]*sync.RWMutex{}
	}
	mu := s.locks[cluster]
	if mu == nil {
		mu = &sync.RWMutex{}
		s.locks[cluster] = mu
	}
	return mu
}

// sweepCluster revokes, through call, the grants in cluster whose user
// keep refuses. details are added to each revocation's audit event.
func (s *Service) sweepCluster(ctx context.Context, cluster string, call CallFunc, keep func(userID string) (bool, error), details map[string]string) (int, error) {
	selector := "?labelSelector=" + url.QueryEscape(labelManagedBy+"=berth,"+labelBreakGlass+"=true")
	accounts, err := list(ctx, call, "/api/v1/namespaces/"+Namespace+"/serviceaccounts"+selector)
	if err != nil {
		return 0, letGo(err)
	}
	bindings, err := list(ctx, call, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"+selector)
	if err != nil {
		return 0, letGo(err)
	}
	// One grant per name: its account, its binding, or both (a binding
	// whose account was deleted by hand still grants cluster-admin to
	// whoever makes an account of that name).
	grants := map[string]*grant{}
	at := func(name string) *grant {
		if grants[name] == nil {
			grants[name] = &grant{name: name}
		}
		return grants[name]
	}
	for i := range accounts {
		if a := &accounts[i]; a.berths() {
			at(a.Metadata.Name).account = a
		}
	}
	for i := range bindings {
		if b := &bindings[i]; b.berths() && b.bindsAccount(b.Metadata.Name) {
			at(b.Metadata.Name).binding = b
		}
	}
	names := slices.Sorted(maps.Keys(grants))
	revoked := 0
	var errs []error
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("%w; not checked: %s", err, strings.Join(names[i:], ", ")))
			break
		}
		g := grants[name]
		userID, err := g.userID()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		holds, err := keep(userID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if holds {
			continue
		}
		done, err := s.revoke(ctx, cluster, call, g, details)
		if errors.Is(err, errLetGo) {
			return revoked, nil
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if done {
			revoked++
		}
	}
	return revoked, errors.Join(errs...)
}

// letGo drops the error of a sweep whose cluster was unregistered under it.
func letGo(err error) error {
	if errors.Is(err, errLetGo) {
		return nil
	}
	return err
}

// list reads the objects at path.
func list(ctx context.Context, call CallFunc, path string) ([]object, error) {
	code, resp, err := call(ctx, http.MethodGet, path, "", nil)
	if errors.Is(err, errLetGo) {
		return nil, err
	}
	if err == nil {
		err = kubestatus.Error(http.MethodGet, code, resp)
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	var list struct{ Items []object }
	if err := json.Unmarshal(resp, &list); err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	return list.Items, nil
}

// grant is one user's break-glass objects in a cluster, of one name.
type grant struct {
	name             string
	account, binding *object
}

// userID is the Berth user the grant was made for. The labels that
// selected its objects prove nothing, since anyone who may create a
// ServiceAccount in kube-system can set them; but the name must be the
// one Berth derives from the annotated user, and an account and binding
// of that name must agree on the user. A ClusterRoleBinding cannot be made
// by the members Berth lets edit namespaces, so the binding's word counts.
func (g *grant) userID() (string, error) {
	var uid, username string
	for _, o := range []*object{g.binding, g.account} {
		if o == nil {
			continue
		}
		u, n := o.Metadata.Annotations[annotationUID], o.Metadata.Annotations[annotationUser]
		if uid != "" && u != uid {
			return "", fmt.Errorf("break-glass objects %s name different users; left alone", g.name)
		}
		uid, username = u, n
	}
	if uid == "" || ServiceAccountName(&identity.Principal{UserID: uid, Username: username}) != g.name {
		return "", fmt.Errorf("%s does not carry the name Berth gives its user's break-glass objects; left alone", g.name)
	}
	return uid, nil
}

// berths reports whether o carries Berth's break-glass labels.
func (o *object) berths() bool {
	return o.Metadata.Labels[labelManagedBy] == "berth" && o.Metadata.Labels[labelBreakGlass] == "true"
}

// bindsAccount reports whether o binds cluster-admin to the break-glass
// ServiceAccount sa, as every binding Berth makes does.
func (o *object) bindsAccount(sa string) bool {
	if o.RoleRef.Kind != "ClusterRole" || o.RoleRef.Name != "cluster-admin" || len(o.Subjects) != 1 {
		return false
	}
	sub := o.Subjects[0]
	return sub.Kind == "ServiceAccount" && sub.Name == sa && sub.Namespace == Namespace
}

// holds reports whether userID still holds cluster-admin on cluster.
func (s *Service) holds(userID, cluster string) (bool, error) {
	p, err := s.users.UserPrincipal(userID)
	if errors.Is(err, identity.ErrUnauthenticated) {
		return false, nil
	}
	if err != nil {
		// Unknown is not "no": keep the account until a sweep can tell.
		return true, fmt.Errorf("user %s: %w", userID, err)
	}
	role, ok := s.clusters.Access(p, cluster)
	return ok && role == "cluster-admin", nil
}

// revoke deletes a grant's binding, then its ServiceAccount, which ends
// its tokens, and audits it; done is false when both were already gone
// (another sweep, or a person, got there first), which is not audited
// again. The binding goes first: should the second delete fail, the next
// sweep still finds the account and tries again, and no binding is left
// for someone to claim by making an account of its name. A user who
// regains cluster-admin while this runs may see the kubeconfig just issued
// stop working; asking again makes a new one.
func (s *Service) revoke(ctx context.Context, cluster string, call CallFunc, g *grant, details map[string]string) (done bool, err error) {
	if g.binding != nil {
		var gone bool
		gone, err = remove(ctx, call, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/"+url.PathEscape(g.name), g.binding.Metadata.UID)
		done = !gone
	}
	if err == nil && g.account != nil {
		var gone bool
		gone, err = remove(ctx, call, "/api/v1/namespaces/"+Namespace+"/serviceaccounts/"+url.PathEscape(g.name), g.account.Metadata.UID)
		done = done || !gone
	}
	if errors.Is(err, errLetGo) {
		return false, err
	}
	if err == nil && !done {
		return false, nil
	}
	userID, _ := g.userID()
	o := g.binding
	if o == nil {
		o = g.account
	}
	ev := audit.Event{Category: audit.CategorySecurity, Action: RevokeAction, ResourceType: "cluster", ResourceID: cluster,
		Result: audit.ResultSuccess, ActorName: "berth",
		Details: map[string]string{"service_account": Namespace + "/" + g.name, "user_id": userID, "user": o.Metadata.Annotations[annotationUser]}}
	maps.Copy(ev.Details, details)
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, "cluster_error"
	}
	if s.audit != nil {
		s.audit.Record(context.WithoutCancel(ctx), ev)
	}
	return err == nil, err
}

// remove deletes the object at path if it is still the one with uid (a
// precondition, so an object made again in between is not taken with it);
// gone is true when it was no longer there.
func remove(ctx context.Context, call CallFunc, path, uid string) (gone bool, err error) {
	body, _ := json.Marshal(map[string]any{"kind": "DeleteOptions", "apiVersion": "v1",
		"preconditions": map[string]string{"uid": uid}})
	code, resp, err := call(ctx, http.MethodDelete, path, "application/json", body)
	if errors.Is(err, errLetGo) {
		return false, err
	}
	if err == nil {
		err = kubestatus.Error(http.MethodDelete, code, resp)
	}
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err):
		return true, nil
	}
	return false, fmt.Errorf("delete %s: %w", path, err)
}
