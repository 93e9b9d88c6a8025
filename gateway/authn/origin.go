package authn

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// CheckOrigin is the CSRF rule for cookie-authenticated requests: the
// request must not be marked cross-site by the browser (Sec-Fetch-Site),
// and its Origin — or, without one, its Referer's origin — must be the
// gateway's own origin or an allowed one. When required is false a request
// that carries neither header passes (a non-browser client signing in);
// one that carries a foreign origin never does. Bearer requests skip this
// check entirely: a browser never attaches a bearer token on its own.
func (a *Authenticator) CheckOrigin(ctx *fasthttp.RequestCtx, required bool) error {
	if bytes.EqualFold(ctx.Request.Header.Peek("Sec-Fetch-Site"), []byte("cross-site")) {
		return forbidden("cross-site request refused")
	}
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		if ref := ctx.Request.Header.Referer(); len(ref) > 0 {
			if u, err := url.Parse(string(ref)); err == nil && u.Host != "" {
				origin = []byte(u.Scheme + "://" + u.Host)
			} else {
				return forbidden("cross-site request refused: unreadable Referer")
			}
		}
	}
	if len(origin) == 0 {
		if required {
			return forbidden("cross-site request refused: no Origin or Referer header")
		}
		return nil
	}
	o, ok := normalizeOrigin(string(origin))
	if !ok {
		return forbidden("cross-site request refused: unreadable Origin")
	}
	if own, ok := normalizeOrigin(a.ownOrigin(ctx)); ok && o == own {
		return nil
	}
	if a.origins[o] {
		return nil
	}
	return forbidden("cross-site request refused: origin not allowed")
}

// ownOrigin is the origin the browser used to reach the gateway: the Host
// header with the scheme of the connection, or of X-Forwarded-Proto when a
// trusted proxy terminated TLS.
func (a *Authenticator) ownOrigin(ctx *fasthttp.RequestCtx) string {
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	if a.trusted.Contains(peer(ctx)) {
		switch p := strings.ToLower(string(ctx.Request.Header.Peek("X-Forwarded-Proto"))); p {
		case "http", "https":
			scheme = p
		}
	}
	return scheme + "://" + string(ctx.Host())
}

// normalizeOrigin lower-cases an origin and drops its default port, so
// "HTTPS://Console.Example.com:443" equals "https://console.example.com".
// Anything that is not scheme://host[:port] (a path, "null", user info) is
// refused.
func normalizeOrigin(s string) (string, bool) {
	if len(s) > 2048 {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.Contains(host, "%") {
		return "", false // no host ("http://:"), or an IPv6 zone, which means nothing off the host
	}
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return strings.ToLower(u.Scheme) + "://" + host, true
}

// CORS answers preflight requests and adds CORS headers to API responses
// for allowed origins. It applies only under the given path prefixes. An
// origin that is exactly listed gets credentials; "*" lets other origins
// read responses without credentials; everything else gets no CORS headers
// and a refused preflight.
func (a *Authenticator) CORS(prefixes ...string) func(fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			path := ctx.Path()
			applies := false
			for _, p := range prefixes {
				if bytes.HasPrefix(path, []byte(p)) {
					applies = true
					break
				}
			}
			origin := ctx.Request.Header.Peek("Origin")
			if !applies || len(origin) == 0 {
				next(ctx)
				return
			}
			norm, ok := normalizeOrigin(string(origin))
			exact := ok && a.origins[norm]
			allowed := exact || a.anyOrigin
			preflight := ctx.IsOptions() && len(ctx.Request.Header.Peek("Access-Control-Request-Method")) > 0
			if preflight {
				if !allowed {
					ctx.Response.Header.Set("Vary", "Origin")
					ctx.SetStatusCode(fasthttp.StatusForbidden)
					ctx.SetContentType("application/json; charset=utf-8")
					ctx.SetBodyString(`{"code":403,"error":"forbidden","message":"origin not allowed"}` + "\n")
					return
				}
				a.corsHeaders(ctx, string(origin), exact)
				h := &ctx.Response.Header
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
				h.Set("Access-Control-Max-Age", "600")
				ctx.SetStatusCode(fasthttp.StatusNoContent)
				return
			}
			next(ctx)
			ctx.Response.Header.Add("Vary", "Origin")
			if allowed {
				a.corsHeaders(ctx, string(origin), exact)
				ctx.Response.Header.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
			}
		}
	}
}

func (a *Authenticator) corsHeaders(ctx *fasthttp.RequestCtx, origin string, exact bool) {
	h := &ctx.Response.Header
	if exact {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	} else {
		// "*" is never combined with credentials.
		h.Set("Access-Control-Allow-Origin", "*")
	}
	h.Set("Vary", "Origin")
}
