package identity

import (
	"slices"
	"strings"

	"github.com/berthgw/berth/gateway/store"
)

// Impersonate decides whether caller may act as the Berth user named
// username (kubectl --as through the proxy) and returns the principal to
// act as. The rules, in this order, so a caller without the permission
// learns nothing about which users exist:
//
//   - an API key with scopes only when users:impersonate is one of them
//     (a kubeconfig key, scoped to clusters:read and one cluster, never
//     is), and the caller holds users:impersonate;
//   - the name is not a Kubernetes "system:" name: Berth acts only as its
//     own users, never as the cluster's;
//   - a user of that name exists (compared case-insensitively, as sign-in
//     compares it; user ids are not names) and is active;
//   - the caller holds every permission the user holds, so acting as
//     someone never gains a Berth right (a non-admin cannot act as an
//     admin).
//
// Every refusal is fault.Forbidden, as the kube-apiserver refuses
// impersonation. The principal returned has the user's roles, groups and
// permissions, no scopes, and the caller's auth method (how the request
// really authenticated); it carries no credential of its own.
func (s *Service) Impersonate(caller *Principal, username string) (*Principal, error) {
	if caller == nil {
		return nil, ErrUnauthenticated
	}
	if caller.Scoped() && !slices.Contains(caller.Scopes, PermUsersImpersonate) {
		return nil, forbidden("this API key is scoped and %s is not among its scopes: acting as another user (kubectl --as) needs a credential that is not narrowed, such as a signed-in token", PermUsersImpersonate)
	}
	if !caller.Can(PermUsersImpersonate) {
		return nil, forbidden("acting as another user (kubectl --as %q) needs the %s permission", username, PermUsersImpersonate)
	}
	if strings.HasPrefix(strings.ToLower(username), "system:") {
		return nil, forbidden("%q is a Kubernetes system name, not a Berth user: Berth acts only as its own users", username)
	}
	var (
		target *Principal
		byID   *User
		status string
	)
	err := s.db.View(func(tx *store.Tx) error {
		if !usernameRE.MatchString(username) {
			return store.ErrNotFound
		}
		u, _, err := usersTable.GetBy(tx, "username", strings.ToLower(username))
		if isNotFound(err) {
			// An id is no name, but say so: the cluster's audit and
			// Berth's show usernames, and kubectl sends what it is given.
			if byID, err = usersTable.Get(tx, username); isNotFound(err) {
				return store.ErrNotFound
			}
			return err
		}
		if err != nil {
			return err
		}
		if status = u.Status; status != StatusActive {
			return nil
		}
		target, err = principalFor(tx, u.ID, caller.AuthMethod, "", "", nil)
		return err
	})
	switch {
	case isNotFound(err):
		return nil, forbidden("there is no Berth user %q to act as", username)
	case err != nil:
		return nil, err
	case byID != nil:
		return nil, forbidden("%q is a user id; kubectl --as takes the username (%q)", username, byID.Username)
	case target == nil:
		return nil, forbidden("user %q is %s and cannot be acted as", username, status)
	}
	var lacking []string
	for _, perm := range target.Permissions {
		if !caller.Can(perm) {
			lacking = append(lacking, perm)
		}
	}
	if len(lacking) > 0 {
		return nil, forbidden("you may not act as %q: they hold permissions you do not (%s)", target.Username, strings.Join(lacking, ", "))
	}
	return target, nil
}
