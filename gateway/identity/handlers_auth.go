package identity

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Cookie asks for a browser session cookie instead of tokens.
	Cookie bool `json:"cookie"`
}

// TokenResponse is the answer to a sign-in or refresh, and to every
// other endpoint that hands out Berth's tokens (single sign-on's code
// exchange): one shape for every client.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// NewTokenResponse is the answer carrying t.
func NewTokenResponse(t *Tokens) TokenResponse {
	return TokenResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "Bearer", ExpiresIn: int(t.ExpiresIn / time.Second)}
}

// Login handles POST /api/v1/auth/login: a username and password for an
// access and refresh token, or, with "cookie": true, a browser session
// cookie (HttpOnly, Secure, SameSite=Lax).
func (h *Handlers) Login(ctx *fasthttp.RequestCtx) error {
	var req loginRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return fault.New(fault.Invalid, "username and password are required")
	}
	if err := firstErr(tooLong("username", req.Username, MaxUsernameLength),
		tooLong("password", req.Password, MaxPasswordLength)); err != nil {
		return err
	}
	if req.Cookie {
		// Login CSRF: a foreign page must not sign a browser into the
		// attacker's account.
		if err := h.edge.CheckOrigin(ctx, false); err != nil {
			return err
		}
	}
	method := MethodPassword
	if req.Cookie {
		method = MethodSession
	}
	m := h.edge.Meta(ctx)
	u, err := h.svc.SignIn(ctx, req.Username, req.Password, method, m)
	if err != nil {
		return err
	}
	noStore(ctx)
	if req.Cookie {
		value, expires, err := h.svc.StartBrowserSession(ctx, u, m)
		if err != nil {
			return err
		}
		h.setSessionCookie(ctx, value, expires)
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{
			"user":       newUserView(u),
			"expires_at": expires,
			"expires_in": int(h.svc.Settings().SessionTTL / time.Second),
		})
		return nil
	}
	t, err := h.svc.IssueTokens(ctx, u, method, "", m)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, NewTokenResponse(t))
	return nil
}

func (h *Handlers) setSessionCookie(ctx *fasthttp.RequestCtx, value string, expires time.Time) {
	SetSessionCookie(ctx, h.edge.CookieName(), value, expires)
}

// SetSessionCookie sets the browser session cookie name to value until
// expires (HttpOnly, Secure, SameSite=Lax, the whole site), or clears it
// when value is "". Every sign-in that starts a browser session sets it
// here, so the cookie is the same whichever way the user signed in.
func SetSessionCookie(ctx *fasthttp.RequestCtx, name, value string, expires time.Time) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(name)
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
func (h *Handlers) Refresh(ctx *fasthttp.RequestCtx) error {
	var req refreshRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return fault.New(fault.Invalid, "refresh_token is required")
	}
	if err := tooLong("refresh_token", req.RefreshToken, 256); err != nil {
		return err
	}
	t, err := h.svc.Refresh(ctx, req.RefreshToken, "", h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, NewTokenResponse(t))
	return nil
}

// Logout handles POST /api/v1/auth/logout: the caller's session ends now,
// with every token of it; a session cookie is cleared.
func (h *Handlers) Logout(ctx *fasthttp.RequestCtx) error {
	p := caller(ctx)
	if err := h.svc.Logout(ctx, p, h.edge.Meta(ctx)); err != nil {
		return err
	}
	if p.AuthMethod == MethodSession {
		h.setSessionCookie(ctx, "", time.Time{})
	}
	return noContent(ctx)
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
func (h *Handlers) Me(ctx *fasthttp.RequestCtx) error {
	p := caller(ctx)
	u, err := h.svc.GetUser(p.UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, meView{
		userView: newUserView(u), Permissions: nonNil(p.Permissions), AuthMethod: p.AuthMethod,
		CredentialID: p.CredentialID, SessionID: p.SessionID, Scopes: p.Scopes,
	})
	return nil
}

type passwordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// ChangePassword handles PUT /api/v1/auth/me/password. It needs the
// current password and ends the user's other sessions.
func (h *Handlers) ChangePassword(ctx *fasthttp.RequestCtx) error {
	var req passwordChange
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.CurrentPassword == "" || req.NewPassword == "" {
		return fault.New(fault.Invalid, "current_password and new_password are required")
	}
	if err := h.svc.ChangePassword(ctx, caller(ctx), req.CurrentPassword, req.NewPassword, h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
}

// MyLoginHistory handles GET /api/v1/auth/me/login-history.
func (h *Handlers) MyLoginHistory(ctx *fasthttp.RequestCtx) error {
	return h.loginHistory(ctx, caller(ctx).UserID)
}

func (h *Handlers) loginHistory(ctx *fasthttp.RequestCtx, userID string) error {
	page, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		return perr
	}
	items, total, err := h.svc.LoginHistoryPage(caller(ctx), userID, page.Page, page.PageSize)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, page))
	return nil
}

type exchangeRequest struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// Token handles POST /api/v1/auth/token: an access-key pair for an access
// token.
func (h *Handlers) Token(ctx *fasthttp.RequestCtx) error {
	var req exchangeRequest
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	return h.exchange(ctx, req.AccessKey, req.SecretKey, false)
}

// CubeToken handles KubeCube's GET /api/v1/cube/key/token?accessKey=&secretKey=.
// The access log redacts both parameters.
func (h *Handlers) CubeToken(ctx *fasthttp.RequestCtx) error {
	args := ctx.QueryArgs()
	return h.exchange(ctx, string(args.Peek("accessKey")), string(args.Peek("secretKey")), true)
}

func (h *Handlers) exchange(ctx *fasthttp.RequestCtx, accessKey, secretKey string, cube bool) error {
	if accessKey == "" || secretKey == "" {
		return fault.New(fault.Invalid, "access key and secret key are required")
	}
	if err := firstErr(tooLong("access key", accessKey, 64), tooLong("secret key", secretKey, 64)); err != nil {
		return err
	}
	token, ttl, err := h.svc.ExchangeAccessKey(ctx, accessKey, secretKey, h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	noStore(ctx)
	if cube {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"token": token})
		return nil
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"token": token, "token_type": "Bearer", "expires_in": int(ttl / time.Second)})
	return nil
}
