package identity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"mime"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

// oauthError is the error body of RFC 6749 §5.2.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// refuseOAuth answers a token request the endpoint refuses with RFC 6749's
// error body, which OAuth clients read instead of Berth's error shape; it
// is the protocol's answer, so it is written here and not returned.
func refuseOAuth(ctx *fasthttp.RequestCtx, status int, code, description string) error {
	noStore(ctx)
	httpapi.WriteJSON(ctx, status, oauthError{code, description})
	return nil
}

// OAuthToken handles POST /oauth/token, the OAuth 2.0 token endpoint
// (RFC 6749) as KubeSphere's clients use it: form-encoded, grant_type
// password (username, password) or refresh_token, with client credentials
// in HTTP Basic or in the form (client_id, client_secret).
func (h *Handlers) OAuthToken(ctx *fasthttp.RequestCtx) error {
	ct := string(ctx.Request.Header.ContentType())
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(ctx.PostBody()))
	if err != nil {
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "the form body cannot be parsed")
	}
	// §3.2: parameters must not repeat; a repeated one is a smuggling
	// attempt or a broken client either way.
	for k, v := range form {
		if len(v) > 1 {
			return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
		}
		if len(v[0]) > 1024 {
			return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "parameter "+k+" is too long")
		}
	}
	clientID, clientSecret, basic, ok := oauthClient(ctx, form)
	if !ok {
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "send client credentials once, in HTTP Basic or in the form")
	}
	grant := form.Get("grant_type")
	switch grant {
	case "password", "refresh_token":
	case "":
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "unsupported_grant_type", "grant_type must be password or refresh_token")
	}
	if !h.svc.CheckOAuthClient(clientID, clientSecret) {
		if basic {
			ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Basic realm="berth"`)
		}
		return refuseOAuth(ctx, fasthttp.StatusUnauthorized, "invalid_client", "unknown client or wrong client secret")
	}
	m := h.edge.Meta(ctx)
	var t *Tokens
	switch grant {
	case "password":
		username, password := form.Get("username"), form.Get("password")
		if username == "" || password == "" {
			return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "username and password are required")
		}
		if len(username) > MaxUsernameLength || len(password) > MaxPasswordLength {
			return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "username or password too long")
		}
		u, err := h.svc.SignIn(ctx, username, password, MethodOAuth, m)
		if err != nil {
			return oauthFail(ctx, err)
		}
		if t, err = h.svc.IssueTokens(ctx, u, MethodOAuth, clientID, m); err != nil {
			return oauthFail(ctx, err)
		}
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_request", "refresh_token is required")
		}
		if t, err = h.svc.Refresh(ctx, rt, clientID, m); err != nil {
			return oauthFail(ctx, err)
		}
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, NewTokenResponse(t))
	return nil
}

// oauthFail answers a refused sign-in or refresh as RFC 6749 §5.2 says:
// 400 invalid_grant in the OAuth body. Anything else, the account lockout
// (429 with Retry-After) included, is Berth's error.
func oauthFail(ctx *fasthttp.RequestCtx, err error) error {
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_grant", "invalid username or password")
	case errors.Is(err, ErrInvalidGrant):
		return refuseOAuth(ctx, fasthttp.StatusBadRequest, "invalid_grant", "invalid, expired or already used refresh token")
	}
	return err
}

// oauthClient reads the client credentials from HTTP Basic (RFC 6749
// §2.3.1, form-urlencoded inside) or the form. Both at once is refused.
func oauthClient(ctx *fasthttp.RequestCtx, form url.Values) (id, secret string, basic, ok bool) {
	inForm := form.Has("client_id") || form.Has("client_secret")
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(h) == 0 {
		return form.Get("client_id"), form.Get("client_secret"), false, true
	}
	if inForm || len(h) < 6 || !bytes.EqualFold(h[:6], []byte("basic ")) || len(h) > 2048 {
		return "", "", false, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(h[6:])))
	if err != nil {
		return "", "", true, false
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", true, false
	}
	if uu, err := url.QueryUnescape(u); err == nil {
		u = uu
	}
	if pp, err := url.QueryUnescape(p); err == nil {
		p = pp
	}
	return u, p, true, true
}
