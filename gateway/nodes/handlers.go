package nodes

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// Drain timeouts a caller may ask for.
const (
	DefaultDrainTimeout = 2 * time.Minute
	MaxDrainTimeout     = time.Hour
)

// Handlers are the /api/v1/clusters/{name}/nodes endpoints.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
	audit *audit.Log
	// visible reports whether the caller may see the cluster at all, so a
	// non-member gets 404 before anything reaches the cluster.
	visible func(ctx *fasthttp.RequestCtx, cluster string) bool
}

// NewHandlers wires the node endpoints.
func NewHandlers(svc *Service, a *authn.Authenticator, au *audit.Log, visible func(*fasthttp.RequestCtx, string) bool) *Handlers {
	return &Handlers{svc: svc, authn: a, audit: au, visible: visible}
}

func params(ctx *fasthttp.RequestCtx) (cluster, node string) {
	cluster, _ = ctx.UserValue("name").(string)
	node, _ = ctx.UserValue("node").(string)
	return cluster, node
}

// List is GET /api/v1/clusters/{name}/nodes.
func (h *Handlers) List(ctx *fasthttp.RequestCtx) error {
	cluster, _ := params(ctx)
	if !h.visible(ctx, cluster) {
		return ErrNotFound
	}
	ns, err := h.svc.List(authn.PrincipalFrom(ctx), cluster)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(ns, len(ns), httpapi.Page{Page: 1, PageSize: max(len(ns), 1)}))
	return nil
}

// Get is GET /api/v1/clusters/{name}/nodes/{node}.
func (h *Handlers) Get(ctx *fasthttp.RequestCtx) error {
	cluster, node := params(ctx)
	if !h.visible(ctx, cluster) {
		return ErrNotFound
	}
	n, err := h.svc.Get(authn.PrincipalFrom(ctx), cluster, node)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, n)
	return nil
}

// Cordon is POST …/nodes/{node}/cordon.
func (h *Handlers) Cordon(ctx *fasthttp.RequestCtx) error { return h.setUnschedulable(ctx, true) }

// Uncordon is POST …/nodes/{node}/uncordon.
func (h *Handlers) Uncordon(ctx *fasthttp.RequestCtx) error { return h.setUnschedulable(ctx, false) }

func (h *Handlers) setUnschedulable(ctx *fasthttp.RequestCtx, on bool) error {
	cluster, node := params(ctx)
	if !h.visible(ctx, cluster) {
		return ErrNotFound
	}
	n, err := h.svc.SetUnschedulable(authn.PrincipalFrom(ctx), cluster, node, on)
	h.record(ctx, map[bool]string{true: "node.cordon", false: "node.uncordon"}[on], cluster, node, err, nil)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, n)
	return nil
}

// Drain is POST …/nodes/{node}/drain {timeout_seconds?}: cordon, then evict
// every pod a drain should move, honouring PodDisruptionBudgets.
func (h *Handlers) Drain(ctx *fasthttp.RequestCtx) error {
	cluster, node := params(ctx)
	var req struct {
		TimeoutSeconds int `json:"timeout_seconds"`
	}
	if len(ctx.PostBody()) > 0 {
		if e := httpapi.DecodeJSON(ctx, &req); e != nil {
			return e
		}
	}
	timeout := DefaultDrainTimeout
	if req.TimeoutSeconds != 0 {
		timeout = time.Duration(req.TimeoutSeconds) * time.Second
		if timeout < time.Second || timeout > MaxDrainTimeout {
			return fault.New(fault.Invalid, "timeout_seconds must be from 1 to %d", int(MaxDrainTimeout.Seconds()))
		}
	}
	if !h.visible(ctx, cluster) {
		return ErrNotFound
	}
	res, err := h.svc.Drain(ctx, authn.PrincipalFrom(ctx), cluster, node, timeout)
	details := map[string]string{}
	if res != nil {
		details["evicted"] = strings.Join(res.Evicted, ",")
	}
	h.record(ctx, "node.drain", cluster, node, err, details)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, res)
	return nil
}

func (h *Handlers) record(ctx *fasthttp.RequestCtx, action, cluster, node string, err error, details map[string]string) {
	if h.audit == nil {
		return
	}
	if details == nil {
		details = map[string]string{}
	}
	details["cluster"] = cluster
	ev := h.authn.AuditEvent(ctx)
	ev.Category, ev.Action, ev.ResourceType, ev.ResourceID, ev.Result, ev.Details = "cluster", action, "node", node, audit.ResultSuccess, details
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, "error"
	}
	h.audit.Record(ctx, ev)
}
