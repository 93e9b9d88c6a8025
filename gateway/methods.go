package gateway

import (
	"errors"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/proxy"
)

// refuseUnknownMethods answers 405 to a method outside
// middleware.AllowedMethods before authentication, rate limits, the
// router or the proxy see the request: nothing behind it has to cope
// with invented methods, and none can reach a cluster or a metrics label.
// Proxy paths get a Kubernetes Status, so kubectl prints it well; the
// method itself is never echoed.
func refuseUnknownMethods(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if middleware.KnownMethod(string(ctx.Method())) {
			next(ctx)
			return
		}
		const msg = "this HTTP method is not allowed; use one of "
		if _, err := proxy.ParseTarget(ctx.RequestURI()); !errors.Is(err, proxy.ErrNotProxy) {
			ctx.SetUserValue(router.MatchedRoutePathParam, clusters.RoutePattern)
			proxy.WriteStatus(ctx, fasthttp.StatusMethodNotAllowed, msg+middleware.AllowedMethods)
		} else {
			httpapi.WriteError(ctx, fault.New(fault.MethodNotAllowed, "%s", msg+middleware.AllowedMethods))
		}
		ctx.Response.Header.Set(fasthttp.HeaderAllow, middleware.AllowedMethods)
	}
}
