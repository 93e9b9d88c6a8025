package identity

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// ownerParam returns ?user_id= (a users:admin looking at someone else's
// credentials) or the caller. The service refuses other users' ids to
// callers without users:admin.
func ownerParam(ctx *fasthttp.RequestCtx) string {
	if id := string(ctx.QueryArgs().Peek("user_id")); id != "" {
		return id
	}
	return caller(ctx).UserID
}

// pageOf cuts one page from a full slice.
func pageOf[T any](ctx *fasthttp.RequestCtx, all []T) (httpapi.List[T], error) {
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

func newAPIKeyView(k *APIKey) apiKeyView {
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
func (h *Handlers) CreateAPIKey(ctx *fasthttp.RequestCtx) error {
	var req createAPIKey
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	in := NewAPIKey{UserID: req.UserID, Name: req.Name, Scopes: req.Scopes}
	if req.ExpiresAt != nil {
		in.ExpiresAt = *req.ExpiresAt
	}
	k, secret, err := h.svc.CreateAPIKey(ctx, caller(ctx), in, h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, struct {
		apiKeyView
		Key string `json:"key"`
	}{newAPIKeyView(k), secret})
	return nil
}

// ListAPIKeys handles GET /api/v1/auth/api-keys[?user_id=].
func (h *Handlers) ListAPIKeys(ctx *fasthttp.RequestCtx) error {
	keys, err := h.svc.ListAPIKeys(caller(ctx), ownerParam(ctx))
	if err != nil {
		return err
	}
	views := make([]apiKeyView, len(keys))
	for i := range keys {
		views[i] = newAPIKeyView(&keys[i])
	}
	list, perr := pageOf(ctx, views)
	if perr != nil {
		return perr
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
	return nil
}

// RevokeAPIKey handles DELETE /api/v1/auth/api-keys/{id}.
func (h *Handlers) RevokeAPIKey(ctx *fasthttp.RequestCtx) error {
	if err := h.svc.RevokeAPIKey(ctx, caller(ctx), pathParam(ctx, "id"), h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
}

type accessKeyView struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	AccessKey  string     `json:"access_key"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func newAccessKeyView(k *AccessKey) accessKeyView {
	return accessKeyView{ID: k.ID, UserID: k.UserID, AccessKey: k.AccessKey, CreatedAt: k.CreatedAt, LastUsedAt: timePtr(k.LastUsedAt)}
}

// CreateAccessKey handles POST /api/v1/auth/access-keys. The secret key is
// in this response and nowhere else.
func (h *Handlers) CreateAccessKey(ctx *fasthttp.RequestCtx) error {
	if len(ctx.PostBody()) > 0 && string(ctx.PostBody()) != "{}" {
		return fault.New(fault.Invalid, "this request takes no body")
	}
	k, secret, err := h.svc.CreateAccessKey(ctx, caller(ctx), h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	noStore(ctx)
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, struct {
		accessKeyView
		SecretKey string `json:"secret_key"`
	}{newAccessKeyView(k), secret})
	return nil
}

// ListAccessKeys handles GET /api/v1/auth/access-keys[?user_id=].
func (h *Handlers) ListAccessKeys(ctx *fasthttp.RequestCtx) error {
	keys, err := h.svc.ListAccessKeys(caller(ctx), ownerParam(ctx))
	if err != nil {
		return err
	}
	views := make([]accessKeyView, len(keys))
	for i := range keys {
		views[i] = newAccessKeyView(&keys[i])
	}
	list, perr := pageOf(ctx, views)
	if perr != nil {
		return perr
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
	return nil
}

// DeleteAccessKey handles DELETE /api/v1/auth/access-keys/{id}; the tokens
// the key issued stop working.
func (h *Handlers) DeleteAccessKey(ctx *fasthttp.RequestCtx) error {
	if err := h.svc.DeleteAccessKey(ctx, caller(ctx), pathParam(ctx, "id"), h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
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
func (h *Handlers) ListSessions(ctx *fasthttp.RequestCtx) error {
	p := caller(ctx)
	sessions, err := h.svc.ListSessions(p, ownerParam(ctx))
	if err != nil {
		return err
	}
	views := make([]sessionView, len(sessions))
	for i, s := range sessions {
		views[i] = sessionView{ID: s.ID, UserID: s.UserID, Method: s.Method, ClientID: s.ClientID, ClientIP: s.ClientIP,
			UserAgent: s.UserAgent, CreatedAt: s.CreatedAt, LastUsedAt: s.LastUsedAt, ExpiresAt: s.ExpiresAt,
			Current: s.ID == p.SessionID}
	}
	list, perr := pageOf(ctx, views)
	if perr != nil {
		return perr
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
	return nil
}

// RevokeSession handles DELETE /api/v1/auth/sessions/{id}.
func (h *Handlers) RevokeSession(ctx *fasthttp.RequestCtx) error {
	if err := h.svc.RevokeSession(ctx, caller(ctx), pathParam(ctx, "id"), h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
}
