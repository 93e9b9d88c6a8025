package breakglass

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// Handlers serve POST /api/v1/clusters/{name}/kubeconfig.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
}

// NewHandlers wires the endpoint.
func NewHandlers(svc *Service, a *authn.Authenticator) *Handlers {
	return &Handlers{svc: svc, authn: a}
}

// AdminKubeconfig is POST /api/v1/clusters/{name}/kubeconfig
// {"password": "…"}: a kubeconfig that reaches the cluster directly as a
// cluster-admin ServiceAccount, with a token valid for TokenTTL. It is a
// POST, never a GET, so no link, prefetch or cache can fetch one, and it
// answers with no-store.
func (h *Handlers) AdminKubeconfig(ctx *fasthttp.RequestCtx) {
	var req struct {
		Password string `json:"password"`
	}
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		httpapi.WriteError(ctx, e)
		return
	}
	if req.Password == "" {
		httpapi.WriteError(ctx, httpapi.BadRequest("password is required: type your current password again"))
		return
	}
	cluster, _ := ctx.UserValue("name").(string)
	iss, err := h.svc.Issue(ctx, authn.PrincipalFrom(ctx), cluster, req.Password, h.authn.AuditEvent(ctx))
	if err != nil {
		writeErr(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/yaml")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.Header.Set(fasthttp.HeaderPragma, "no-cache")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+cluster+`-admin.kubeconfig"`)
	ctx.SetBody(iss.Kubeconfig)
}

// writeErr maps Issue's errors to API errors.
func writeErr(ctx *fasthttp.RequestCtx, err error) {
	var (
		fe *fault.Error
		ce *ClusterError
	)
	switch {
	case errors.Is(err, ErrNotFound):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusNotFound, httpapi.CodeNotFound, "cluster not found"))
	case errors.Is(err, ErrNotPasswordUser), errors.Is(err, ErrNotClusterAdmin):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error()))
	case errors.As(err, &fe) && fe.Kind == fault.TooMany:
		secs := max(1, int((fe.RetryAfter+time.Second-1)/time.Second))
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, fmt.Sprint(secs))
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusTooManyRequests, httpapi.CodeRateLimited,
			"too many wrong passwords for this account; try again in %d seconds", secs))
	case errors.As(err, &fe) && fe.Kind == fault.Forbidden:
		// The session is valid (not 401); the password it was asked to
		// confirm is not.
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusForbidden, httpapi.CodeForbidden, "%s", fe.Message))
	case errors.As(err, &fe) && fe.Kind == fault.Invalid:
		httpapi.WriteError(ctx, httpapi.BadRequest("%s", fe.Message))
	case errors.Is(err, identity.ErrUnauthenticated):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusUnauthorized, httpapi.CodeUnauthorized, "invalid credentials"))
	case errors.As(err, &ce) && ce.Status == http.StatusForbidden:
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusForbidden, httpapi.CodeForbidden, "%s", ce.Message))
	case errors.Is(err, ErrCluster):
		httpapi.WriteError(ctx, httpapi.Errorf(fasthttp.StatusBadGateway, httpapi.CodeUnavailable, "%s", err.Error()))
	default:
		httpapi.WriteError(ctx, err)
	}
}
