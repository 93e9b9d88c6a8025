package operations

import (
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// Handlers are the /api/v1/operations endpoints.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
	audit *audit.Log
	// access reports whether p may reach a live cluster.
	access func(p *identity.Principal, cluster string) bool
}

// NewHandlers wires the operations API. access says whether a principal
// may see a cluster; holders of clusters:write see every operation, those
// of deleted clusters included.
func NewHandlers(svc *Service, a *authn.Authenticator, au *audit.Log, access func(p *identity.Principal, cluster string) bool) *Handlers {
	return &Handlers{svc: svc, authn: a, audit: au, access: access}
}

func (h *Handlers) visible(p *identity.Principal) func(string) bool {
	if p.Can(identity.PermClustersWrite) && !p.Scoped() {
		return nil
	}
	return func(cluster string) bool { return h.access(p, cluster) }
}

// List is GET /api/v1/operations?status=&type=&cluster=, newest first.
func (h *Handlers) List(ctx *fasthttp.RequestCtx) error {
	return h.list(ctx, string(ctx.QueryArgs().Peek("cluster")))
}

// ListForCluster is GET /api/v1/clusters/{name}/operations.
func (h *Handlers) ListForCluster(ctx *fasthttp.RequestCtx) error {
	name, _ := ctx.UserValue("name").(string)
	if v := h.visible(authn.PrincipalFrom(ctx)); v != nil && !v(name) {
		return fault.New(fault.NotFound, "cluster not found")
	}
	return h.list(ctx, name)
}

func (h *Handlers) list(ctx *fasthttp.RequestCtx, cluster string) error {
	pg, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		return perr
	}
	args := ctx.QueryArgs()
	f := Filter{Status: Status(args.Peek("status")), Type: Type(args.Peek("type")), Cluster: cluster,
		Visible: h.visible(authn.PrincipalFrom(ctx))}
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return fault.New(fault.Invalid, "status must be one of pending, running, succeeded, failed, cancelled")
	}
	if f.Type != "" && !slices.Contains(Types, f.Type) {
		return fault.New(fault.Invalid, "type must be one of create, update, delete")
	}
	items, total, err := h.svc.List(f, pg.Page, pg.PageSize)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, pg))
	return nil
}

// find returns the operation named in the path if the caller may see it.
func (h *Handlers) find(ctx *fasthttp.RequestCtx) (*Operation, error) {
	id, _ := ctx.UserValue("id").(string)
	op, err := h.svc.Get(id)
	if err != nil {
		return nil, err
	}
	if v := h.visible(authn.PrincipalFrom(ctx)); v != nil && !v(op.Cluster) {
		return nil, ErrNotFound
	}
	return op, nil
}

// Get is GET /api/v1/operations/{id}.
func (h *Handlers) Get(ctx *fasthttp.RequestCtx) error {
	op, err := h.find(ctx)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, op)
	return nil
}

// Cancel is POST /api/v1/operations/{id}/cancel: 200 with the cancelled
// operation when it had not started, 202 when its worker will end it, 409
// when it has finished or can no longer be stopped.
func (h *Handlers) Cancel(ctx *fasthttp.RequestCtx) error {
	op, err := h.find(ctx)
	if err != nil {
		return err
	}
	by := ""
	if p := authn.PrincipalFrom(ctx); p != nil {
		by = p.UserID
	}
	out, err := h.svc.Cancel(op.ID, by)
	h.record(ctx, op, err)
	if err != nil {
		return err
	}
	status := fasthttp.StatusOK
	if out.Active() {
		status = fasthttp.StatusAccepted
	}
	httpapi.WriteJSON(ctx, status, out)
	return nil
}

func (h *Handlers) record(ctx *fasthttp.RequestCtx, op *Operation, err error) {
	ev := h.authn.AuditEvent(ctx)
	ev.Category, ev.Action, ev.ResourceType, ev.ResourceID = audit.CategorySettings, "operation.cancel", "operation", op.ID
	ev.Details = map[string]string{"cluster": op.Cluster, "type": string(op.Type)}
	ev.Result = audit.ResultSuccess
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, "not_cancellable"
	}
	h.audit.Record(ctx, ev)
}
