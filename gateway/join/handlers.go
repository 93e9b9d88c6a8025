package join

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// Handlers are the join-token endpoints and /join.
type Handlers struct {
	svc       *Service
	authn     *authn.Authenticator
	publicURL func(*fasthttp.RequestCtx) string
}

// NewHandlers wires the join endpoints; publicURL says where edge machines
// reach Berth, for the join command.
func NewHandlers(svc *Service, a *authn.Authenticator, publicURL func(*fasthttp.RequestCtx) string) *Handlers {
	return &Handlers{svc: svc, authn: a, publicURL: publicURL}
}

// View is a join token's metadata; the value is never shown again.
type View struct {
	ID            string    `json:"id"`
	Cluster       string    `json:"cluster"`
	DisplayPrefix string    `json:"display_prefix"`
	Status        string    `json:"status"`
	Uses          int       `json:"uses"`
	MaxUses       int       `json:"max_uses,omitempty"`
	ExpiresAt     time.Time `json:"expires_at"`
	CreatedBy     string    `json:"created_by"`
	UsedBy        []string  `json:"used_by,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

func (h *Handlers) view(t *Token) View {
	return View{ID: t.ID, Cluster: t.Cluster, DisplayPrefix: t.ID + ".", Status: t.Status(h.svc.now()), Uses: t.Uses, MaxUses: t.MaxUses,
		ExpiresAt: t.ExpiresAt, CreatedBy: t.CreatedBy, UsedBy: t.UsedBy, CreatedAt: t.CreatedAt}
}

func (h *Handlers) event(ctx *fasthttp.RequestCtx) audit.Event { return h.authn.AuditEvent(ctx) }

// Create is POST /api/v1/clusters/{name}/join-tokens {ttl_seconds, max_uses?}.
func (h *Handlers) Create(ctx *fasthttp.RequestCtx) error {
	var req struct {
		TTLSeconds int `json:"ttl_seconds"`
		MaxUses    int `json:"max_uses"`
	}
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		return e
	}
	cluster, _ := ctx.UserValue("name").(string)
	p := authn.PrincipalFrom(ctx)
	c, err := h.svc.Create(ctx, p, cluster, time.Duration(req.TTLSeconds)*time.Second, req.MaxUses, h.event(ctx))
	if err != nil {
		return err
	}
	url := strings.TrimSuffix(h.publicURL(ctx), "/") + "/join?token=" + c.Value
	ctx.Response.Header.Set("Cache-Control", "no-store")
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, map[string]any{
		"id": c.Token.ID, "value": c.Value, "expires_at": c.Token.ExpiresAt,
		"join_command": "curl -sfL '" + url + "' | sh -",
	})
	return nil
}

// List is GET /api/v1/clusters/{name}/join-tokens.
func (h *Handlers) List(ctx *fasthttp.RequestCtx) error {
	cluster, _ := ctx.UserValue("name").(string)
	if _, ok := h.svc.clusters.Access(authn.PrincipalFrom(ctx), cluster); !ok {
		return ErrNotFound
	}
	ts, err := h.svc.List(cluster)
	if err != nil {
		return err
	}
	views := make([]View, 0, len(ts))
	for i := range ts {
		views = append(views, h.view(&ts[i]))
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(views, len(views), httpapi.Page{Page: 1, PageSize: max(len(views), 1)}))
	return nil
}

// Revoke is DELETE /api/v1/join-tokens/{id}.
func (h *Handlers) Revoke(ctx *fasthttp.RequestCtx) error {
	id, _ := ctx.UserValue("id").(string)
	if err := h.svc.Revoke(ctx, authn.PrincipalFrom(ctx), id, h.event(ctx)); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// Script is GET /join?token=…: the node join script, or 404 — the same
// 404 for a malformed, unknown, expired, revoked or used-up token. The
// route is rate-limited per client address (join scope) by its table
// entry; the token is never logged (the access log redacts it).
func (h *Handlers) Script(ctx *fasthttp.RequestCtx) error {
	value := string(ctx.QueryArgs().Peek("token"))
	t, _, err := h.svc.Redeem(ctx, value, h.authn.ClientIP(ctx).String())
	if err != nil {
		return ErrNotFound
	}
	server, ca, err := h.svc.clusters.Endpoint(t.Cluster)
	if err != nil {
		return ErrNotFound
	}
	hash, err := CAHash(ca)
	if err != nil {
		return err
	}
	script, err := Script(ScriptInput{Cluster: t.Cluster, APIServer: server, CAPEM: ca, CAHash: hash, BootstrapToken: value})
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/x-shellscript; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(script)
	return nil
}

// AddrScope is the rate-limit scope of /join.
const AddrScope = ratelimit.ScopeJoin
