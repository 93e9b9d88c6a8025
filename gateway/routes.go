package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/apidoc"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/sso"
)

// apiRoutes is the one table of Berth's authenticated API: every route
// with the permission it needs. authn.Mount refuses a route whose
// permission is unknown, and the route-table test checks that every
// /api/v1 route registered on the router comes from here.
func (g *Gateway) apiRoutes() []authn.Route {
	return append(append(append(IdentityRoutes(g.identityAPI), sso.Routes(g.ssoAPI)...), []authn.Route{
		// Prometheus scrapes with an API key whose user holds metrics:read
		// (docs/operating.md): the metrics name every cluster.
		{Method: fasthttp.MethodGet, Path: "/metrics", Permission: identity.PermMetricsRead, Handler: g.metrics.Handler()},
		{Method: fasthttp.MethodGet, Path: "/api/v1/plugins", Permission: pluginhost.PermAdmin, Handler: g.plugins.HandleList},
		{Method: fasthttp.MethodPost, Path: "/api/v1/plugins/{name}/reload", Permission: pluginhost.PermAdmin, Handler: g.plugins.HandleReload},
		{Method: fasthttp.MethodGet, Path: "/api/v1/tls/certificates", Permission: identity.PermSettingsAdmin, Handler: g.edge.HandleCertificates},
		// The API's own description: public, it holds no configuration.
		{Method: fasthttp.MethodGet, Path: "/api/v1/openapi.json", Permission: authn.Public, Handler: apidoc.Handle},
	}...), append(append(append(append(g.clusterRoutes(), g.fleetOpsRoutes()...), g.notifyRoutes()...), g.billingRoutes()...), g.hostnameRoutes()...)...)
}

// IdentityRoutes is identity's block of the table: sign-in, the caller's
// own account, users, roles, audit and signing keys. It is exported for
// identity's handler tests, which serve exactly these lines.
func IdentityRoutes(h *identity.Handlers) []authn.Route {
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		public, signedIn    = authn.Public, authn.SignedIn
		auth                = ratelimit.ScopeAuth
	)
	return []authn.Route{
		// Sign-in and token endpoints: public, limited per client address.
		{Method: post, Path: "/api/v1/auth/login", Permission: public, AddrScope: auth, Handler: h.Login},
		{Method: post, Path: "/api/v1/auth/refresh", Permission: public, AddrScope: auth, Handler: h.Refresh},
		{Method: post, Path: "/api/v1/auth/token", Permission: public, AddrScope: auth, Handler: h.Token},
		{Method: get, Path: "/api/v1/cube/key/token", Permission: public, AddrScope: auth, Handler: h.CubeToken},
		{Method: post, Path: "/oauth/token", Permission: public, AddrScope: auth, Handler: h.OAuthToken},

		// The caller's own account and credentials.
		{Method: post, Path: "/api/v1/auth/logout", Permission: signedIn, Handler: h.Logout},
		{Method: get, Path: "/api/v1/auth/me", Permission: signedIn, Handler: h.Me},
		{Method: put, Path: "/api/v1/auth/me/password", Permission: signedIn, AddrScope: auth, Handler: h.ChangePassword},
		{Method: get, Path: "/api/v1/auth/me/login-history", Permission: signedIn, Handler: h.MyLoginHistory},
		{Method: get, Path: "/api/v1/auth/sessions", Permission: signedIn, Handler: h.ListSessions},
		{Method: del, Path: "/api/v1/auth/sessions/{id}", Permission: signedIn, Handler: h.RevokeSession},
		{Method: post, Path: "/api/v1/auth/api-keys", Permission: signedIn, Handler: h.CreateAPIKey},
		{Method: get, Path: "/api/v1/auth/api-keys", Permission: signedIn, Handler: h.ListAPIKeys},
		{Method: del, Path: "/api/v1/auth/api-keys/{id}", Permission: signedIn, Handler: h.RevokeAPIKey},
		{Method: post, Path: "/api/v1/auth/access-keys", Permission: signedIn, Handler: h.CreateAccessKey},
		{Method: get, Path: "/api/v1/auth/access-keys", Permission: signedIn, Handler: h.ListAccessKeys},
		{Method: del, Path: "/api/v1/auth/access-keys/{id}", Permission: signedIn, Handler: h.DeleteAccessKey},
		{Method: get, Path: "/api/v1/activities", Permission: signedIn, Handler: h.Activities},

		// Administration.
		{Method: get, Path: "/api/v1/users", Permission: identity.PermUsersAdmin, Handler: h.ListUsers},
		{Method: post, Path: "/api/v1/users", Permission: identity.PermUsersAdmin, Handler: h.CreateUser},
		{Method: get, Path: "/api/v1/users/{id}", Permission: identity.PermUsersAdmin, Handler: h.GetUser},
		{Method: put, Path: "/api/v1/users/{id}", Permission: identity.PermUsersAdmin, Handler: h.UpdateUser},
		{Method: del, Path: "/api/v1/users/{id}", Permission: identity.PermUsersAdmin, Handler: h.DeleteUser},
		{Method: post, Path: "/api/v1/users/{id}/password", Permission: identity.PermUsersAdmin, Handler: h.ResetPassword},
		{Method: get, Path: "/api/v1/users/{id}/login-history", Permission: identity.PermUsersAdmin, Handler: h.UserLoginHistory},
		{Method: get, Path: "/api/v1/roles", Permission: identity.PermUsersAdmin, Handler: h.ListRoles},
		{Method: post, Path: "/api/v1/roles", Permission: identity.PermUsersAdmin, Handler: h.CreateRole},
		{Method: get, Path: "/api/v1/roles/{name}", Permission: identity.PermUsersAdmin, Handler: h.GetRole},
		{Method: put, Path: "/api/v1/roles/{name}", Permission: identity.PermUsersAdmin, Handler: h.UpdateRole},
		{Method: del, Path: "/api/v1/roles/{name}", Permission: identity.PermUsersAdmin, Handler: h.DeleteRole},
		{Method: get, Path: "/api/v1/permissions", Permission: identity.PermUsersAdmin, Handler: h.ListPermissions},
		{Method: get, Path: "/api/v1/audit", Permission: identity.PermAuditRead, Handler: h.Audit},
		{Method: get, Path: "/api/v1/signing-keys", Permission: identity.PermSettingsAdmin, Handler: h.ListSigningKeys},
		{Method: post, Path: "/api/v1/signing-keys/rotate", Permission: identity.PermSettingsAdmin, Handler: h.RotateSigningKey},
	}
}
