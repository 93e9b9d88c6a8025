// Package identity holds Berth's people and their credentials: users and
// roles, password hashing and sign-in with per-account lockout, access
// tokens (Ed25519 JWTs) and their sessions, rotating refresh tokens, browser
// sessions, API keys, KubeCube-style access keys, login history, and the
// Principal every authenticated request carries. It records every
// security-relevant act in the audit log.
//
// The Service knows nothing of HTTP. Its endpoints live beside it, in the
// handlers*.go files (Handlers), as every feature package keeps its own;
// what they need from the edge's authentication, which imports this
// package, they take through the small Edge interface. Refusals are
// *fault.Error values, so httpapi writes them without a mapping here.
package identity

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// User statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Built-in roles.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// AdminUsername is the user created at first start.
const AdminUsername = "admin"

// User is a person (or service account) who can sign in. PasswordHash is
// stored but never leaves the package in an API response.
type User struct {
	ID                string    `json:"id"`
	Username          string    `json:"username"`
	DisplayName       string    `json:"display_name,omitempty"`
	Email             string    `json:"email,omitempty"`
	Roles             []string  `json:"roles"`
	Groups            []string  `json:"groups,omitempty"`
	Status            string    `json:"status"`
	PasswordHash      string    `json:"password_hash"`
	PasswordChangedAt time.Time `json:"password_changed_at"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// usersTable is the users table, unique by case-folded username.
var usersTable = store.NewTable("users",
	store.Index[User]{Name: "username", Unique: true, Values: func(u *User) []string {
		return []string{strings.ToLower(u.Username)}
	}},
)

// EnsureAdmin creates the admin user on first start. The password is the
// given one, or a generated one written once to out (stdout), never to the
// log. When the admin already exists nothing changes, so a restart with a
// different BERTH_ADMIN_PASSWORD does not silently reset it.
func EnsureAdmin(db *store.DB, password string, out io.Writer) (created bool, err error) {
	generated := password == ""
	if generated {
		if password, err = GeneratePassword(); err != nil {
			return false, err
		}
	} else if len(password) < MinPasswordLength {
		return false, fmt.Errorf("admin password must be at least %d characters", MinPasswordLength)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return false, err
	}
	err = db.Update(func(tx *store.Tx) error {
		now := tx.Now().UTC()
		if _, _, err := usersTable.GetBy(tx, "username", AdminUsername); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		created = true
		id := store.NewID("usr")
		return usersTable.Insert(tx, id, &User{
			ID: id, Username: AdminUsername, Roles: []string{RoleAdmin}, Status: StatusActive,
			PasswordHash: hash, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
		})
	})
	if err != nil {
		return false, fmt.Errorf("create admin user: %w", err)
	}
	if created && generated {
		fmt.Fprintf(out, "berth: created user %q with password %s\nberth: this password is shown only once; change it after signing in.\n", AdminUsername, password)
	}
	return created, nil
}
