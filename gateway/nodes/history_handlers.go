package nodes

import (
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
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
func (h *HistoryHandlers) Events(ctx *fasthttp.RequestCtx) error {
	cluster, _ := params(ctx)
	pg, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		return perr
	}
	args := ctx.QueryArgs()
	node, kind := string(args.Peek("node")), string(args.Peek("kind"))
	if len(node) > maxNodeName {
		return fault.New(fault.Invalid, "node must be at most %d characters", maxNodeName)
	}
	if kind != "" && !slices.Contains(EventKinds, kind) {
		return fault.New(fault.Invalid, "kind must be one of %s", strings.Join(EventKinds, ", "))
	}
	if !h.visible(ctx, cluster) {
		return ErrNotFound
	}
	items, total, err := h.history.Events(EventQuery{Cluster: cluster, Node: node, Kind: kind, Page: pg.Page, PageSize: pg.PageSize})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, pg))
	return nil
}
