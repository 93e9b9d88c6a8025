package identityapi

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
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

func newUserView(u *identity.User) userView {
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
func (a *API) CreateUser(ctx *fasthttp.RequestCtx) {
	var req createUser
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	u, err := a.svc.CreateUser(ctx, principal(ctx), identity.NewUser(req), a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderLocation, "/api/v1/users/"+u.ID)
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, newUserView(u))
}

// ListUsers handles GET /api/v1/users?page=&page_size=.
func (a *API) ListUsers(ctx *fasthttp.RequestCtx) {
	p, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	users, total, err := a.svc.ListUsers(p.Page, p.PageSize)
	if err != nil {
		a.fail(ctx, err)
		return
	}
	views := make([]userView, len(users))
	for i := range users {
		views[i] = newUserView(&users[i])
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(views, total, p))
}

// GetUser handles GET /api/v1/users/{id}.
func (a *API) GetUser(ctx *fasthttp.RequestCtx) {
	u, err := a.svc.GetUser(pathParam(ctx, "id"))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newUserView(u))
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
func (a *API) UpdateUser(ctx *fasthttp.RequestCtx) {
	var req updateUser
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	u, err := a.svc.UpdateUser(ctx, principal(ctx), pathParam(ctx, "id"), identity.UserChanges(req), a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, newUserView(u))
}

// DeleteUser handles DELETE /api/v1/users/{id}.
func (a *API) DeleteUser(ctx *fasthttp.RequestCtx) {
	if err := a.svc.DeleteUser(ctx, principal(ctx), pathParam(ctx, "id"), a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}

type resetPassword struct {
	Password string `json:"password"`
}

// ResetPassword handles POST /api/v1/users/{id}/password: an admin sets a
// new password; the user's sessions end.
func (a *API) ResetPassword(ctx *fasthttp.RequestCtx) {
	var req resetPassword
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	if err := a.svc.ResetPassword(ctx, principal(ctx), pathParam(ctx, "id"), req.Password, a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}

// UserLoginHistory handles GET /api/v1/users/{id}/login-history.
func (a *API) UserLoginHistory(ctx *fasthttp.RequestCtx) {
	if _, err := a.svc.GetUser(pathParam(ctx, "id")); err != nil {
		a.fail(ctx, err)
		return
	}
	a.loginHistory(ctx, pathParam(ctx, "id"))
}

// ListRoles handles GET /api/v1/roles.
func (a *API) ListRoles(ctx *fasthttp.RequestCtx) {
	roles, err := a.svc.ListRoles()
	if err != nil {
		a.fail(ctx, err)
		return
	}
	list, perr := pageOf(ctx, roles)
	if perr != nil {
		httpapi.WriteError(ctx, perr)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, list)
}

// GetRole handles GET /api/v1/roles/{name}.
func (a *API) GetRole(ctx *fasthttp.RequestCtx) {
	r, err := a.svc.GetRole(pathParam(ctx, "name"))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, r)
}

type roleInput struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// CreateRole handles POST /api/v1/roles.
func (a *API) CreateRole(ctx *fasthttp.RequestCtx) {
	var req roleInput
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	r, err := a.svc.PutRole(ctx, principal(ctx), identity.Role{Name: req.Name, Description: req.Description, Permissions: req.Permissions}, true, a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, r)
}

// UpdateRole handles PUT /api/v1/roles/{name}.
func (a *API) UpdateRole(ctx *fasthttp.RequestCtx) {
	var req roleInput
	if err := httpapi.DecodeJSON(ctx, &req); err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	name := pathParam(ctx, "name")
	if req.Name != "" && req.Name != name {
		httpapi.WriteError(ctx, httpapi.BadRequest("a role cannot be renamed"))
		return
	}
	r, err := a.svc.PutRole(ctx, principal(ctx), identity.Role{Name: name, Description: req.Description, Permissions: req.Permissions}, false, a.auth.Meta(ctx))
	if err != nil {
		a.fail(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, r)
}

// DeleteRole handles DELETE /api/v1/roles/{name}.
func (a *API) DeleteRole(ctx *fasthttp.RequestCtx) {
	if err := a.svc.DeleteRole(ctx, principal(ctx), pathParam(ctx, "name"), a.auth.Meta(ctx)); err != nil {
		a.fail(ctx, err)
		return
	}
	noContent(ctx)
}

// ListPermissions handles GET /api/v1/permissions.
func (a *API) ListPermissions(ctx *fasthttp.RequestCtx) {
	perms := identity.Permissions()
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(perms, len(perms), httpapi.Page{Page: 1, PageSize: len(perms)}))
}
