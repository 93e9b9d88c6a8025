package identity

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// Field rules for users and roles.
var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	roleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
)

const (
	maxDisplayName = 128
	maxEmail       = 254
	maxGroups      = 32
	maxGroupLen    = 128
	maxRoles       = 16
	maxDescription = 256
)

// NewUser is the input for CreateUser.
type NewUser struct {
	Username    string
	Password    string
	DisplayName string
	Email       string
	Roles       []string
	Groups      []string
}

// UserChanges is the input for UpdateUser; nil fields keep their value.
type UserChanges struct {
	DisplayName *string
	Email       *string
	Roles       *[]string
	Groups      *[]string
	Status      *string
}

// CreateUser adds an active user. Roles default to [user].
func (s *Service) CreateUser(ctx context.Context, actor *Principal, in NewUser, m Meta) (*User, error) {
	if !usernameRE.MatchString(in.Username) {
		return nil, invalid("username must be 1 to %d letters, digits or . _ @ - and start with a letter or digit", MaxUsernameLength)
	}
	if err := s.checkNewPassword(in.Password); err != nil {
		return nil, err
	}
	if len(in.Roles) == 0 {
		in.Roles = []string{RoleUser}
	}
	now := s.now().UTC()
	u := &User{ID: store.NewID("usr"), Username: in.Username, Status: StatusActive, CreatedAt: now, UpdatedAt: now, PasswordChangedAt: now}
	if err := applyProfile(u, &in.DisplayName, &in.Email, &in.Groups); err != nil {
		return nil, err
	}
	hash, err := HashPassword(in.Password)
	if err != nil {
		return nil, err
	}
	u.PasswordHash = hash
	err = s.db.Update(func(tx *store.Tx) error {
		roles, err := checkRoles(tx, in.Roles)
		if err != nil {
			return err
		}
		u.Roles = roles
		if err := usersTable.Insert(tx, u.ID, u); err != nil {
			if isDuplicate(err) {
				return conflict("username %q is taken", in.Username)
			}
			return err
		}
		return s.emitAccount(tx, events.UserCreated, actor, u)
	})
	if err != nil {
		return nil, err
	}
	s.record(ctx, actor, m, audit.Event{Action: "create", ResourceType: "user", ResourceID: u.ID,
		Details: map[string]string{"username": u.Username, "roles": strings.Join(u.Roles, " ")}})
	return u, nil
}

func applyProfile(u *User, displayName, email *string, groups *[]string) error {
	if displayName != nil {
		d := strings.TrimSpace(*displayName)
		if len(d) > maxDisplayName || !printable(d) {
			return invalid("display_name must be at most %d printable characters", maxDisplayName)
		}
		u.DisplayName = d
	}
	if email != nil {
		e := strings.TrimSpace(*email)
		if len(e) > maxEmail || (e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, " \t\r\n<>"))) {
			return invalid("email must be an address of at most %d characters", maxEmail)
		}
		u.Email = e
	}
	if groups != nil {
		gs, err := checkGroups(*groups)
		if err != nil {
			return err
		}
		u.Groups = gs
	}
	return nil
}

// checkGroups validates the Kubernetes groups a user is impersonated with.
// Groups under system: are refused: they are Kubernetes' own, and
// system:masters is cluster-admin everywhere.
func checkGroups(in []string) ([]string, error) {
	if len(in) > maxGroups {
		return nil, invalid("at most %d groups", maxGroups)
	}
	out := []string{}
	for _, g := range in {
		if g == "" || len(g) > maxGroupLen || !printable(g) || strings.TrimSpace(g) != g {
			return nil, invalid("group names must be 1 to %d printable characters without surrounding spaces", maxGroupLen)
		}
		if strings.HasPrefix(g, "system:") {
			return nil, invalid("group %q: groups under system: are reserved for Kubernetes", g)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

func checkRoles(tx *store.Tx, in []string) ([]string, error) {
	if len(in) == 0 || len(in) > maxRoles {
		return nil, invalid("a user needs 1 to %d roles", maxRoles)
	}
	out := []string{}
	for _, r := range in {
		if !BuiltinRole(r) {
			if _, err := rolesTable.Get(tx, r); err != nil {
				if isNotFound(err) {
					return nil, invalid("unknown role %q", r)
				}
				return nil, err
			}
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// ListUsers returns one page of users in creation order and the total.
func (s *Service) ListUsers(page, pageSize int) ([]User, int, error) {
	var items []User
	var total int
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		items, total, err = usersTable.Page(tx, page, pageSize, false, nil)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	return items, total, nil
}

// GetUser returns one user.
func (s *Service) GetUser(id string) (*User, error) {
	var u *User
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		u, err = usersTable.Get(tx, id)
		return err
	})
	if isNotFound(err) {
		return nil, notFound("user")
	}
	return u, err
}

// UserByName returns the user named name, compared case-insensitively as
// sign-in compares it; an unknown name is fault.NotFound.
func (s *Service) UserByName(name string) (*User, error) {
	var u *User
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		u, _, err = usersTable.GetBy(tx, "username", strings.ToLower(name))
		return err
	})
	if isNotFound(err) {
		return nil, notFound("user")
	}
	return u, err
}

// UpdateUser changes a user's profile, roles, groups or status. Disabling
// a user ends all their sessions; their API keys stop working because
// every authentication checks the account's status. The last active admin
// can be neither disabled nor demoted, so the gateway cannot lock itself out.
func (s *Service) UpdateUser(ctx context.Context, actor *Principal, id string, ch UserChanges, m Meta) (*User, error) {
	if ch.Status != nil && *ch.Status != StatusActive && *ch.Status != StatusDisabled {
		return nil, invalid("status must be active or disabled")
	}
	now := s.now().UTC()
	var u *User
	var before User
	var moreSessions bool
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		u, err = usersTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				return notFound("user")
			}
			return err
		}
		before = *u
		if err := applyProfile(u, ch.DisplayName, ch.Email, ch.Groups); err != nil {
			return err
		}
		if ch.Roles != nil {
			if u.Roles, err = checkRoles(tx, *ch.Roles); err != nil {
				return err
			}
		}
		if ch.Status != nil {
			u.Status = *ch.Status
		}
		wasAdmin := before.Status == StatusActive && slices.Contains(before.Roles, RoleAdmin)
		isAdmin := u.Status == StatusActive && slices.Contains(u.Roles, RoleAdmin)
		if wasAdmin && !isAdmin {
			if err := keepAnAdmin(tx, id); err != nil {
				return err
			}
		}
		u.UpdatedAt = now
		if err := usersTable.Put(tx, id, u); err != nil {
			return err
		}
		// A disabled user's sessions are refused by the status alone;
		// they are revoked right after it commits, outside this
		// transaction, so that writes to the user's sessions (the user
		// signing in again and again) cannot hold the disabling back.
		moreSessions = u.Status == StatusDisabled && before.Status != StatusDisabled
		if moreSessions {
			return s.emitAccount(tx, events.UserDisabled, actor, u)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if moreSessions {
		if err := s.finishRevoking("user", id, "user_disabled"); err != nil {
			return nil, err
		}
	}
	action := "update"
	switch {
	case before.Status != StatusDisabled && u.Status == StatusDisabled:
		action = "disable"
	case before.Status == StatusDisabled && u.Status == StatusActive:
		action = "enable"
	}
	s.record(ctx, actor, m, audit.Event{Action: action, ResourceType: "user", ResourceID: id,
		Details: changedFields(&before, u)})
	return u, nil
}

func changedFields(a, b *User) map[string]string {
	d := map[string]string{}
	if a.DisplayName != b.DisplayName {
		d["display_name"] = b.DisplayName
	}
	if a.Email != b.Email {
		d["email"] = b.Email
	}
	if !slices.Equal(a.Roles, b.Roles) {
		d["roles"] = strings.Join(b.Roles, " ")
	}
	if !slices.Equal(a.Groups, b.Groups) {
		d["groups"] = strings.Join(b.Groups, " ")
	}
	if a.Status != b.Status {
		d["status"] = b.Status
	}
	return d
}

// keepAnAdmin fails unless an active admin other than exceptID exists.
func keepAnAdmin(tx *store.Tx, exceptID string) error {
	found := false
	err := usersTable.Scan(tx, store.ScanOptions{}, func(id string, u *User) (bool, error) {
		if id != exceptID && u.Status == StatusActive && slices.Contains(u.Roles, RoleAdmin) {
			found = true
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return conflict("this is the last active admin; make another user admin first")
	}
	return nil
}

// DeleteUser removes a user with their API keys and access keys, and ends
// their sessions.
func (s *Service) DeleteUser(ctx context.Context, actor *Principal, id string, m Meta) error {
	var username string
	err := s.db.Update(func(tx *store.Tx) error {
		u, err := usersTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				return notFound("user")
			}
			return err
		}
		username = u.Username
		if u.Status == StatusActive && slices.Contains(u.Roles, RoleAdmin) {
			if err := keepAnAdmin(tx, id); err != nil {
				return err
			}
		}
		// The user goes first; their keys and sessions, which no longer
		// authenticate anyone, go in batches after it (etcd bounds a
		// transaction's writes).
		return usersTable.Delete(tx, id)
	})
	if err != nil {
		return err
	}
	s.record(ctx, actor, m, audit.Event{Action: "delete", ResourceType: "user", ResourceID: id,
		Details: map[string]string{"username": username}})
	return errors.Join(
		deleteByUser(s.db, apiKeysTable, id),
		deleteByUser(s.db, accessKeysTable, id),
		s.unlinkExternal(id),
		s.finishRevoking("user", id, "user_deleted"))
}

// deleteByUser deletes a deleted user's records of table t, batch after
// batch.
func deleteByUser[T any](db *store.DB, t *store.Table[T], userID string) error {
	for more := true; more; {
		err := db.Update(func(tx *store.Tx) error {
			ids, err := t.IDsBy(tx, "user", userID)
			if err != nil {
				return err
			}
			limit := db.RecordsPerTxn(4)
			more = len(ids) > limit
			for _, id := range ids[:min(limit, len(ids))] {
				if err := t.Delete(tx, id); err != nil && !isNotFound(err) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("delete the %s of a deleted user: %w", t.Name(), err)
		}
	}
	return nil
}

// ResetPassword sets a user's password on an admin's word and ends all the
// user's sessions.
func (s *Service) ResetPassword(ctx context.Context, actor *Principal, id, password string, m Meta) error {
	if err := s.checkNewPassword(password); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	var moreSessions bool
	err = s.db.Update(func(tx *store.Tx) error {
		u, err := usersTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				return notFound("user")
			}
			return err
		}
		u.PasswordHash, u.PasswordChangedAt, u.UpdatedAt = hash, now, now
		if err := usersTable.Put(tx, id, u); err != nil {
			return err
		}
		if err := s.emitAccount(tx, events.UserPasswordReset, actor, u); err != nil {
			return err
		}
		moreSessions, err = revokeWhere(tx, "user", id, now, "password_reset", s.db.RecordsPerTxn(sessionWrites))
		return err
	})
	if err != nil {
		return err
	}
	if moreSessions {
		if err := s.finishRevoking("user", id, "password_reset"); err != nil {
			return err
		}
	}
	s.resetFailures(s.lockKey(s.usernameOf(id)))
	s.record(ctx, actor, m, audit.Event{Action: "password_reset", ResourceType: "user", ResourceID: id})
	return nil
}

func (s *Service) usernameOf(id string) string {
	u, err := s.GetUser(id)
	if err != nil {
		return ""
	}
	return u.Username
}

// ListRoles returns the built-in roles then the custom ones by name.
func (s *Service) ListRoles() ([]Role, error) {
	out := []Role{
		{Name: RoleAdmin, Description: "every permission", Permissions: builtinRoles[RoleAdmin], Builtin: true},
		{Name: RoleUser, Description: "reach clusters", Permissions: builtinRoles[RoleUser], Builtin: true},
	}
	err := s.db.View(func(tx *store.Tx) error {
		return rolesTable.Scan(tx, store.ScanOptions{}, func(_ string, r *Role) (bool, error) {
			out = append(out, *r)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// GetRole returns one role, built-in or custom.
func (s *Service) GetRole(name string) (*Role, error) {
	roles, err := s.ListRoles()
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		if r.Name == name {
			return &r, nil
		}
	}
	return nil, notFound("role")
}

// PutRole creates or replaces a custom role. Built-in roles cannot be
// changed.
func (s *Service) PutRole(ctx context.Context, actor *Principal, r Role, create bool, m Meta) (*Role, error) {
	if BuiltinRole(r.Name) {
		return nil, forbidden("built-in roles cannot be changed")
	}
	if !roleNameRE.MatchString(r.Name) {
		return nil, invalid("role name must be 1 to 63 lower-case letters, digits, _ or -, starting with a letter")
	}
	if len(r.Description) > maxDescription || !printable(r.Description) {
		return nil, invalid("description must be at most %d printable characters", maxDescription)
	}
	if len(r.Permissions) == 0 || len(r.Permissions) > maxScopes {
		return nil, invalid("a role needs 1 to %d permissions", maxScopes)
	}
	perms := []string{}
	for _, p := range r.Permissions {
		if !KnownPermission(p) {
			return nil, invalid("unknown permission %q", p)
		}
		if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	slices.Sort(perms)
	now := s.now().UTC()
	out := &Role{Name: r.Name, Description: r.Description, Permissions: perms, UpdatedAt: now}
	err := s.db.Update(func(tx *store.Tx) error {
		old, err := rolesTable.Get(tx, r.Name)
		switch {
		case err == nil && create:
			return conflict("role %q exists", r.Name)
		case err == nil:
			out.CreatedAt = old.CreatedAt
		case !isNotFound(err):
			return err
		case !create:
			return notFound("role")
		default:
			out.CreatedAt = now
		}
		return rolesTable.Put(tx, r.Name, out)
	})
	if err != nil {
		return nil, err
	}
	action := "update"
	if create {
		action = "create"
	}
	s.record(ctx, actor, m, audit.Event{Action: action, ResourceType: "role", ResourceID: r.Name,
		Details: map[string]string{"permissions": strings.Join(perms, " ")}})
	return out, nil
}

// DeleteRole removes a custom role that no user holds.
func (s *Service) DeleteRole(ctx context.Context, actor *Principal, name string, m Meta) error {
	if BuiltinRole(name) {
		return forbidden("built-in roles cannot be deleted")
	}
	err := s.db.Update(func(tx *store.Tx) error {
		if _, err := rolesTable.Get(tx, name); err != nil {
			if isNotFound(err) {
				return notFound("role")
			}
			return err
		}
		holder := ""
		err := usersTable.Scan(tx, store.ScanOptions{}, func(_ string, u *User) (bool, error) {
			if slices.Contains(u.Roles, name) {
				holder = u.Username
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if holder != "" {
			return conflict("role %q is held by %s; remove it from every user first", name, holder)
		}
		return rolesTable.Delete(tx, name)
	})
	if err != nil {
		return err
	}
	s.record(ctx, actor, m, audit.Event{Action: "delete", ResourceType: "role", ResourceID: name})
	return nil
}

func isDuplicate(err error) bool { return errors.Is(err, store.ErrDuplicate) }
