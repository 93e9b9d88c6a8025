package notify

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// Handlers are the /api/v1/notifications endpoints and the caller's own
// settings at /api/v1/auth/me/notifications.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
	audit *audit.Log
}

// NewHandlers wires the notifications API.
func NewHandlers(svc *Service, a *authn.Authenticator, au *audit.Log) *Handlers {
	return &Handlers{svc: svc, authn: a, audit: au}
}

// record audits an administrative change.
func (h *Handlers) record(ctx *fasthttp.RequestCtx, action, kind, id string, err error) {
	h.audit.Record(ctx, h.authn.ChangeEvent(ctx, action, kind, id, err))
}

func pathValue(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// readChannel reads a channel body: strict JSON content type, an object.
func readChannel(ctx *fasthttp.RequestCtx) (ChannelInput, error) {
	var raw json.RawMessage
	if err := httpapi.DecodeJSON(ctx, &raw); err != nil {
		return ChannelInput{}, err
	}
	return ParseChannelInput(raw)
}

// ListChannels is GET /api/v1/notifications/channels.
func (h *Handlers) ListChannels(ctx *fasthttp.RequestCtx) error {
	cs, err := h.svc.ListChannels()
	if err != nil {
		return err
	}
	views := make([]map[string]any, len(cs))
	for i := range cs {
		views[i] = cs[i].View()
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": views})
	return nil
}

// GetChannel is GET /api/v1/notifications/channels/{name}.
func (h *Handlers) GetChannel(ctx *fasthttp.RequestCtx) error {
	c, err := h.svc.Channel(pathValue(ctx, "name"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, c.View())
	return nil
}

// CreateChannel is POST /api/v1/notifications/channels.
func (h *Handlers) CreateChannel(ctx *fasthttp.RequestCtx) error {
	in, err := readChannel(ctx)
	if err != nil {
		return err
	}
	c, err := h.svc.SaveChannel(ctx, "", in)
	h.record(ctx, "notifications.channel.create", "notification_channel", in.Name, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, c.View())
	return nil
}

// UpdateChannel is PUT /api/v1/notifications/channels/{name}: settings
// left out keep their values (secrets included).
func (h *Handlers) UpdateChannel(ctx *fasthttp.RequestCtx) error {
	in, err := readChannel(ctx)
	if err != nil {
		return err
	}
	name := pathValue(ctx, "name")
	c, err := h.svc.SaveChannel(ctx, name, in)
	h.record(ctx, "notifications.channel.update", "notification_channel", name, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, c.View())
	return nil
}

// DeleteChannel is DELETE /api/v1/notifications/channels/{name}.
func (h *Handlers) DeleteChannel(ctx *fasthttp.RequestCtx) error {
	name := pathValue(ctx, "name")
	err := h.svc.DeleteChannel(name)
	h.record(ctx, "notifications.channel.delete", "notification_channel", name, err)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// ListRoutes is GET /api/v1/notifications/routes.
func (h *Handlers) ListRoutes(ctx *fasthttp.RequestCtx) error {
	rs, err := h.svc.ListRoutes()
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": rs})
	return nil
}

// GetRoute is GET /api/v1/notifications/routes/{name}.
func (h *Handlers) GetRoute(ctx *fasthttp.RequestCtx) error {
	r, err := h.svc.Route(pathValue(ctx, "name"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, r)
	return nil
}

// CreateRoute is POST /api/v1/notifications/routes.
func (h *Handlers) CreateRoute(ctx *fasthttp.RequestCtx) error {
	var in RouteInput
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	r, err := h.svc.SaveRoute(ctx, "", in)
	h.record(ctx, "notifications.route.create", "notification_route", in.Name, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, r)
	return nil
}

// UpdateRoute is PUT /api/v1/notifications/routes/{name}.
func (h *Handlers) UpdateRoute(ctx *fasthttp.RequestCtx) error {
	var in RouteInput
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	name := pathValue(ctx, "name")
	r, err := h.svc.SaveRoute(ctx, name, in)
	h.record(ctx, "notifications.route.update", "notification_route", name, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, r)
	return nil
}

// DeleteRoute is DELETE /api/v1/notifications/routes/{name}.
func (h *Handlers) DeleteRoute(ctx *fasthttp.RequestCtx) error {
	name := pathValue(ctx, "name")
	err := h.svc.DeleteRoute(name)
	h.record(ctx, "notifications.route.delete", "notification_route", name, err)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// Events is GET /api/v1/notifications/events: the catalog.
func (h *Handlers) Events(ctx *fasthttp.RequestCtx) error {
	type entry struct {
		Type     string          `json:"type"`
		Version  int             `json:"version"`
		Severity events.Severity `json:"severity"`
		Fields   []string        `json:"fields"`
		Doc      string          `json:"doc"`
	}
	var out []entry
	for _, t := range events.Types() {
		out = append(out, entry{t.Name, t.Version, t.Severity, t.Fields, t.Doc})
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": out})
	return nil
}

// Test is POST /api/v1/notifications/test {channel, target, template}:
// one sample message through a saved channel, with the plugin's answer.
func (h *Handlers) Test(ctx *fasthttp.RequestCtx) error {
	var in struct {
		Channel  string `json:"channel"`
		Target   string `json:"target"`
		Template string `json:"template"`
	}
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	if in.Channel == "" {
		return fault.New(fault.Invalid, "channel is required")
	}
	res, err := h.svc.Test(ctx, in.Channel, in.Target, in.Template)
	h.record(ctx, "notifications.test", "notification_channel", in.Channel, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, res)
	return nil
}

// ListDeliveries is GET /api/v1/notifications/deliveries?status=&channel=
// &event_type=&since=&until= (RFC 3339), newest first, paged.
func (h *Handlers) ListDeliveries(ctx *fasthttp.RequestCtx) error {
	pg, err := httpapi.ParsePage(ctx)
	if err != nil {
		return err
	}
	args := ctx.QueryArgs()
	f := DeliveryFilter{Status: string(args.Peek("status")), Channel: string(args.Peek("channel")), EventType: string(args.Peek("event_type"))}
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return fault.New(fault.Invalid, "status must be one of pending, delivered, dead")
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := args.Peek(p.name); len(v) > 0 {
			t, err := time.Parse(time.RFC3339, string(v))
			if err != nil {
				return fault.New(fault.Invalid, "%s must be an RFC 3339 time", p.name)
			}
			*p.to = t
		}
	}
	items, total, err := h.svc.ListDeliveries(f, pg.Page, pg.PageSize)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, pg))
	return nil
}

// GetDelivery is GET /api/v1/notifications/deliveries/{id}.
func (h *Handlers) GetDelivery(ctx *fasthttp.RequestCtx) error {
	d, err := h.svc.Delivery(pathValue(ctx, "id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, d)
	return nil
}

// RetryDelivery is POST /api/v1/notifications/deliveries/{id}/retry.
func (h *Handlers) RetryDelivery(ctx *fasthttp.RequestCtx) error {
	id := pathValue(ctx, "id")
	d, err := h.svc.Retry(id)
	h.record(ctx, "notifications.delivery.retry", "notification_delivery", id, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, d)
	return nil
}

// ListTemplates is GET /api/v1/notifications/templates?channel_type=.
func (h *Handlers) ListTemplates(ctx *fasthttp.RequestCtx) error {
	ts, err := h.svc.Templates(string(ctx.QueryArgs().Peek("channel_type")))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": ts})
	return nil
}

// PutTemplate is PUT /api/v1/notifications/templates/{event_type}
// {channel_type, subject, text, html}.
func (h *Handlers) PutTemplate(ctx *fasthttp.RequestCtx) error {
	var in struct {
		ChannelType string `json:"channel_type"`
		Subject     string `json:"subject"`
		Text        string `json:"text"`
		HTML        string `json:"html"`
	}
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	et := pathValue(ctx, "event_type")
	t, err := h.svc.SaveTemplate(Template{EventType: et, ChannelType: in.ChannelType, Subject: in.Subject, Text: in.Text, HTML: in.HTML})
	h.record(ctx, "notifications.template.update", "notification_template", et, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, t)
	return nil
}

// DeleteTemplate is DELETE /api/v1/notifications/templates/{event_type}
// ?channel_type=: the built-in template applies again.
func (h *Handlers) DeleteTemplate(ctx *fasthttp.RequestCtx) error {
	et := pathValue(ctx, "event_type")
	err := h.svc.DeleteTemplate(et, string(ctx.QueryArgs().Peek("channel_type")))
	h.record(ctx, "notifications.template.delete", "notification_template", et, err)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// GetPersonal is GET /api/v1/auth/me/notifications.
func (h *Handlers) GetPersonal(ctx *fasthttp.RequestCtx) error {
	p, err := h.svc.PersonalSettings(authn.PrincipalFrom(ctx).UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, p)
	return nil
}

// PutPersonal is PUT /api/v1/auth/me/notifications.
func (h *Handlers) PutPersonal(ctx *fasthttp.RequestCtx) error {
	pr := authn.PrincipalFrom(ctx)
	if pr.Scoped() {
		// A scoped key (a kubeconfig's cluster:<name> key, a CI key) is
		// narrower than its owner: it must not redirect their messages.
		return fault.New(fault.Forbidden, "a scoped API key cannot change notification settings; sign in")
	}
	var in Personal
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	p, err := h.svc.SavePersonal(ctx, pr.UserID, in)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, p)
	return nil
}
