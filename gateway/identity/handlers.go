package identity

import (
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
)

// Edge is what the handlers need from the edge's authentication
// (authn.Authenticator): where a request came from, the CSRF origin check
// a cookie sign-in must pass, and the session cookie's name. It is an
// interface, declared here, because authn imports identity.
type Edge interface {
	Meta(ctx *fasthttp.RequestCtx) Meta
	CheckOrigin(ctx *fasthttp.RequestCtx, required bool) error
	CookieName() string
}

// Handlers serves the identity endpoints over HTTP: sign-in and tokens
// (/api/v1/auth/*, the OAuth 2.0 token endpoint, KubeCube's access-key
// exchange), users, roles, signing keys and the audit log. Each handler
// decodes and validates its input, calls the Service, and shapes the
// answer, or returns an error that httpapi.Serve writes; which permission
// each needs is declared in the gateway's route table.
type Handlers struct {
	svc   *Service
	edge  Edge
	audit *audit.Log
}

// NewHandlers returns the handlers of svc.
func NewHandlers(svc *Service, edge Edge, log *audit.Log) *Handlers {
	return &Handlers{svc: svc, edge: edge, audit: log}
}

const principalKey = "berth.identity.principal"

// SetPrincipal records p as the request's caller. The edge's
// authentication calls it once the credential is verified.
func SetPrincipal(ctx *fasthttp.RequestCtx, p *Principal) { ctx.SetUserValue(principalKey, p) }

// PrincipalFrom returns the principal SetPrincipal recorded on the request,
// or nil.
func PrincipalFrom(ctx *fasthttp.RequestCtx) *Principal {
	p, _ := ctx.UserValue(principalKey).(*Principal)
	return p
}

// caller is the principal established by the route guard; the routes that
// use it need one.
func caller(ctx *fasthttp.RequestCtx) *Principal { return PrincipalFrom(ctx) }

// noStore marks responses that carry credentials as uncacheable (RFC 6749
// §5.1 asks this of token responses; it is right for every secret).
func noStore(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.Header.Set(fasthttp.HeaderPragma, "no-cache")
}

func pathParam(ctx *fasthttp.RequestCtx, name string) string {
	s, _ := ctx.UserValue(name).(string)
	return s
}

func noContent(ctx *fasthttp.RequestCtx) error {
	ctx.SetStatusCode(http.StatusNoContent)
	return nil
}

// tooLong refuses a field longer than n bytes before any work is done on
// it.
func tooLong(field string, v string, n int) error {
	if len(v) > n {
		return fault.New(fault.Invalid, "%s must be at most %d characters", field, n)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
