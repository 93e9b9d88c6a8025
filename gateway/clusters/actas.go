package clusters

import (
	"bytes"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/proxy"
)

// ImpersonatorExtra is the impersonated extra that names, on a request made
// as another user (kubectl --as), the Berth user who really made it, so
// the cluster's audit log shows both: the user acted as in user.username,
// the caller here.
const ImpersonatorExtra = "berth.dev/impersonator"

// ActAs is what a proxied request asks to act as, from the Kubernetes
// impersonation headers kubectl sends for --as and --as-group. A zero
// ActAs acts as the caller.
type ActAs struct {
	// User is the Berth username of Impersonate-User.
	User string
	// Groups are the Impersonate-Group values: nil keeps all of User's
	// Berth groups, otherwise exactly these, each one of User's own.
	Groups []string
}

// impersonatePrefix starts every Kubernetes impersonation header.
const impersonatePrefix = "impersonate-"

// maxActAsGroups bounds the Impersonate-Group headers one request may
// send; each must be one of the user's groups, which are fewer.
const maxActAsGroups = 64

// ParseActAs reads the impersonation headers of a proxied request. It
// refuses (fault.Invalid, 400) what Berth never passes on or acts on,
// whoever asks: Impersonate-Uid, Impersonate-Extra-* (Berth sets the
// extras itself: they are its record of who called), any other
// Impersonate-* header, more than one Impersonate-User, an empty one, and
// groups without a user. Whether the caller may act as the user is
// Service.ProxyIdentity's question.
func ParseActAs(h *fasthttp.RequestHeader) (ActAs, error) {
	var (
		a     ActAs
		users int
	)
	for k, v := range h.All() {
		// Every proxied request comes here: look at the name's bytes
		// before allocating anything for it.
		if len(k) < len(impersonatePrefix) || !bytes.EqualFold(k[:len(impersonatePrefix)], []byte(impersonatePrefix)) {
			continue
		}
		rest := strings.ToLower(string(k[len(impersonatePrefix):]))
		switch {
		case rest == "user":
			users++
			a.User = string(v)
		case rest == "group":
			if len(v) == 0 {
				return ActAs{}, fault.New(fault.Invalid, "an empty Impersonate-Group (kubectl --as-group) names no group")
			}
			a.Groups = append(a.Groups, string(v))
		case rest == "uid":
			return ActAs{}, fault.New(fault.Invalid, "Impersonate-Uid (kubectl --as-uid) is refused: Berth acts only as Berth users, named by username with --as")
		case strings.HasPrefix(rest, "extra-"):
			return ActAs{}, fault.New(fault.Invalid, "Impersonate-Extra-* headers (kubectl --as-user-extra) are refused: Berth sets the impersonated extras itself, as its record of who called")
		default:
			return ActAs{}, fault.New(fault.Invalid, "the header %q is refused: Berth takes only Impersonate-User and Impersonate-Group (kubectl --as, --as-group)", string(k))
		}
	}
	switch {
	case users > 1:
		return ActAs{}, fault.New(fault.Invalid, "more than one Impersonate-User header")
	case users == 1 && a.User == "":
		return ActAs{}, fault.New(fault.Invalid, "an empty Impersonate-User (kubectl --as) names no user")
	case users == 0 && a.Groups != nil:
		return ActAs{}, fault.New(fault.Invalid, "Impersonate-Group (kubectl --as-group) needs Impersonate-User (--as): groups are chosen among a user's own")
	case len(a.Groups) > maxActAsGroups:
		return ActAs{}, fault.New(fault.Invalid, "more than %d Impersonate-Group headers", maxActAsGroups)
	}
	return a, nil
}

// Origin is where a proxied request came from, for the impersonated
// extras: the client's address and Berth's request id. Either may be
// empty.
type Origin struct {
	ClientIP  string
	RequestID string
}

// Acting is who a proxied request acts as on one cluster, as
// ProxyIdentity decided.
type Acting struct {
	// Caller authenticated the request: rate limits and stream limits
	// count against them, and Berth's audit names them as the actor.
	Caller *identity.Principal
	// As is whose access the request uses: Caller, or the user named with
	// kubectl --as (with the groups --as-group kept).
	As *identity.Principal
	// Role is As's role on the cluster, from As's memberships alone.
	Role string
	// Identity is what the proxy asserts to the cluster: As, Role's group,
	// As's groups and the extras, with ImpersonatorExtra naming Caller
	// when As is someone else. Its stream fields are unset.
	Identity proxy.Identity
	// Ask is what the request asked for.
	Ask ActAs

	// cluster is the cached entry the decision was read from, so that
	// the proxy route's question whether Berth can reach the cluster is
	// answered by the same snapshot, without a second lookup.
	cluster *cachedCluster
}

// Connected reports whether Berth holds the cluster's credentials, as the
// decision saw it, and if not, the cluster's lifecycle status (a cluster
// still being provisioned, say). An Acting that ProxyIdentity did not make
// knows no cluster, and is not connected.
func (a *Acting) Connected() (bool, string) {
	switch {
	case a.cluster == nil:
		return false, ""
	case a.cluster.rec.Sealed == nil:
		return false, a.cluster.rec.LifecycleStatus()
	}
	return true, ""
}

// Impersonating reports whether the request acts as someone other than
// its caller.
func (a *Acting) Impersonating() bool { return a.Ask.User != "" }

// ProxyIdentity decides who a request to cluster, authenticated as p and
// carrying the headers h, acts as there, and what Berth asserts to the
// cluster for it. It is the one decision for every path that proxies a
// caller's request to a cluster.
//
// Without impersonation headers the request acts as p in p's role. With
// them (kubectl --as, --as-group), in this order: the headers must be
// ones Berth takes (ParseActAs, 400); p must reach the cluster (404 as
// for a non-member, so names do not leak); identity must let p act as the
// user (identity.Service.Impersonate: the users:impersonate permission,
// an existing active Berth user, no system: name, no permission p lacks;
// 403); each group asked for must be one of the user's own (403); and the
// user, with those groups, must be a member of the cluster (403). The
// request then acts as the user in the user's role: nothing of p's role
// or groups reaches the cluster, only p's username in ImpersonatorExtra.
// Refusals are *fault.Error values; nothing is sent to the cluster for
// them.
func (s *Service) ProxyIdentity(p *identity.Principal, cluster string, h *fasthttp.RequestHeader, o Origin) (*Acting, error) {
	ask, err := ParseActAs(h)
	if err != nil {
		return nil, err
	}
	return s.actAs(p, cluster, ask, o)
}

// errNoCluster is the refusal for a cluster p cannot see.
func errNoCluster(cluster string) error {
	return fault.New(fault.NotFound, "%s", noClusterMessage(cluster))
}

// actAs is ProxyIdentity after the headers are read; the stream re-checks
// call it again with what the request asked.
func (s *Service) actAs(p *identity.Principal, cluster string, ask ActAs, o Origin) (*Acting, error) {
	// One snapshot of the cluster for the whole decision: the caller's
	// and the acted-as user's roles come from the same members.
	c, found := s.cached(cluster)
	if !found {
		return nil, errNoCluster(cluster)
	}
	role, ok := roleFor(p, cluster, c.members)
	if !ok {
		return nil, errNoCluster(cluster)
	}
	if ask.User == "" {
		return &Acting{Caller: p, As: p, Role: role, Identity: s.Identity(p, role, o.ClientIP, o.RequestID), cluster: c}, nil
	}
	if s.ids == nil {
		return nil, fault.New(fault.Forbidden, "acting as another user is not available here")
	}
	as, err := s.ids.Impersonate(p, ask.User)
	if err != nil {
		return nil, err
	}
	if ask.Groups != nil {
		for _, g := range ask.Groups {
			if !slices.Contains(as.Groups, g) {
				return nil, fault.New(fault.Forbidden, "%q is not one of %q's Berth groups: kubectl --as-group may only choose among the user's own groups", g, as.Username)
			}
		}
		narrowed := *as
		narrowed.Groups = slices.Compact(slices.Sorted(slices.Values(ask.Groups)))
		as = &narrowed
	}
	asRole, ok := roleFor(as, cluster, c.members)
	if !ok {
		with := ""
		if ask.Groups != nil {
			with = " with the groups asked for"
		}
		return nil, fault.New(fault.Forbidden, "user %q is not a member of cluster %q%s, so there is nothing to act as there", as.Username, cluster, with)
	}
	id := s.Identity(as, asRole, o.ClientIP, o.RequestID)
	if id.Extra == nil {
		// Without the other extras (proxy.impersonate_extras off) the
		// impersonator is still named: it is the cluster's only record
		// that someone else acted.
		id.Extra = map[string][]string{}
	}
	id.Extra[ImpersonatorExtra] = []string{s.opts.ImpersonatePrefix + p.Username}
	return &Acting{Caller: p, As: as, Role: asRole, Identity: id, Ask: ask, cluster: c}, nil
}

// describe is the audit's account of who a request acted as.
func (a *Acting) describe() map[string]string {
	if !a.Impersonating() {
		return nil
	}
	return map[string]string{
		"as_user": a.As.Username, "as_user_id": a.As.UserID, "as_role": a.Role,
		"as_groups": strings.Join(a.As.Groups, " "),
	}
}

// refusalDetails are the audit's details of a refused impersonation: what
// was asked (bounded: it is the client's text) and why it was refused.
func refusalDetails(h *fasthttp.RequestHeader, why string) map[string]string {
	d := map[string]string{"refusal": why[:min(len(why), 512)]}
	if u := h.Peek("Impersonate-User"); len(u) > 0 {
		d["as_user"] = string(u[:min(len(u), 128)])
	}
	return d
}
