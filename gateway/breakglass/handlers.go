package breakglass

import (
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
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
func (h *Handlers) AdminKubeconfig(ctx *fasthttp.RequestCtx) error {
	var req struct {
		Password string `json:"password"`
	}
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		return e
	}
	if req.Password == "" {
		return fault.New(fault.Invalid, "password is required: type your current password again")
	}
	cluster, _ := ctx.UserValue("name").(string)
	iss, err := h.svc.Issue(ctx, authn.PrincipalFrom(ctx), cluster, req.Password, h.authn.AuditEvent(ctx))
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/yaml")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.Header.Set(fasthttp.HeaderPragma, "no-cache")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+cluster+`-admin.kubeconfig"`)
	ctx.SetBody(iss.Kubeconfig)
	return nil
}
