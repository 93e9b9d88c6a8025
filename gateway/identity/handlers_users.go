package identity

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// userView is a user as the API shows them: never the password hash.
type userView struct {
	ID                string    `json:"id"`
	Username          string    `json:"username"`
	DisplayName       string    `json:"display_name"`
	Email             string    `json:"email"`
	Roles             []string  `json:"roles"`
	Groups            []string  `json:"groups"`
	Status            string    `json:"status"`
	PasswordChangedAt time.Time `json:"password_changed_at"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

func newUserView(u *User) userView {
	return userView{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Email: u.Email,
		Roles: nonNil(u.Roles), Groups: nonNil(u.Groups), Status: u.Status,
		PasswordChangedAt: u.PasswordChangedAt, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

type createUser struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	DisplayName string   `json:"display_name"`
	Email       string   `json:"email"`
	Roles       []string `json:"roles"`
	Groups      []string `json:"groups"`
}

// CreateUser handles POST /api/v1/users.
func (h *Handlers) CreateUser(ctx *fasthttp.RequestCtx) error {
	var req createUser
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	u, err := h.svc.CreateUser(ctx, caller(ctx), NewUser(req), h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	ctx.Response.Header.Set(fasthttp.HeaderLocation, "/api/v1/users/"+u.ID)
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, newUserView(u))
	return nil
}

// ListUsers handles GET /api/v1/users?page=&page_size=.
func (h *Handlers) ListUsers(ctx *fasthttp.RequestCtx) error {
	p, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		return perr
	}
	users, total, err := h.svc.ListUsers(p.Page, p.PageSize)
	if err != nil {
		return err
	}
	views := make([]userView, len(users))
	for i := range users {
		views[i] = newUserView(&users[i])
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(views, total, p))
	return nil
}

// GetUser handles GET /api/v1/users/{id}.
func (h *Handlers) GetUser(ctx *fasthttp.RequestCtx) error {
	u, err := h.svc.GetUser(pathParam(ctx, "id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newUserView(u))
	return nil
}

type updateUser struct {
	DisplayName *string   `json:"display_name"`
	Email       *string   `json:"email"`
	Roles       *[]string `json:"roles"`
	Groups      *[]string `json:"groups"`
	Status      *string   `json:"status"`
}

// UpdateUser handles PUT /api/v1/users/{id}: fields left out keep their
// value. Setting status to disabled ends every session and key use of the
// user at once.
func (h *Handlers) UpdateUser(ctx *fasthttp.RequestCtx) error {
	var req updateUser
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	u, err := h.svc.UpdateUser(ctx, caller(ctx), pathParam(ctx, "id"), UserChanges(req), h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newUserView(u))
	return nil
}

// DeleteUser handles DELETE /api/v1/users/{id}.
func (h *Handlers) DeleteUser(ctx *fasthttp.RequestCtx) error {
	if err := h.svc.DeleteUser(ctx, caller(ctx), pathParam(ctx, "id"), h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
}

type resetPassword struct {
	Password string `json:"password"`
}

// ResetPassword handles POST /api/v1/users/{id}/password: an admin sets a
// new password; the user's sessions end.
func (h *Handlers) ResetPassword(ctx *fasthttp.RequestCtx) error {
	var req resetPassword
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	if err := h.svc.ResetPassword(ctx, caller(ctx), pathParam(ctx, "id"), req.Password, h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
}

// UserLoginHistory handles GET /api/v1/users/{id}/login-history.
func (h *Handlers) UserLoginHistory(ctx *fasthttp.RequestCtx) error {
	if _, err := h.svc.GetUser(pathParam(ctx, "id")); err != nil {
		return err
	}
	return h.loginHistory(ctx, pathParam(ctx, "id"))
}

// ListRoles handles GET /api/v1/roles.
func (h *Handlers) ListRoles(ctx *fasthttp.RequestCtx) error {
	roles, err := h.svc.ListRoles()
	if err != nil {
		return err
	}
	list, perr := pageOf(ctx, roles)
	if perr != nil {
		return perr
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
	return nil
}

// GetRole handles GET /api/v1/roles/{name}.
func (h *Handlers) GetRole(ctx *fasthttp.RequestCtx) error {
	r, err := h.svc.GetRole(pathParam(ctx, "name"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, r)
	return nil
}

type roleInput struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// CreateRole handles POST /api/v1/roles.
func (h *Handlers) CreateRole(ctx *fasthttp.RequestCtx) error {
	var req roleInput
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	r, err := h.svc.PutRole(ctx, caller(ctx), Role{Name: req.Name, Description: req.Description, Permissions: req.Permissions}, true, h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, r)
	return nil
}

// UpdateRole handles PUT /api/v1/roles/{name}.
func (h *Handlers) UpdateRole(ctx *fasthttp.RequestCtx) error {
	var req roleInput
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		return err
	}
	name := pathParam(ctx, "name")
	if req.Name != "" && req.Name != name {
		return fault.New(fault.Invalid, "a role cannot be renamed")
	}
	r, err := h.svc.PutRole(ctx, caller(ctx), Role{Name: name, Description: req.Description, Permissions: req.Permissions}, false, h.edge.Meta(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, r)
	return nil
}

// DeleteRole handles DELETE /api/v1/roles/{name}.
func (h *Handlers) DeleteRole(ctx *fasthttp.RequestCtx) error {
	if err := h.svc.DeleteRole(ctx, caller(ctx), pathParam(ctx, "name"), h.edge.Meta(ctx)); err != nil {
		return err
	}
	return noContent(ctx)
}

// ListPermissions handles GET /api/v1/permissions.
func (h *Handlers) ListPermissions(ctx *fasthttp.RequestCtx) error {
	perms := Permissions()
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(perms, len(perms), httpapi.Page{Page: 1, PageSize: len(perms)}))
	return nil
}
