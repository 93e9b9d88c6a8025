package identityapi

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
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
func (a *API) Audit(ctx *fasthttp.RequestCtx) {
	q, err := parseAuditQuery(ctx, true)
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	a.auditQuery(ctx, q)
}

// Activities handles GET /api/v1/activities: the caller's own events.
func (a *API) Activities(ctx *fasthttp.RequestCtx) {
	q, err := parseAuditQuery(ctx, false)
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	q.ActorID = principal(ctx).UserID
	a.auditQuery(ctx, q)
}

func (a *API) auditQuery(ctx *fasthttp.RequestCtx, q audit.Query) {
	events, next, err := a.audit.Find(q)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, auditPage{Items: nonNil(events), NextCursor: next})
}

// parseAuditQuery reads the filters, refusing unknown parameters so a
// misspelt filter does not silently return everything.
func parseAuditQuery(ctx *fasthttp.RequestCtx, admin bool) (audit.Query, *httpapi.Error) {
	q := audit.Query{Limit: audit.DefaultLimit}
	var bad *httpapi.Error
	ctx.QueryArgs().VisitAll(func(k, v []byte) {
		if bad != nil {
			return
		}
		val := string(v)
		if len(val) > 128 {
			bad = httpapi.BadRequest("%s is too long", k)
			return
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
				bad = httpapi.BadRequest("actor is fixed to the caller here")
				return
			}
			q.ActorID = val
		case "since":
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				bad = httpapi.BadRequest("since must be an RFC 3339 time")
				return
			}
			q.Since = t
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > audit.MaxLimit {
				bad = httpapi.BadRequest("limit must be a whole number from 1 to %d", audit.MaxLimit)
				return
			}
			q.Limit = n
		case "cursor":
			q.Cursor = val
		default:
			bad = httpapi.BadRequest("unknown parameter %q", k)
		}
	})
	return q, bad
}
