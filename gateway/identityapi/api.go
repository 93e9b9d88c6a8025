// Package identityapi serves Berth's identity endpoints over HTTP: sign-in
// and tokens (/api/v1/auth/*, the OAuth 2.0 token endpoint, KubeCube's
// access-key exchange), users, roles, and the audit log. Handlers decode
// and validate input, call identity.Service, and shape the answer; which
// permission each needs is declared in the gateway's route table.
package identityapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// API holds the handlers' dependencies.
type API struct {
	svc   *identity.Service
	auth  *authn.Authenticator
	audit *audit.Log
	log   *slog.Logger
}

// New returns the handlers.
func New(svc *identity.Service, auth *authn.Authenticator, log *audit.Log, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{svc: svc, auth: auth, audit: log, log: logger}
}

// fail answers err in the JSON error shape, mapping identity's refusals to
// their statuses. Anything unexpected is logged with the request id and
// answered as a bare 500.
func (a *API) fail(ctx *fasthttp.RequestCtx, err error) {
	var (
		ie *identity.Error
		le *identity.LockedError
		he *httpapi.Error
	)
	switch {
	case errors.As(err, &he):
		httpapi.WriteError(ctx, he)
	case errors.As(err, &ie):
		status, code := fasthttp.StatusBadRequest, httpapi.CodeInvalidRequest
		switch ie.Kind {
		case identity.KindForbidden:
			status, code = fasthttp.StatusForbidden, httpapi.CodeForbidden
		case identity.KindNotFound:
			status, code = fasthttp.StatusNotFound, httpapi.CodeNotFound
		case identity.KindConflict:
			status, code = fasthttp.StatusConflict, httpapi.CodeConflict
		}
		httpapi.WriteError(ctx, httpapi.Errorf(status, code, "%s", ie.Message))
	case errors.As(err, &le):
		secs := max(1, int((le.RetryAfter+time.Second-1)/time.Second))
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, fmt.Sprint(secs))
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusTooManyRequests, httpapi.CodeRateLimited,
			"too many failed sign-ins for this account; try again in %d seconds", secs))
	case errors.Is(err, identity.ErrInvalidCredentials):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusUnauthorized, httpapi.CodeUnauthorized, "invalid username or password"))
	case errors.Is(err, identity.ErrInvalidGrant):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusUnauthorized, httpapi.CodeUnauthorized, "invalid, expired or already used refresh token"))
	case errors.Is(err, identity.ErrUnauthenticated):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusUnauthorized, httpapi.CodeUnauthorized, "invalid credentials"))
	default:
		a.log.Error("request failed", "request_id", httpapi.RequestID(ctx), "route", string(ctx.Path()), "err", err)
		httpapi.WriteError(ctx, err)
	}
}

// principal is the caller established by the route guard.
func principal(ctx *fasthttp.RequestCtx) *identity.Principal { return authn.PrincipalFrom(ctx) }

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

func noContent(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(http.StatusNoContent) }

// tooLong refuses a field longer than n bytes before any work is done on
// it.
func tooLong(field string, v string, n int) *httpapi.Error {
	if len(v) > n {
		return httpapi.BadRequest("%s must be at most %d characters", field, n)
	}
	return nil
}
