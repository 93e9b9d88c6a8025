package identity

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// auditPage is the answer of the audit endpoints: cursor-paged, newest
// first. next_cursor is "" on the last page.
type auditPage struct {
	Items      []audit.Event `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

// Audit handles GET /api/v1/audit (audit:read): every event, filtered by
// category, resource_type, action, actor and since.
func (h *Handlers) Audit(ctx *fasthttp.RequestCtx) error {
	q, err := parseAuditQuery(ctx, true)
	if err != nil {
		return err
	}
	return h.auditQuery(ctx, q)
}

// Activities handles GET /api/v1/activities: the caller's own events.
func (h *Handlers) Activities(ctx *fasthttp.RequestCtx) error {
	q, err := parseAuditQuery(ctx, false)
	if err != nil {
		return err
	}
	q.ActorID = caller(ctx).UserID
	return h.auditQuery(ctx, q)
}

func (h *Handlers) auditQuery(ctx *fasthttp.RequestCtx, q audit.Query) error {
	events, next, err := h.audit.Find(q)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, auditPage{Items: nonNil(events), NextCursor: next})
	return nil
}

// parseAuditQuery reads the filters, refusing unknown parameters so a
// misspelt filter does not silently return everything.
func parseAuditQuery(ctx *fasthttp.RequestCtx, admin bool) (audit.Query, error) {
	q := audit.Query{Limit: audit.DefaultLimit}
	for k, v := range ctx.QueryArgs().All() {
		val := string(v)
		if len(val) > 128 {
			return q, fault.New(fault.Invalid, "%s is too long", k)
		}
		switch string(k) {
		case "category":
			q.Category = val
		case "resource_type":
			q.ResourceType = val
		case "action":
			q.Action = val
		case "actor":
			if !admin {
				return q, fault.New(fault.Invalid, "actor is fixed to the caller here")
			}
			q.ActorID = val
		case "since":
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				return q, fault.New(fault.Invalid, "since must be an RFC 3339 time")
			}
			q.Since = t
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > audit.MaxLimit {
				return q, fault.New(fault.Invalid, "limit must be a whole number from 1 to %d", audit.MaxLimit)
			}
			q.Limit = n
		case "cursor":
			q.Cursor = val
		default:
			return q, fault.New(fault.Invalid, "unknown parameter %q", k)
		}
	}
	return q, nil
}
