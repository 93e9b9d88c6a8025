package sso

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// Edge is what the handlers need from the edge's authentication
// (authn.Authenticator): where a request came from and the session
// cookie's name.
type Edge interface {
	Meta(ctx *fasthttp.RequestCtx) identity.Meta
	CookieName() string
}

// Handlers serve single sign-on over HTTP.
type Handlers struct {
	svc  *Service
	edge Edge
}

// NewHandlers returns the handlers of svc.
func NewHandlers(svc *Service, edge Edge) *Handlers { return &Handlers{svc: svc, edge: edge} }

// Routes is single sign-on's block of the gateway's route table. All are
// public; the sign-in steps are limited per client address like password
// sign-ins.
func Routes(h *Handlers) []authn.Route {
	const get, post, auth = fasthttp.MethodGet, fasthttp.MethodPost, ratelimit.ScopeAuth
	return []authn.Route{
		{Method: get, Path: "/api/v1/auth/providers", Permission: authn.Public, Handler: h.Providers},
		{Method: get, Path: "/api/v1/auth/sso/{provider}/login", Permission: authn.Public, AddrScope: auth, Handler: h.Login},
		{Method: get, Path: "/api/v1/auth/sso/{provider}/callback", Permission: authn.Public, AddrScope: auth, Handler: h.Callback},
		{Method: post, Path: "/api/v1/auth/sso/token", Permission: authn.Public, AddrScope: auth, Handler: h.Token},
	}
}

// Providers handles GET /api/v1/auth/providers: the providers a sign-in
// page offers.
func (h *Handlers) Providers(ctx *fasthttp.RequestCtx) error {
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": h.svc.List()})
	return nil
}

func providerParam(ctx *fasthttp.RequestCtx) string {
	s, _ := ctx.UserValue("provider").(string)
	return s
}

// Login handles GET /api/v1/auth/sso/{provider}/login: a 302 to the
// provider, with the flow's binding cookie. With cli_redirect_uri,
// cli_state and cli_code_challenge it starts the CLI's loopback sign-in.
func (h *Handlers) Login(ctx *fasthttp.RequestCtx) error {
	q := ctx.QueryArgs()
	req := LoginRequest{
		Next:               string(q.Peek("next")),
		CLIRedirectURI:     string(q.Peek("cli_redirect_uri")),
		CLIState:           string(q.Peek("cli_state")),
		CLIChallenge:       string(q.Peek("cli_code_challenge")),
		CLIChallengeMethod: string(q.Peek("cli_code_challenge_method")),
	}
	st, err := h.svc.Begin(ctx, providerParam(ctx), req, h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	// Abandoned sign-ins' cookies live FlowTTL; a browser that already
	// holds maxBrowserFlows loses them all, so their number stays bounded
	// however often a page sends it here.
	var held [][]byte
	for k := range ctx.Request.Header.Cookies() {
		if isBindingCookie(string(k)) && len(held) <= maxBrowserFlows*4 {
			held = append(held, append([]byte(nil), k...))
		}
	}
	if len(held) >= maxBrowserFlows {
		for _, k := range held {
			setCookie(ctx, string(k), "", strings.HasPrefix(string(k), hostPrefix), 0)
		}
	}
	setCookie(ctx, st.CookieName, st.CookieValue, st.Secure, FlowTTL)
	noStore(ctx)
	redirect(ctx, st.AuthURL)
	return nil
}

// Callback handles GET /api/v1/auth/sso/{provider}/callback, where the
// provider sends the browser back: a browser sign-in gets a session cookie
// and a 302 to its local next path; the CLI's gets a 302 to its loopback
// address with the one-time code.
func (h *Handlers) Callback(ctx *fasthttp.RequestCtx) error {
	q := ctx.QueryArgs()
	state := string(q.Peek("state"))
	req := CallbackRequest{State: state, Code: string(q.Peek("code")), Error: string(q.Peek("error")),
		Cookie: func(name string) string { return string(ctx.Request.Header.Cookie(name)) }}
	m := h.edge.Meta(ctx)
	signed, err := h.svc.Finish(ctx, providerParam(ctx), req, m)
	noStore(ctx)
	if p, perr := h.svc.provider(providerParam(ctx)); perr == nil && state != "" && len(state) <= 128 {
		// The flow is over either way; its cookie goes, cleared with the
		// attributes it was set with.
		setCookie(ctx, h.svc.cookieName(state, p.secure()), "", p.secure(), 0)
	}
	if err != nil {
		return err
	}
	if signed.CLIRedirect != "" {
		redirect(ctx, signed.CLIRedirect)
		return nil
	}
	value, expires, err := h.svc.ids.StartBrowserSession(ctx, signed.User, m)
	if err != nil {
		return err
	}
	identity.SetSessionCookie(ctx, h.edge.CookieName(), value, expires)
	redirect(ctx, signed.Next)
	return nil
}

type tokenRequest struct {
	Code         string `json:"code"`
	CodeVerifier string `json:"code_verifier"`
}

// Token handles POST /api/v1/auth/sso/token: the CLI's one-time code and
// PKCE verifier for the tokens POST /api/v1/auth/login gives.
func (h *Handlers) Token(ctx *fasthttp.RequestCtx) error {
	var req tokenRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Code == "" || req.CodeVerifier == "" {
		return fault.New(fault.Invalid, "code and code_verifier are required")
	}
	t, err := h.svc.Exchange(ctx, req.Code, req.CodeVerifier, h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, identity.NewTokenResponse(t))
	return nil
}

// setCookie sets a flow's binding cookie (HttpOnly, SameSite=Lax; only
// the SSO paths see it, or, when the callback is https, a Secure __Host-
// cookie with Path=/) or, with value "", clears it.
func setCookie(ctx *fasthttp.RequestCtx, name, value string, secure bool, ttl time.Duration) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
	c.SetValue(value)
	c.SetPath(cookiePath(secure))
	c.SetHTTPOnly(true)
	c.SetSecure(secure)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	if value == "" {
		c.SetMaxAge(-1)
	} else {
		c.SetMaxAge(int(ttl / time.Second))
	}
	ctx.Response.Header.SetCookie(c)
}

// redirect answers 302 with Location exactly loc: a local path stays
// relative (the browser resolves it on the origin it is on, whatever Host
// said), and a provider's or loopback URL is not rewritten.
func redirect(ctx *fasthttp.RequestCtx, loc string) {
	ctx.Response.Header.Set(fasthttp.HeaderLocation, loc)
	ctx.SetStatusCode(fasthttp.StatusFound)
}

func noStore(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.Response.Header.Set(fasthttp.HeaderPragma, "no-cache")
}
