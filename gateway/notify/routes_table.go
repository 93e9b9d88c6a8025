package notify

import (
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
)

// Routes is the notifications block of the gateway's route table: the
// caller's own settings, and the administration behind PermAdmin.
func Routes(h *Handlers) []authn.Route {
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		admin               = PermAdmin
	)
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
