package identity

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

// ListSigningKeys handles GET /api/v1/signing-keys: the keys that sign and
// verify access tokens, never their secrets.
func (h *Handlers) ListSigningKeys(ctx *fasthttp.RequestCtx) error {
	keys, err := h.svc.SigningKeys()
	if err != nil {
		return err
	}
	list, perr := pageOf(ctx, keys)
	if perr != nil {
		return perr
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
	return nil
}

type rotateInput struct {
	// RetirePrevious drops the keys being replaced at once, ending every
	// access token they signed, for a key that may have leaked.
	RetirePrevious bool `json:"retire_previous"`
}

// RotateSigningKey handles POST /api/v1/signing-keys/rotate. The body is
// optional: no body is {"retire_previous": false}.
func (h *Handlers) RotateSigningKey(ctx *fasthttp.RequestCtx) error {
	var req rotateInput
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		if err := httpapi.DecodeJSON(ctx, &req); err != nil {
			return err
		}
	}
	key, err := h.svc.RotateSigningKey(ctx, caller(ctx), h.edge.Meta(ctx), req.RetirePrevious)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, key)
	return nil
}

// JWKS handles GET /.well-known/jwks.json: the public keys that verify
// Berth's access tokens, for services that check them without calling
// Berth. A verifier meeting an unknown kid should fetch the set again: a
// new key signs from the moment it is made.
func (h *Handlers) JWKS(ctx *fasthttp.RequestCtx) error {
	ctx.SetContentType("application/jwk-set+json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "public, max-age=60")
	ctx.SetBody(h.svc.JWKS())
	return nil
}
