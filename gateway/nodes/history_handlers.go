package nodes

import (
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

// HistoryHandlers serve a cluster's node history.
type HistoryHandlers struct {
	history *History
	// visible reports whether the caller may see the cluster at all, so
	// other teams' clusters and their nodes do not leak.
	visible func(ctx *fasthttp.RequestCtx, cluster string) bool
}

// NewHistoryHandlers wires the node-events endpoint.
func NewHistoryHandlers(h *History, visible func(*fasthttp.RequestCtx, string) bool) *HistoryHandlers {
	return &HistoryHandlers{history: h, visible: visible}
}

// maxNodeName is the longest Node name Kubernetes allows (a DNS-1123
// subdomain).
const maxNodeName = 253

// Events is GET /api/v1/clusters/{name}/node-events?node=&kind=&page=&page_size=:
// the cluster's node events, newest first.
func (h *HistoryHandlers) Events(ctx *fasthttp.RequestCtx) {
	cluster, _ := params(ctx)
	pg, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	args := ctx.QueryArgs()
	node, kind := string(args.Peek("node")), string(args.Peek("kind"))
	if len(node) > maxNodeName {
		httpapi.WriteError(ctx, httpapi.BadRequest("node must be at most %d characters", maxNodeName))
		return
	}
	if kind != "" && !slices.Contains(EventKinds, kind) {
		httpapi.WriteError(ctx, httpapi.BadRequest("kind must be one of %s", strings.Join(EventKinds, ", ")))
		return
	}
	if !h.visible(ctx, cluster) {
		writeErr(ctx, ErrNotFound)
		return
	}
	items, total, err := h.history.Events(EventQuery{Cluster: cluster, Node: node, Kind: kind, Page: pg.Page, PageSize: pg.PageSize})
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, pg))
}
