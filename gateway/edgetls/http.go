package edgetls

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// challengePrefix is where ACME servers fetch HTTP-01 key authorizations.
const challengePrefix = "/.well-known/acme-challenge/"

// notHandledKey marks a request certmagic's challenge handler declined.
const notHandledKey = "berth.edgetls.not_challenge"

// Middleware serves what belongs to TLS on the plain-HTTP listener: ACME
// HTTP-01 challenge answers (before any routing, so no router rule or
// redirect can get in their way), and, with tls.redirect_http, a 308
// redirect to HTTPS for everything but health checks and challenges.
// Requests on the HTTPS listener pass straight through.
//
// A nil Manager (no HTTPS listener) gives a middleware that does nothing.
func (m *Manager) Middleware() func(fasthttp.RequestHandler) fasthttp.RequestHandler {
	if m == nil {
		return func(next fasthttp.RequestHandler) fasthttp.RequestHandler { return next }
	}
	var challenge fasthttp.RequestHandler
	if m.issuer != nil && slices.Contains(m.challenges, ChallengeHTTP01) {
		// certmagic's handler is net/http; the adaptor bridges it. When it
		// declines (not a challenge it knows), the fallback marks the
		// request so the fasthttp chain carries on.
		challenge = fasthttpadaptor.NewFastHTTPHandler(m.issuer.HTTPChallengeHandler(http.HandlerFunc(
			func(_ http.ResponseWriter, r *http.Request) {
				if fctx, ok := r.Context().(*fasthttp.RequestCtx); ok {
					fctx.SetUserValue(notHandledKey, true)
				}
			})))
	}
	redirect := m.cfg.RedirectHTTP
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if ctx.IsTLS() {
				next(ctx)
				return
			}
			path := ctx.Path()
			isChallenge := bytes.HasPrefix(path, []byte(challengePrefix))
			if isChallenge && challenge != nil {
				challenge(ctx)
				if ctx.UserValue(notHandledKey) == nil {
					return
				}
				ctx.Response.Reset()
				ctx.RemoveUserValue(notHandledKey)
			}
			if redirect && !isChallenge && !exemptFromRedirect(path) {
				m.redirect(ctx)
				return
			}
			next(ctx)
		}
	}
}

// exemptFromRedirect keeps the probes on plain HTTP: a load balancer or
// kubelet checking health should not have to follow redirects or trust a
// certificate.
func exemptFromRedirect(path []byte) bool {
	p := string(path)
	return p == "/healthz" || p == "/readyz"
}

// redirect sends the client to the same host and path on HTTPS.
func (m *Manager) redirect(ctx *fasthttp.RequestCtx) {
	host := string(ctx.Host())
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if !validRedirectHost(host) {
		httpapi.WriteError(ctx, fault.New(fault.Invalid, "this listener redirects to HTTPS and needs a valid Host header"))
		return
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if m.httpsPort != "" && m.httpsPort != "443" {
		host += ":" + m.httpsPort
	}
	ctx.Response.Header.Set("Location", "https://"+host+string(ctx.RequestURI()))
	// 308 keeps the method and body, so a POST stays a POST.
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	ctx.SetConnectionClose()
}

// validRedirectHost accepts DNS names and IP addresses only, so a crafted
// Host header cannot turn the redirect into one to somewhere odd
// ("evil.example/@x", userinfo, spaces).
func validRedirectHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
