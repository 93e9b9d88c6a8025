package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// apiRoutes is the one table of Berth's authenticated API: every route
// with the permission it needs. authn.Mount refuses a route whose
// permission is unknown, and the route-table test checks that every
// /api/v1 route registered on the router comes from here.
func (g *Gateway) apiRoutes() []authn.Route {
	h := g.identityAPI
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		public, signedIn    = authn.Public, authn.SignedIn
		auth                = ratelimit.ScopeAuth
	)
	return append([]authn.Route{
		// Sign-in and token endpoints: public, limited per client address.
		{Method: post, Path: "/api/v1/auth/login", Permission: public, AddrScope: auth, Handler: httpapi.Plain(h.Login)},
		{Method: post, Path: "/api/v1/auth/refresh", Permission: public, AddrScope: auth, Handler: httpapi.Plain(h.Refresh)},
		{Method: post, Path: "/api/v1/auth/token", Permission: public, AddrScope: auth, Handler: httpapi.Plain(h.Token)},
		{Method: get, Path: "/api/v1/cube/key/token", Permission: public, AddrScope: auth, Handler: httpapi.Plain(h.CubeToken)},
		{Method: post, Path: "/oauth/token", Permission: public, AddrScope: auth, Handler: httpapi.Plain(h.OAuthToken)},

		// The caller's own account and credentials.
		{Method: post, Path: "/api/v1/auth/logout", Permission: signedIn, Handler: httpapi.Plain(h.Logout)},
		{Method: get, Path: "/api/v1/auth/me", Permission: signedIn, Handler: httpapi.Plain(h.Me)},
		{Method: put, Path: "/api/v1/auth/me/password", Permission: signedIn, AddrScope: auth, Handler: httpapi.Plain(h.ChangePassword)},
		{Method: get, Path: "/api/v1/auth/me/login-history", Permission: signedIn, Handler: httpapi.Plain(h.MyLoginHistory)},
		{Method: get, Path: "/api/v1/auth/sessions", Permission: signedIn, Handler: httpapi.Plain(h.ListSessions)},
		{Method: del, Path: "/api/v1/auth/sessions/{id}", Permission: signedIn, Handler: httpapi.Plain(h.RevokeSession)},
		{Method: post, Path: "/api/v1/auth/api-keys", Permission: signedIn, Handler: httpapi.Plain(h.CreateAPIKey)},
		{Method: get, Path: "/api/v1/auth/api-keys", Permission: signedIn, Handler: httpapi.Plain(h.ListAPIKeys)},
		{Method: del, Path: "/api/v1/auth/api-keys/{id}", Permission: signedIn, Handler: httpapi.Plain(h.RevokeAPIKey)},
		{Method: post, Path: "/api/v1/auth/access-keys", Permission: signedIn, Handler: httpapi.Plain(h.CreateAccessKey)},
		{Method: get, Path: "/api/v1/auth/access-keys", Permission: signedIn, Handler: httpapi.Plain(h.ListAccessKeys)},
		{Method: del, Path: "/api/v1/auth/access-keys/{id}", Permission: signedIn, Handler: httpapi.Plain(h.DeleteAccessKey)},
		{Method: get, Path: "/api/v1/activities", Permission: signedIn, Handler: httpapi.Plain(h.Activities)},

		// Administration.
		{Method: get, Path: "/api/v1/users", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.ListUsers)},
		{Method: post, Path: "/api/v1/users", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.CreateUser)},
		{Method: get, Path: "/api/v1/users/{id}", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.GetUser)},
		{Method: put, Path: "/api/v1/users/{id}", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.UpdateUser)},
		{Method: del, Path: "/api/v1/users/{id}", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.DeleteUser)},
		{Method: post, Path: "/api/v1/users/{id}/password", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.ResetPassword)},
		{Method: get, Path: "/api/v1/users/{id}/login-history", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.UserLoginHistory)},
		{Method: get, Path: "/api/v1/roles", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.ListRoles)},
		{Method: post, Path: "/api/v1/roles", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.CreateRole)},
		{Method: get, Path: "/api/v1/roles/{name}", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.GetRole)},
		{Method: put, Path: "/api/v1/roles/{name}", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.UpdateRole)},
		{Method: del, Path: "/api/v1/roles/{name}", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.DeleteRole)},
		{Method: get, Path: "/api/v1/permissions", Permission: identity.PermUsersAdmin, Handler: httpapi.Plain(h.ListPermissions)},
		{Method: get, Path: "/api/v1/audit", Permission: identity.PermAuditRead, Handler: httpapi.Plain(h.Audit)},
		// Prometheus scrapes with an API key whose user holds metrics:read
		// (docs/operating.md): the metrics name every cluster.
		{Method: get, Path: "/metrics", Permission: identity.PermMetricsRead, Handler: httpapi.Plain(g.metrics.Handler())},
		{Method: get, Path: "/api/v1/plugins", Permission: pluginhost.PermAdmin, Handler: g.plugins.HandleList},
		{Method: post, Path: "/api/v1/plugins/{name}/reload", Permission: pluginhost.PermAdmin, Handler: g.plugins.HandleReload},
		{Method: get, Path: "/api/v1/tls/certificates", Permission: identity.PermSettingsAdmin, Handler: httpapi.Plain(g.edge.HandleCertificates)},
		{Method: get, Path: "/api/v1/signing-keys", Permission: identity.PermSettingsAdmin, Handler: httpapi.Plain(h.ListSigningKeys)},
		{Method: post, Path: "/api/v1/signing-keys/rotate", Permission: identity.PermSettingsAdmin, Handler: httpapi.Plain(h.RotateSigningKey)},
	}, append(g.clusterRoutes(), g.fleetOpsRoutes()...)...)
}
