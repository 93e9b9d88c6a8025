package identityapi

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// ownerParam returns ?user_id= (a users:admin looking at someone else's
// credentials) or the caller. The service refuses other users' ids to
// callers without users:admin.
func ownerParam(ctx *fasthttp.RequestCtx) string {
	if id := string(ctx.QueryArgs().Peek("user_id")); id != "" {
		return id
	}
	return principal(ctx).UserID
}

// pageOf cuts one page from a full slice.
func pageOf[T any](ctx *fasthttp.RequestCtx, all []T) (httpapi.List[T], *httpapi.Error) {
	p, err := httpapi.ParsePage(ctx)
	if err != nil {
		return httpapi.List[T]{}, err
	}
	start := min(len(all), (p.Page-1)*p.PageSize)
	end := min(len(all), start+p.PageSize)
	return httpapi.NewList(all[start:end], len(all), p), nil
}

// apiKeyView is an API key as lists show it: metadata, never the key.
type apiKeyView struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func newAPIKeyView(k *identity.APIKey) apiKeyView {
	return apiKeyView{ID: k.ID, UserID: k.UserID, Name: k.Name, Prefix: k.Prefix, Scopes: nonNil(k.Scopes),
		CreatedAt: k.CreatedAt, ExpiresAt: timePtr(k.ExpiresAt), LastUsedAt: timePtr(k.LastUsedAt)}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

type createAPIKey struct {
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expires_at"`
	Scopes    []string   `json:"scopes"`
	// UserID lets a users:admin create a key for someone else.
	UserID string `json:"user_id"`
}

// CreateAPIKey handles POST /api/v1/auth/api-keys. The key is in this
// response and nowhere else, ever.
func (a *API) CreateAPIKey(ctx *fasthttp.RequestCtx) {
	var req createAPIKey
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	in := identity.NewAPIKey{UserID: req.UserID, Name: req.Name, Scopes: req.Scopes}
	if req.ExpiresAt != nil {
		in.ExpiresAt = *req.ExpiresAt
	}
	k, secret, err := a.svc.CreateAPIKey(ctx, principal(ctx), in, a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, struct {
		apiKeyView
		Key string `json:"key"`
	}{newAPIKeyView(k), secret})
}

// ListAPIKeys handles GET /api/v1/auth/api-keys[?user_id=].
func (a *API) ListAPIKeys(ctx *fasthttp.RequestCtx) {
	keys, err := a.svc.ListAPIKeys(principal(ctx), ownerParam(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	views := make([]apiKeyView, len(keys))
	for i := range keys {
		views[i] = newAPIKeyView(&keys[i])
	}
	list, perr := pageOf(ctx, views)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
}

// RevokeAPIKey handles DELETE /api/v1/auth/api-keys/{id}.
func (a *API) RevokeAPIKey(ctx *fasthttp.RequestCtx) {
	if err := a.svc.RevokeAPIKey(ctx, principal(ctx), pathParam(ctx, "id"), a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}

type accessKeyView struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	AccessKey  string     `json:"access_key"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func newAccessKeyView(k *identity.AccessKey) accessKeyView {
	return accessKeyView{ID: k.ID, UserID: k.UserID, AccessKey: k.AccessKey, CreatedAt: k.CreatedAt, LastUsedAt: timePtr(k.LastUsedAt)}
}

// CreateAccessKey handles POST /api/v1/auth/access-keys. The secret key is
// in this response and nowhere else.
func (a *API) CreateAccessKey(ctx *fasthttp.RequestCtx) {
	if len(ctx.PostBody()) > 0 && string(ctx.PostBody()) != "{}" {
		httpapi.WriteError(ctx, httpapi.BadRequest("this request takes no body"))
		return
	}
	k, secret, err := a.svc.CreateAccessKey(ctx, principal(ctx), a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, struct {
		accessKeyView
		SecretKey string `json:"secret_key"`
	}{newAccessKeyView(k), secret})
}

// ListAccessKeys handles GET /api/v1/auth/access-keys[?user_id=].
func (a *API) ListAccessKeys(ctx *fasthttp.RequestCtx) {
	keys, err := a.svc.ListAccessKeys(principal(ctx), ownerParam(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	views := make([]accessKeyView, len(keys))
	for i := range keys {
		views[i] = newAccessKeyView(&keys[i])
	}
	list, perr := pageOf(ctx, views)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
}

// DeleteAccessKey handles DELETE /api/v1/auth/access-keys/{id}; the tokens
// the key issued stop working.
func (a *API) DeleteAccessKey(ctx *fasthttp.RequestCtx) {
	if err := a.svc.DeleteAccessKey(ctx, principal(ctx), pathParam(ctx, "id"), a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}

type sessionView struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Method     string    `json:"method"`
	ClientID   string    `json:"client_id,omitempty"`
	ClientIP   string    `json:"client_ip"`
	UserAgent  string    `json:"user_agent"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// ListSessions handles GET /api/v1/auth/sessions[?user_id=]: live sessions.
func (a *API) ListSessions(ctx *fasthttp.RequestCtx) {
	p := principal(ctx)
	sessions, err := a.svc.ListSessions(p, ownerParam(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	views := make([]sessionView, len(sessions))
	for i, s := range sessions {
		views[i] = sessionView{ID: s.ID, UserID: s.UserID, Method: s.Method, ClientID: s.ClientID, ClientIP: s.ClientIP,
			UserAgent: s.UserAgent, CreatedAt: s.CreatedAt, LastUsedAt: s.LastUsedAt, ExpiresAt: s.ExpiresAt,
			Current: s.ID == p.SessionID}
	}
	list, perr := pageOf(ctx, views)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
}

// RevokeSession handles DELETE /api/v1/auth/sessions/{id}.
func (a *API) RevokeSession(ctx *fasthttp.RequestCtx) {
	if err := a.svc.RevokeSession(ctx, principal(ctx), pathParam(ctx, "id"), a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}
