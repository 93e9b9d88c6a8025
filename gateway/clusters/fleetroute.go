package clusters

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/proxy"
)

// FleetRoutePattern labels fleet requests in logs and metrics.
const FleetRoutePattern = "/proxy/fleet/*"

// maxFleetNames bounds the names clusters= may give.
const maxFleetNames = 256

// serveFleet answers /proxy/fleet/…: the caller is authenticated as on the
// proxy route, the clusters the request covers are chosen (FleetSelection),
// and the proxy runs it on each as the caller in their role there.
func (pr *ProxyRoute) serveFleet(ctx *fasthttp.RequestCtx, t proxy.FleetTarget) {
	checkedAt := pr.svc.changes.current()
	p, err := pr.authn.AuthenticateWithoutSession(ctx)
	if err != nil {
		writeFleetAuthRefusal(ctx, err)
		return
	}
	if ok, retry := pr.authn.AllowPrincipal(ratelimit.ScopeProxy, p); !ok {
		proxy.WriteTooManyRequests(ctx, retry)
		return
	}
	// kubectl --as is not served here: acting as someone else is decided
	// per cluster (their memberships), and a fleet request that quietly
	// ran as the caller instead would be the silent downgrade --as must
	// never be. A clear refusal instead.
	if ask, err := ParseActAs(&ctx.Request.Header); err != nil || ask.User != "" {
		proxy.WriteRefusal(ctx, fasthttp.StatusBadRequest, "impersonation (kubectl --as, Impersonate-* headers) is not served on the fleet path; use /proxy/clusters/<name>")
		return
	}
	values, err := url.ParseQuery(t.Query)
	if err != nil {
		proxy.WriteStatus(ctx, fasthttp.StatusBadRequest, "malformed query string")
		return
	}
	names, err := pr.svc.FleetSelection(p, values.Get(proxy.ParamClusters), values.Get(proxy.ParamClusterSelector), len(values[proxy.ParamClusters]) > 1 || len(values[proxy.ParamClusterSelector]) > 1)
	if err != nil {
		code := fasthttp.StatusBadRequest
		if fault.Is(err, fault.Forbidden) {
			code = fasthttp.StatusForbidden
		}
		proxy.WriteRefusal(ctx, code, faultMessage(err))
		return
	}
	if _, ok := values[proxy.ParamClusters]; ok || values.Has(proxy.ParamClusterSelector) {
		values.Del(proxy.ParamClusters)
		values.Del(proxy.ParamClusterSelector)
		t.Query = values.Encode()
	}
	clientIP := pr.authn.ClientIP(ctx).String()
	reauth := pr.authn.Reauthenticator(ctx, p)
	members := make([]proxy.FleetMember, 0, len(names))
	for _, n := range names {
		role, ok := pr.svc.Access(p, n)
		if !ok {
			continue // gone since FleetSelection looked
		}
		id := pr.svc.Identity(p, role, clientIP, httpapi.RequestID(ctx))
		id.StillAllowed, id.Refusal = pr.svc.streamAccess(reauth, p, n, id, checkedAt)
		id.StreamKey = p.UserID
		members = append(members, proxy.FleetMember{Cluster: n, Identity: id})
	}
	pr.proxy.ServeFleet(ctx, t, members)
}

// FleetSelection returns the clusters, sorted, that a fleet request of p
// covers: every live cluster p reaches, narrowed to those named in
// clusters (comma-separated) and to those whose labels match
// clusterSelector (a Kubernetes label selector: env=prod,tier in (edge)).
// A name p cannot reach — because it does not exist or because p is no
// member — is a Forbidden fault naming none of them, so that the answer
// does not tell which clusters exist. repeated refuses a parameter given
// twice.
func (s *Service) FleetSelection(p *identity.Principal, clusters, clusterSelector string, repeated bool) ([]string, error) {
	if repeated {
		return nil, fault.New(fault.Invalid, "give %s and %s at most once each", proxy.ParamClusters, proxy.ParamClusterSelector)
	}
	var sel labels.Selector
	if clusterSelector != "" {
		var err error
		if sel, err = labels.Parse(clusterSelector); err != nil {
			return nil, fault.New(fault.Invalid, "invalid %s: %v", proxy.ParamClusterSelector, err)
		}
	}
	var named []string
	if clusters != "" {
		for n := range strings.SplitSeq(clusters, ",") {
			n = strings.TrimSpace(n)
			if !proxy.ValidClusterName(n) {
				return nil, fault.New(fault.Invalid, "invalid %s: %q is not a cluster name", proxy.ParamClusters, shorten(n))
			}
			if !slices.Contains(named, n) {
				named = append(named, n)
			}
		}
		if len(named) > maxFleetNames {
			return nil, fault.New(fault.Invalid, "%s names more than %d clusters", proxy.ParamClusters, maxFleetNames)
		}
	}
	var out []string
	if named != nil {
		missing := 0
		for _, n := range named {
			if _, ok := s.Access(p, n); ok {
				out = append(out, n)
			} else {
				missing++
			}
		}
		if missing > 0 {
			return nil, fault.New(fault.Forbidden, "%d of the %d clusters named in %s do not exist or are not yours to reach; ask a Berth admin to add you to a cluster's members", missing, len(named), proxy.ParamClusters)
		}
	} else {
		for _, n := range s.Names() {
			if _, ok := s.Access(p, n); ok {
				out = append(out, n)
			}
		}
	}
	if sel != nil {
		out = slices.DeleteFunc(out, func(n string) bool {
			r, err := s.Get(n)
			return err != nil || !sel.Matches(labels.Set(r.Labels))
		})
	}
	slices.Sort(out)
	return out, nil
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// writeFleetAuthRefusal answers a fleet request whose credential was
// refused.
func writeFleetAuthRefusal(ctx *fasthttp.RequestCtx, err error) {
	msg := "Unauthorized"
	if m := faultMessage(err); m != "" && !fault.Is(err, fault.Internal) {
		msg = m
	}
	if fault.Is(err, fault.Forbidden) {
		proxy.WriteRefusal(ctx, fasthttp.StatusForbidden, msg)
		return
	}
	proxy.WriteRefusal(ctx, fasthttp.StatusUnauthorized, fmt.Sprintf("%s: sign in again for a new token, or use an API key", msg))
}

// faultMessage is the safe message of a fault, or "".
func faultMessage(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return ""
}
