package identityapi

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

// ListSigningKeys handles GET /api/v1/signing-keys: the keys that sign and
// verify access tokens, never their secrets.
func (a *API) ListSigningKeys(ctx *fasthttp.RequestCtx) {
	keys, err := a.svc.SigningKeys()
	if err != nil {
		a.fail(ctx, err)
		return
	}
	list, perr := pageOf(ctx, keys)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
}

type rotateInput struct {
	// RetirePrevious drops the keys being replaced at once, ending every
	// access token they signed, for a key that may have leaked.
	RetirePrevious bool `json:"retire_previous"`
}

// RotateSigningKey handles POST /api/v1/signing-keys/rotate. The body is
// optional: no body is {"retire_previous": false}.
func (a *API) RotateSigningKey(ctx *fasthttp.RequestCtx) {
	var req rotateInput
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		if err := httpapi.DecodeJSON(ctx, &req); err != nil {
			httpapi.WriteError(ctx, err)
			return
		}
	}
	key, err := a.svc.RotateSigningKey(ctx, principal(ctx), a.auth.Meta(ctx), req.RetirePrevious)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, key)
}

// JWKS handles GET /.well-known/jwks.json: the public keys that verify
// Berth's access tokens, for services that check them without calling
// Berth. A verifier meeting an unknown kid should fetch the set again: a
// new key signs from the moment it is made.
func (a *API) JWKS(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/jwk-set+json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "public, max-age=60")
	ctx.SetBody(a.svc.JWKS())
}
