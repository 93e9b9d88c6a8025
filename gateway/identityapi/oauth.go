package identityapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"mime"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// oauthError is the error body of RFC 6749 §5.2.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(ctx *fasthttp.RequestCtx, status int, code, description string) {
	noStore(ctx)
	httpapi.WriteJSON(ctx, status, oauthError{code, description})
}

// OAuthToken handles POST /oauth/token, the OAuth 2.0 token endpoint
// (RFC 6749) as KubeSphere's clients use it: form-encoded, grant_type
// password (username, password) or refresh_token, with client credentials
// in HTTP Basic or in the form (client_id, client_secret).
func (a *API) OAuthToken(ctx *fasthttp.RequestCtx) {
	ct := string(ctx.Request.Header.ContentType())
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	form, err := url.ParseQuery(string(ctx.PostBody()))
	if err != nil {
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "the form body cannot be parsed")
		return
	}
	// §3.2: parameters must not repeat; a repeated one is a smuggling
	// attempt or a broken client either way.
	for k, v := range form {
		if len(v) > 1 {
			writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return
		}
		if len(v[0]) > 1024 {
			writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "parameter "+k+" is too long")
			return
		}
	}
	clientID, clientSecret, basic, ok := oauthClient(ctx, form)
	if !ok {
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "send client credentials once, in HTTP Basic or in the form")
		return
	}
	grant := form.Get("grant_type")
	switch grant {
	case "password", "refresh_token":
	case "":
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "unsupported_grant_type", "grant_type must be password or refresh_token")
		return
	}
	if !a.svc.CheckOAuthClient(clientID, clientSecret) {
		if basic {
			ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Basic realm="berth"`)
		}
		writeOAuthError(ctx, fasthttp.StatusUnauthorized, "invalid_client", "unknown client or wrong client secret")
		return
	}
	m := a.auth.Meta(ctx)
	var t *identity.Tokens
	switch grant {
	case "password":
		username, password := form.Get("username"), form.Get("password")
		if username == "" || password == "" {
			writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "username and password are required")
			return
		}
		if len(username) > identity.MaxUsernameLength || len(password) > identity.MaxPasswordLength {
			writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "username or password too long")
			return
		}
		u, err := a.svc.SignIn(ctx, username, password, identity.MethodOAuth, m)
		if err != nil {
			a.oauthFail(ctx, err)
			return
		}
		if t, err = a.svc.IssueTokens(ctx, u, identity.MethodOAuth, clientID, m); err != nil {
			a.oauthFail(ctx, err)
			return
		}
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_request", "refresh_token is required")
			return
		}
		if t, err = a.svc.Refresh(ctx, rt, clientID, m); err != nil {
			a.oauthFail(ctx, err)
			return
		}
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newTokenResponse(t))
}

func (a *API) oauthFail(ctx *fasthttp.RequestCtx, err error) {
	var le *identity.LockedError
	switch {
	case errors.As(err, &le):
		a.fail(ctx, err) // 429 with Retry-After
	case errors.Is(err, identity.ErrInvalidCredentials):
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_grant", "invalid username or password")
	case errors.Is(err, identity.ErrInvalidGrant):
		writeOAuthError(ctx, fasthttp.StatusBadRequest, "invalid_grant", "invalid, expired or already used refresh token")
	default:
		a.fail(ctx, err)
	}
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
