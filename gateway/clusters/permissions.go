package clusters

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/kubestatus"
	"github.com/berthgw/berth/proxy"
)

// RBACHint is what to do when the gateway's identity in a cluster lacks
// what Berth needs.
const RBACHint = "apply deploy/rbac/berth-rbac.yaml"

// Permissions are what the gateway's own identity may do in a cluster, as
// the cluster's authorizer answers SelfSubjectAccessReviews for it. Every
// request Berth forwards impersonates the caller, so without the first
// three nobody can use the cluster through Berth (kubectl shows only
// "Forbidden").
type Permissions struct {
	ImpersonateUsers  bool `json:"impersonate_users"`
	ImpersonateGroups bool `json:"impersonate_groups"`
	// ImpersonateExtras covers every extra field Berth sends (client
	// address, auth method, request id); true when it sends none
	// (proxy.impersonate_extras off).
	ImpersonateExtras bool `json:"impersonate_extras"`
	// ListNodes is needed for the node history only.
	ListNodes bool `json:"list_nodes"`
	// ImpersonatorExtra is the impersonation of the extra
	// ImpersonatorExtra, needed for kubectl --as through Berth only:
	// without it the cluster refuses every request made as another user.
	ImpersonatorExtra bool `json:"impersonator_extra"`
}

// missing names the essential permissions the identity lacks; extras
// are the extra keys Berth sends.
func (p *Permissions) missing(extras []string) []string {
	var out []string
	for _, c := range []struct {
		ok   bool
		name string
	}{
		{p.ImpersonateUsers, "impersonate users"},
		{p.ImpersonateGroups, "impersonate groups"},
		{p.ImpersonateExtras, "impersonate the extra fields " + strings.Join(extras, ", ")},
	} {
		if !c.ok {
			out = append(out, c.name)
		}
	}
	return out
}

// extraKeys are the Impersonate-Extra keys Identity sends when every
// field is known: read from Identity itself, so the check follows what the
// proxy really sends.
func (s *Service) extraKeys() []string {
	id := s.Identity(&identity.Principal{AuthMethod: identity.MethodPassword}, Roles[0], "127.0.0.1", "probe")
	return slices.Sorted(maps.Keys(id.Extra))
}

// ssarPath is where SelfSubjectAccessReviews are created.
const ssarPath = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

// checkPermissions asks cluster name, as the gateway itself, whether it
// may do what Berth needs. It fails when the cluster cannot answer, and
// when an essential permission is missing, with what to do; the
// permissions are returned whenever they could be read.
func (s *Service) checkPermissions(name string) (*Permissions, error) {
	p := &Permissions{}
	type check struct {
		set   *bool
		attrs authorizationv1.ResourceAttributes
	}
	checks := []check{
		{&p.ImpersonateUsers, authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}},
		{&p.ImpersonateGroups, authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "groups"}},
		{&p.ListNodes, authorizationv1.ResourceAttributes{Verb: "list", Resource: "nodes"}},
		{&p.ImpersonatorExtra, authorizationv1.ResourceAttributes{
			Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: ImpersonatorExtra}},
	}
	extras := s.extraKeys()
	extraOK := make([]bool, len(extras))
	for i, k := range extras {
		checks = append(checks, check{&extraOK[i], authorizationv1.ResourceAttributes{
			Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: k}})
	}
	for _, c := range checks {
		ok, err := s.allowed(name, c.attrs)
		if err != nil {
			return nil, fmt.Errorf("checking the gateway's permissions: %w", err)
		}
		*c.set = ok
	}
	p.ImpersonateExtras = !slices.Contains(extraOK, false)
	if m := p.missing(extras); len(m) > 0 {
		return p, fmt.Errorf("the gateway's identity in the cluster cannot %s: %s", strings.Join(m, ", "), RBACHint)
	}
	return p, nil
}

// allowed sends one SelfSubjectAccessReview as the gateway (no
// impersonation) and returns the cluster's decision.
func (s *Service) allowed(name string, attrs authorizationv1.ResourceAttributes) (bool, error) {
	review := authorizationv1.SelfSubjectAccessReview{
		TypeMeta: metav1.TypeMeta{Kind: "SelfSubjectAccessReview", APIVersion: "authorization.k8s.io/v1"},
		Spec:     authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return false, fmt.Errorf("encode access review: %w", err)
	}
	code, out, err := s.pool.Do(name, "POST", ssarPath, proxy.Identity{}, "application/json", body, s.opts.ProbeTimeout)
	if err != nil {
		return false, err
	}
	if err := kubestatus.Error(http.MethodPost, code, out); err != nil {
		return false, err
	}
	var res authorizationv1.SelfSubjectAccessReview
	if err := json.Unmarshal(out, &res); err != nil {
		return false, fmt.Errorf("decode access review: %w", err)
	}
	return res.Status.Allowed, nil
}
