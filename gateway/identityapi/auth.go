package identityapi

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Cookie asks for a browser session cookie instead of tokens.
	Cookie bool `json:"cookie"`
}

// tokenResponse is the answer to a sign-in or refresh.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func newTokenResponse(t *identity.Tokens) tokenResponse {
	return tokenResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "Bearer", ExpiresIn: int(t.ExpiresIn / time.Second)}
}

// Login handles POST /api/v1/auth/login: a username and password for an
// access and refresh token, or, with "cookie": true, a browser session
// cookie (HttpOnly, Secure, SameSite=Lax).
func (a *API) Login(ctx *fasthttp.RequestCtx) {
	var req loginRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	if req.Username == "" || req.Password == "" {
		httpapi.WriteError(ctx, httpapi.BadRequest("username and password are required"))
		return
	}
	if err := firstErr(tooLong("username", req.Username, identity.MaxUsernameLength),
		tooLong("password", req.Password, identity.MaxPasswordLength)); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	if req.Cookie {
		// Login CSRF: a foreign page must not sign a browser into the
		// attacker's account.
		if err := a.auth.CheckOrigin(ctx, false); err != nil {
			authn.WriteAuthError(ctx, err)
			return
		}
	}
	method := identity.MethodPassword
	if req.Cookie {
		method = identity.MethodSession
	}
	m := a.auth.Meta(ctx)
	u, err := a.svc.SignIn(ctx, req.Username, req.Password, method, m)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	noStore(ctx)
	if req.Cookie {
		value, expires, err := a.svc.StartBrowserSession(ctx, u, m)
		if err != nil {
			a.fail(ctx, err)
			return
		}
		a.setSessionCookie(ctx, value, expires)
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{
			"user":       newUserView(u),
			"expires_at": expires,
			"expires_in": int(a.svc.Settings().SessionTTL / time.Second),
		})
		return
	}
	t, err := a.svc.IssueTokens(ctx, u, method, "", m)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newTokenResponse(t))
}

func (a *API) setSessionCookie(ctx *fasthttp.RequestCtx, value string, expires time.Time) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(a.auth.CookieName())
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSecure(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	if value == "" {
		c.SetMaxAge(-1)
	} else {
		c.SetExpire(expires)
	}
	ctx.Response.Header.SetCookie(c)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Refresh handles POST /api/v1/auth/refresh: a refresh token for a new
// pair. The presented token is used up; presenting it again revokes the
// whole session.
func (a *API) Refresh(ctx *fasthttp.RequestCtx) {
	var req refreshRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	if req.RefreshToken == "" {
		httpapi.WriteError(ctx, httpapi.BadRequest("refresh_token is required"))
		return
	}
	if err := tooLong("refresh_token", req.RefreshToken, 256); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	t, err := a.svc.Refresh(ctx, req.RefreshToken, "", a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newTokenResponse(t))
}

// Logout handles POST /api/v1/auth/logout: the caller's session ends now,
// with every token of it; a session cookie is cleared.
func (a *API) Logout(ctx *fasthttp.RequestCtx) {
	p := principal(ctx)
	if err := a.svc.Logout(ctx, p, a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	if p.AuthMethod == identity.MethodSession {
		a.setSessionCookie(ctx, "", time.Time{})
	}
	noContent(ctx)
}

// meView is the caller as GET /api/v1/auth/me shows them.
type meView struct {
	userView
	Permissions  []string `json:"permissions"`
	AuthMethod   string   `json:"auth_method"`
	CredentialID string   `json:"credential_id"`
	SessionID    string   `json:"session_id,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
}

// Me handles GET /api/v1/auth/me.
func (a *API) Me(ctx *fasthttp.RequestCtx) {
	p := principal(ctx)
	u, err := a.svc.GetUser(p.UserID)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, meView{
		userView: newUserView(u), Permissions: nonNil(p.Permissions), AuthMethod: p.AuthMethod,
		CredentialID: p.CredentialID, SessionID: p.SessionID, Scopes: p.Scopes,
	})
}

type passwordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// ChangePassword handles PUT /api/v1/auth/me/password. It needs the
// current password and ends the user's other sessions.
func (a *API) ChangePassword(ctx *fasthttp.RequestCtx) {
	var req passwordChange
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	if req.CurrentPassword == "" || req.NewPassword == "" {
		httpapi.WriteError(ctx, httpapi.BadRequest("current_password and new_password are required"))
		return
	}
	if err := a.svc.ChangePassword(ctx, principal(ctx), req.CurrentPassword, req.NewPassword, a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}

// MyLoginHistory handles GET /api/v1/auth/me/login-history.
func (a *API) MyLoginHistory(ctx *fasthttp.RequestCtx) {
	a.loginHistory(ctx, principal(ctx).UserID)
}

func (a *API) loginHistory(ctx *fasthttp.RequestCtx, userID string) {
	page, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	items, total, err := a.svc.LoginHistoryPage(principal(ctx), userID, page.Page, page.PageSize)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, page))
}

type exchangeRequest struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// Token handles POST /api/v1/auth/token: an access-key pair for an access
// token.
func (a *API) Token(ctx *fasthttp.RequestCtx) {
	var req exchangeRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	a.exchange(ctx, req.AccessKey, req.SecretKey, false)
}

// CubeToken handles KubeCube's GET /api/v1/cube/key/token?accessKey=&secretKey=.
// The access log redacts both parameters.
func (a *API) CubeToken(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	a.exchange(ctx, string(args.Peek("accessKey")), string(args.Peek("secretKey")), true)
}

func (a *API) exchange(ctx *fasthttp.RequestCtx, accessKey, secretKey string, cube bool) {
	if accessKey == "" || secretKey == "" {
		httpapi.WriteError(ctx, httpapi.BadRequest("access key and secret key are required"))
		return
	}
	if err := firstErr(tooLong("access key", accessKey, 64), tooLong("secret key", secretKey, 64)); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	token, ttl, err := a.svc.ExchangeAccessKey(ctx, accessKey, secretKey, a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	noStore(ctx)
	if cube {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"token": token})
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"token": token, "token_type": "Bearer", "expires_in": int(ttl / time.Second)})
}

func firstErr(errs ...*httpapi.Error) *httpapi.Error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
