package gateway

import (
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/notify"
)

// initNotify builds the notification service on the plugin host and
// registers its permission; its outbox runs as a leader duty.
func (g *Gateway) initNotify() {
	identity.RegisterPermission(notify.PermAdmin, "manage notification channels, routes and templates, send test messages and read deliveries")
	n := g.cfg.Plugins.Notify
	g.notify = notify.New(notify.Options{
		DB: g.db, Box: g.box, Plugins: g.plugins, Users: userEmails{g.identity}, Audit: g.audit, Logger: g.log, Now: g.clock,
		MaxAttempts: n.MaxAttempts, RetryMin: n.RetryMin.D(), RetryMax: n.RetryMax.D(), Retention: n.DeadRetention.D(),
		CallTimeout: g.cfg.Plugins.CallTimeout.D(),
	})
	g.notifyAPI = notify.NewHandlers(g.notify, g.authn, g.audit)
}

// notifyRoutes is the notifications block of the route table.
func (g *Gateway) notifyRoutes() []authn.Route {
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		admin               = notify.PermAdmin
	)
	h := g.notifyAPI
	return []authn.Route{
		{Method: get, Path: "/api/v1/auth/me/notifications", Permission: authn.SignedIn, Handler: h.GetPersonal},
		{Method: put, Path: "/api/v1/auth/me/notifications", Permission: authn.SignedIn, Handler: h.PutPersonal},
		{Method: get, Path: "/api/v1/notifications/events", Permission: admin, Handler: h.Events},
		{Method: get, Path: "/api/v1/notifications/channels", Permission: admin, Handler: h.ListChannels},
		{Method: post, Path: "/api/v1/notifications/channels", Permission: admin, Handler: h.CreateChannel},
		{Method: get, Path: "/api/v1/notifications/channels/{name}", Permission: admin, Handler: h.GetChannel},
		{Method: put, Path: "/api/v1/notifications/channels/{name}", Permission: admin, Handler: h.UpdateChannel},
		{Method: del, Path: "/api/v1/notifications/channels/{name}", Permission: admin, Handler: h.DeleteChannel},
		{Method: get, Path: "/api/v1/notifications/routes", Permission: admin, Handler: h.ListRoutes},
		{Method: post, Path: "/api/v1/notifications/routes", Permission: admin, Handler: h.CreateRoute},
		{Method: get, Path: "/api/v1/notifications/routes/{name}", Permission: admin, Handler: h.GetRoute},
		{Method: put, Path: "/api/v1/notifications/routes/{name}", Permission: admin, Handler: h.UpdateRoute},
		{Method: del, Path: "/api/v1/notifications/routes/{name}", Permission: admin, Handler: h.DeleteRoute},
		{Method: get, Path: "/api/v1/notifications/templates", Permission: admin, Handler: h.ListTemplates},
		{Method: put, Path: "/api/v1/notifications/templates/{event_type}", Permission: admin, Handler: h.PutTemplate},
		{Method: del, Path: "/api/v1/notifications/templates/{event_type}", Permission: admin, Handler: h.DeleteTemplate},
		{Method: post, Path: "/api/v1/notifications/test", Permission: admin, Handler: h.Test},
		{Method: get, Path: "/api/v1/notifications/deliveries", Permission: admin, Handler: h.ListDeliveries},
		{Method: get, Path: "/api/v1/notifications/deliveries/{id}", Permission: admin, Handler: h.GetDelivery},
		{Method: post, Path: "/api/v1/notifications/deliveries/{id}/retry", Permission: admin, Handler: h.RetryDelivery},
	}
}

// userEmails gives notify the address of a user's account.
type userEmails struct{ ids *identity.Service }

func (u userEmails) Email(id string) (string, error) {
	usr, err := u.ids.GetUser(id)
	if err != nil {
		return "", err
	}
	return usr.Email, nil
}
