package nodes

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// The fleet's nodes: every node of every cluster the caller reaches, and
// the node history of all of them, on the machinery of one cluster's
// (List, each cluster read as the caller; History.Events).

// fleetConcurrency bounds the clusters read at once for one request.
const fleetConcurrency = 8

// Node-event limits of GET /api/v1/node-events.
const (
	DefaultFleetEventLimit = 100
	MaxFleetEventLimit     = 1000
)

// ClusterFailure is a cluster left out of a fleet answer, and why.
type ClusterFailure struct {
	Cluster string `json:"cluster"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// FleetNodes is the answer of GET /api/v1/nodes.
type FleetNodes struct {
	Items []Node `json:"items"`
	Total int    `json:"total"`
	// FailedClusters are the clusters whose nodes could not be read (their
	// RBAC refused the caller, or they did not answer); the others' nodes
	// are still listed.
	FailedClusters []ClusterFailure `json:"failed_clusters"`
}

// FleetEvents is the answer of GET /api/v1/node-events.
type FleetEvents struct {
	Items []Event `json:"items"`
	Total int     `json:"total"`
}

// FleetHandlers serve the fleet's nodes and node history.
type FleetHandlers struct {
	svc     *Service
	history *History
	// reach lists, sorted, the clusters the caller may reach.
	reach func(p *identity.Principal) []string
}

// NewFleetHandlers wires GET /api/v1/nodes and GET /api/v1/node-events.
func NewFleetHandlers(svc *Service, h *History, reach func(*identity.Principal) []string) *FleetHandlers {
	return &FleetHandlers{svc: svc, history: h, reach: reach}
}

// Nodes is GET /api/v1/nodes: every node of every cluster the caller
// reaches, read from each as the caller (so each cluster's RBAC decides),
// sorted by cluster then name. A cluster that refuses or fails is named in
// failed_clusters; the rest still answer.
func (h *FleetHandlers) Nodes(ctx *fasthttp.RequestCtx) error {
	p := authn.PrincipalFrom(ctx)
	names := h.reach(p)
	lists := make([][]Node, len(names))
	fails := make([]*ClusterFailure, len(names))
	sem := make(chan struct{}, fleetConcurrency)
	var wg sync.WaitGroup
	for i, c := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ns, err := h.svc.List(p, c)
			if err != nil {
				code, _ := httpapi.StatusOf(fault.KindOf(err))
				fails[i] = &ClusterFailure{Cluster: c, Code: code, Message: safeMessage(err)}
				return
			}
			for j := range ns {
				ns[j].Cluster = c
			}
			lists[i] = ns
		}()
	}
	wg.Wait()
	out := FleetNodes{Items: []Node{}, FailedClusters: []ClusterFailure{}}
	for i := range names {
		out.Items = append(out.Items, lists[i]...)
		if fails[i] != nil {
			out.FailedClusters = append(out.FailedClusters, *fails[i])
		}
	}
	out.Total = len(out.Items)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, out)
	return nil
}

// safeMessage is what a caller may read of err.
func safeMessage(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return "internal error"
}

// Events is GET /api/v1/node-events?cluster=&node=&type=&limit=: the newest
// node events of the clusters the caller reaches (or of cluster=, 404 if
// the caller does not reach it, as for one that does not exist), newest
// first; type is an event kind (joined, ready, not_ready, offline,
// deleted); limit is 1 to 1000 (default 100). total counts every match.
func (h *FleetHandlers) Events(ctx *fasthttp.RequestCtx) error {
	args := ctx.QueryArgs()
	cluster, node, kind := string(args.Peek("cluster")), string(args.Peek("node")), string(args.Peek("type"))
	limit := DefaultFleetEventLimit
	if s := string(args.Peek("limit")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxFleetEventLimit {
			return fault.New(fault.Invalid, "limit must be from 1 to %d", MaxFleetEventLimit)
		}
		limit = n
	}
	if len(node) > maxNodeName {
		return fault.New(fault.Invalid, "node must be at most %d characters", maxNodeName)
	}
	if kind != "" && !slices.Contains(EventKinds, kind) {
		return fault.New(fault.Invalid, "type must be one of %s", strings.Join(EventKinds, ", "))
	}
	names := h.reach(authn.PrincipalFrom(ctx))
	if cluster != "" {
		if !slices.Contains(names, cluster) {
			return ErrNotFound
		}
		names = []string{cluster}
	}
	out := FleetEvents{Items: []Event{}}
	for _, c := range names {
		items, total, err := h.history.Events(EventQuery{Cluster: c, Node: node, Kind: kind, Page: 1, PageSize: limit})
		if err != nil {
			return err
		}
		out.Items = append(out.Items, items...)
		out.Total += total
	}
	slices.SortStableFunc(out.Items, func(a, b Event) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	out.Items = out.Items[:min(len(out.Items), limit)]
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, out)
	return nil
}
