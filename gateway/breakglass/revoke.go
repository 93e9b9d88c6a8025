package breakglass

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/identity"
)

// A break-glass token lives an hour and cannot be recalled, but the
// ServiceAccount behind it can: the API server checks the account on every
// request. So when a user no longer holds cluster-admin on a cluster (the
// membership is removed or lowered, the user leaves the group it was
// granted to, is disabled or deleted), Berth deletes their break-glass
// ServiceAccount and its binding there, and the kubeconfigs they took stop
// working. Sweeps run soon after the writes that can take the role away
// and, as a safety net for missed or failed ones, every SweepInterval.

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
// the cluster's own audit log says what deleted them.
var sweeper = &identity.Principal{UserID: "system", Username: "system:break-glass-sweeper",
	Permissions: []string{identity.PermAll}, AuthMethod: "system"}

// AccessChanged asks for a sweep soon; it never blocks.
func (s *Service) AccessChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Run sweeps after AccessChanged and every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
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
			log.Info("break-glass access revoked", "service_accounts", n)
		}
		if err != nil {
			log.Warn("break-glass sweep incomplete", "err", err)
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
		n, err := s.sweepCluster(ctx, cluster)
		revoked += n
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cluster, err))
		}
	}
	return revoked, errors.Join(errs...)
}

func (s *Service) sweepCluster(ctx context.Context, cluster string) (int, error) {
	path := "/api/v1/namespaces/" + Namespace + "/serviceaccounts?labelSelector=" +
		url.QueryEscape(labelManagedBy+"=berth,"+labelBreakGlass+"=true")
	code, resp, err := s.clusters.Call(sweeper, cluster, http.MethodGet, path, "", nil)
	if err != nil {
		return 0, fmt.Errorf("list break-glass service accounts: %w", err)
	}
	if code != http.StatusOK {
		return 0, refusal(code, resp, "list break-glass service accounts")
	}
	var list struct{ Items []object }
	if err := json.Unmarshal(resp, &list); err != nil {
		return 0, fmt.Errorf("list break-glass service accounts: %w", err)
	}
	revoked := 0
	var errs []error
	for _, sa := range list.Items {
		userID := sa.Metadata.Annotations[annotationUID]
		holds, err := s.holds(userID, cluster)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if holds {
			continue
		}
		if err := s.revoke(ctx, cluster, sa.Metadata.Name, userID, sa.Metadata.Annotations[annotationUser]); err != nil {
			errs = append(errs, err)
			continue
		}
		revoked++
	}
	return revoked, errors.Join(errs...)
}

// holds reports whether userID still holds cluster-admin on cluster. An
// account Berth cannot name (no annotation) holds nothing.
func (s *Service) holds(userID, cluster string) (bool, error) {
	if userID == "" {
		return false, nil
	}
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

// revoke deletes a break-glass ServiceAccount, which ends its tokens, and
// its binding, and audits it.
func (s *Service) revoke(ctx context.Context, cluster, name, userID, username string) error {
	err := s.remove(cluster, "/api/v1/namespaces/"+Namespace+"/serviceaccounts/"+url.PathEscape(name))
	if err == nil {
		err = s.remove(cluster, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/"+url.PathEscape(name))
	}
	ev := audit.Event{Category: audit.CategorySecurity, Action: RevokeAction, ResourceType: "cluster", ResourceID: cluster,
		Result: audit.ResultSuccess, ActorName: "berth",
		Details: map[string]string{"service_account": Namespace + "/" + name, "user_id": userID, "user": username}}
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, "cluster_error"
	}
	if s.audit != nil {
		s.audit.Record(ctx, ev)
	}
	return err
}

// remove deletes the object at path; one already gone is removed too.
func (s *Service) remove(cluster, path string) error {
	code, resp, err := s.clusters.Call(sweeper, cluster, http.MethodDelete, path, "", nil)
	if err != nil {
		return fmt.Errorf("%w: delete %s: %v", ErrCluster, path, err)
	}
	if code != http.StatusOK && code != http.StatusAccepted && code != http.StatusNotFound {
		return refusal(code, resp, "delete "+path)
	}
	return nil
}
