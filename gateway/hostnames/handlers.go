package hostnames

import (
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// Handlers are the hostname and DNS settings endpoints.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
	audit *audit.Log
	// access is the role the caller holds on a cluster.
	access func(p *identity.Principal, cluster string) (string, bool)
}

// NewHandlers wires the API.
func NewHandlers(svc *Service, a *authn.Authenticator, au *audit.Log, access func(*identity.Principal, string) (string, bool)) *Handlers {
	return &Handlers{svc: svc, authn: a, audit: au, access: access}
}

// Routes is the hostnames' block of the gateway's route table.
func Routes(h *Handlers) []authn.Route {
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		member              = identity.PermClustersRead
	)
	return []authn.Route{
		{Method: get, Path: "/api/v1/clusters/{name}/hostnames", Permission: member, Handler: h.List},
		{Method: post, Path: "/api/v1/clusters/{name}/hostnames", Permission: member, Handler: h.Bind},
		{Method: del, Path: "/api/v1/clusters/{name}/hostnames", Permission: member, Handler: h.Unbind},
		{Method: del, Path: "/api/v1/clusters/{name}/hostnames/{hostname}", Permission: member, Handler: h.Unbind},
		{Method: get, Path: "/api/v1/dns/settings", Permission: identity.PermSettingsAdmin, Handler: h.GetSettings},
		{Method: put, Path: "/api/v1/dns/settings", Permission: identity.PermSettingsAdmin, Handler: h.PutSettings},
	}
}

// bindRole is the weakest cluster role that may bind and unbind its
// hostnames: a hostname sends the public's traffic to the cluster.
const bindRole = "admin"

// cluster returns the path's cluster if the caller may see it (404
// otherwise, as for a cluster that does not exist) and, with change, may
// bind its hostnames.
func (h *Handlers) cluster(ctx *fasthttp.RequestCtx, change bool) (string, error) {
	name, _ := ctx.UserValue("name").(string)
	p := authn.PrincipalFrom(ctx)
	role, ok := h.access(p, name)
	if !ok {
		return "", clusters.ErrNotFound
	}
	if !change {
		return name, nil
	}
	if slices.Index(clusters.Roles, role) < slices.Index(clusters.Roles, bindRole) {
		return "", fault.New(fault.Forbidden, "binding hostnames needs the %s role on cluster %s; you hold %s", bindRole, name, role)
	}
	if p.Scoped() {
		// A kubeconfig's or CI's key travels with a file; claiming a
		// public name is its owner's act.
		return "", fault.New(fault.Forbidden, "a scoped API key cannot bind hostnames; sign in")
	}
	return name, nil
}

// List is GET /api/v1/clusters/{name}/hostnames: the cluster's own name
// (ingress_cname_target) and its state, and its hostnames.
func (h *Handlers) List(ctx *fasthttp.RequestCtx) error {
	name, err := h.cluster(ctx, false)
	if err != nil {
		return err
	}
	items, st, err := h.svc.Bindings(name)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"cluster": st, "ingress_cname_target": st.IngressTarget, "items": items})
	return nil
}

// Bind is POST /api/v1/clusters/{name}/hostnames {hostname}. Refusals
// are audited too, a caller's lack of rights among them.
func (h *Handlers) Bind(ctx *fasthttp.RequestCtx) error {
	name, err := h.cluster(ctx, true)
	if err != nil {
		h.record(ctx, "dns.hostname.bind", pathCluster(ctx), "", err)
		return err
	}
	var in struct {
		Hostname string `json:"hostname"`
	}
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	b, err := h.svc.Bind(name, in.Hostname, authn.PrincipalFrom(ctx).UserID)
	h.record(ctx, "dns.hostname.bind", name, in.Hostname, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, b)
	return nil
}

// Unbind is DELETE /api/v1/clusters/{name}/hostnames/{hostname}, or the
// collection with {hostname} in the body or ?hostname=.
func (h *Handlers) Unbind(ctx *fasthttp.RequestCtx) error {
	name, err := h.cluster(ctx, true)
	if err != nil {
		h.record(ctx, "dns.hostname.unbind", pathCluster(ctx), "", err)
		return err
	}
	hostname, _ := ctx.UserValue("hostname").(string)
	if hostname == "" {
		hostname = string(ctx.QueryArgs().Peek("hostname"))
	}
	if hostname == "" && len(ctx.PostBody()) > 0 {
		var in struct {
			Hostname string `json:"hostname"`
		}
		if err := httpapi.DecodeJSON(ctx, &in); err != nil {
			return err
		}
		hostname = in.Hostname
	}
	if hostname == "" {
		return fault.New(fault.Invalid, "name the hostname to unbind")
	}
	_, err = h.svc.Unbind(name, hostname)
	h.record(ctx, "dns.hostname.unbind", name, hostname, err)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// GetSettings is GET /api/v1/dns/settings.
func (h *Handlers) GetSettings(ctx *fasthttp.RequestCtx) error {
	s, err := h.svc.Settings()
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, s)
	return nil
}

// PutSettings is PUT /api/v1/dns/settings: the whole settings object.
func (h *Handlers) PutSettings(ctx *fasthttp.RequestCtx) error {
	var in Settings
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	out, err := h.svc.SaveSettings(in)
	h.record(ctx, "dns.settings.update", "", in.BaseDomain, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, out)
	return nil
}

// pathCluster is the path's cluster name as the caller sent it, for the
// audit of a refusal.
func pathCluster(ctx *fasthttp.RequestCtx) string {
	name, _ := ctx.UserValue("name").(string)
	return cut(name)
}

// record audits a change, or its refusal. name is the caller's, cut to
// a bounded length (a hostname is at most 253 characters; a body may
// carry far more).
func (h *Handlers) record(ctx *fasthttp.RequestCtx, action, cluster, name string, err error) {
	ev := h.authn.ChangeEvent(ctx, action, "hostname", cut(name), err)
	if cluster != "" {
		ev.Details = map[string]string{"cluster": cluster}
	}
	h.audit.Record(ctx, ev)
}
