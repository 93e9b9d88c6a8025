package authn

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// Route permissions besides the identity.Perm* strings.
const (
	// Public routes need no credentials (sign-in, token endpoints).
	Public = "public"
	// SignedIn routes need a principal but no particular permission:
	// a user's own profile, keys and sessions.
	SignedIn = "signed_in"
)

// Route is one entry of the gateway's route table: every route states the
// permission it needs, so authorization is read in one place.
type Route struct {
	Method, Path string
	// Permission is Public, SignedIn or a permission string.
	Permission string
	// AddrScope, when set, rate-limits the route per client address in
	// that scope before anything else runs (ratelimit.ScopeAuth for the
	// sign-in and token endpoints).
	AddrScope string
	// PrincipalScope rate-limits authenticated requests per principal;
	// empty means ratelimit.ScopeAPI.
	PrincipalScope string
	// Handler answers the request or returns an error, which the guard's
	// httpapi.Serve writes.
	Handler httpapi.Handler
}

// Mount registers routes on r, each wrapped by Guard. It refuses a route
// whose permission is neither Public, SignedIn nor a known permission, so a
// typo cannot leave a route open.
func (a *Authenticator) Mount(r *router.Router, routes []Route) error {
	for _, rt := range routes {
		switch {
		case rt.Permission == Public, rt.Permission == SignedIn, identity.KnownPermission(rt.Permission):
		default:
			return fmt.Errorf("route %s %s: unknown permission %q", rt.Method, rt.Path, rt.Permission)
		}
		if rt.Handler == nil || rt.Method == "" || !strings.HasPrefix(rt.Path, "/") {
			return fmt.Errorf("route %s %s: incomplete", rt.Method, rt.Path)
		}
		r.Handle(rt.Method, rt.Path, httpapi.Serve(a.log, a.Guard(rt)))
	}
	return nil
}

// Guard wraps a route's handler: address rate limit, authentication,
// permission check, per-principal rate limit — in that order, so the
// cheapest refusals come first.
func (a *Authenticator) Guard(rt Route) httpapi.Handler {
	principalScope := rt.PrincipalScope
	if principalScope == "" {
		principalScope = ratelimit.ScopeAPI
	}
	return func(ctx *fasthttp.RequestCtx) error {
		if rt.AddrScope != "" {
			if ok, wait := a.limiter.Allow(rt.AddrScope, ratelimit.Key(a.ClientIP(ctx))); !ok {
				return tooMany(wait)
			}
		}
		if rt.Permission == Public {
			return rt.Handler(ctx)
		}
		p, err := a.Authenticate(ctx)
		if err != nil {
			return challenge(ctx, err)
		}
		if rt.Permission != SignedIn && !p.Can(rt.Permission) {
			return fault.New(fault.Forbidden, "this needs the %s permission", rt.Permission)
		}
		if ok, wait := a.AllowPrincipal(principalScope, p); !ok {
			return tooMany(wait)
		}
		return rt.Handler(ctx)
	}
}

// AddrKey is the rate-limit key of the request's client address.
func (a *Authenticator) AddrKey(ctx *fasthttp.RequestCtx) string {
	return ratelimit.Key(a.ClientIP(ctx))
}

func peer(ctx *fasthttp.RequestCtx) netip.Addr {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}
