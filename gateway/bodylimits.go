package gateway

import (
	"io"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/proxy"
)

// Request bodies are read under two rules besides limits.max_body_bytes
// (docs/security.md): a declared body over the bound is refused before a
// byte of it is read, even when the client waits for 100 Continue; and a
// body must keep coming at limits.body_min_bytes per
// limits.body_read_window, or it is cut long before limits.read_timeout.

// bodyRate is the configured slowest body rate; the window never exceeds
// the read timeout.
func (g *Gateway) bodyRate() proxy.BodyRate {
	l := g.cfg.Limits
	return proxy.BodyRate{MinBytes: l.BodyMinBytes, Window: min(l.BodyReadWindow.D(), l.ReadTimeout.D())}
}

// bodyReadTimeout is the server's HeaderReceived hook: a request with a
// body must bring its first bytes (the server reads up to 8 KiB before any
// handler runs) within one body window, not the whole read timeout.
func (g *Gateway) bodyReadTimeout(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	return fasthttp.RequestConfig{ReadTimeout: proxy.ReadTimeoutForBody(h, g.bodyRate())}
}

// expectContinue is the server's ExpectHandler: a client that asks before
// sending its body (Expect: 100-continue) gets 413 at once when the
// declared length is over the bound, instead of 100 Continue and a 413
// after the whole body was sent for nothing.
func (g *Gateway) expectContinue(ctx *fasthttp.RequestCtx) int {
	if ctx.Request.Header.ContentLength() > g.cfg.Limits.MaxBodyBytes {
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// bodyReader reads a request body for the API's own handlers under the
// body rate and read timeout, as the proxy does for clusters.
func (g *Gateway) bodyReader(ctx *fasthttp.RequestCtx) io.Reader {
	return proxy.NewBodyReader(ctx, g.bodyRate(), 0, ctx.Time().Add(g.cfg.Limits.ReadTimeout.D()))
}
