package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// MethodSSO is a sign-in through an OpenID provider, as recorded on the
// sessions and tokens it starts for the CLI (a browser's is a session).
const MethodSSO = "sso"

// ExternalIdentity is who an OpenID provider says signed in, after the
// caller verified the provider's ID token.
type ExternalIdentity struct {
	// Provider is Berth's name of the provider, for the audit log.
	Provider string
	// Issuer and Subject are the token's iss and sub: together the one
	// stable name of the person (OpenID Connect Core §5.7), and the only
	// thing an identity is linked to a user by.
	Issuer, Subject string
	// Username is the configured username claim.
	Username string
	// Email is the email claim when email_verified is true, else "".
	Email       string
	DisplayName string
	// Groups replace the user's Berth groups when GroupsAsserted (the
	// provider has a groups claim configured).
	Groups         []string
	GroupsAsserted bool
}

// ExternalPolicy is what a provider's identities may do on their first
// sign-in.
type ExternalPolicy struct {
	// CreateUsers creates a user for an identity linked to none.
	CreateUsers bool
	// DefaultRole is the role of users CreateUsers makes.
	DefaultRole string
	// LinkExisting links an identity linked to none to the user of the
	// same username, when that user has no external identity at all.
	LinkExisting bool
}

// ExternalLink ties an OpenID provider's subject to a Berth user.
type ExternalLink struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	Provider string `json:"provider"`
	Issuer   string `json:"issuer"`
	Subject  string `json:"subject"`
	// Created says how the link came: "created" (with the user) or
	// "linked" (to an existing user, by link_existing).
	Created    string    `json:"created"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
}

// externalLinksTable holds the links, unique by issuer and subject.
var externalLinksTable = store.NewTable("external_links",
	store.Index[ExternalLink]{Name: "subject", Unique: true, Values: func(l *ExternalLink) []string {
		return []string{subjectKey(l.Issuer, l.Subject)}
	}},
	store.Index[ExternalLink]{Name: "user", Values: func(l *ExternalLink) []string { return []string{l.UserID} }},
)

// subjectKey is the index value of an issuer and subject: a digest, so
// that any bytes a provider puts in sub make a key of fixed length.
func subjectKey(issuer, subject string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return hex.EncodeToString(sum[:])
}

// The refusals of SignInExternal. Their messages are safe to show the
// person at the browser: they name no other account.
var (
	errNotProvisioned = fault.New(fault.Forbidden, "there is no Berth account for this identity; ask an administrator to create one")
	errUsernameTaken  = fault.New(fault.Forbidden, "the username this identity asserts belongs to another Berth account; ask an administrator")
	errExternalOff    = fault.New(fault.Forbidden, "this Berth account is disabled")
	errBadUsername    = fault.New(fault.Forbidden, "the identity provider gave no username Berth accepts (1 to 64 letters, digits or . _ @ -)")
)

// SignInExternal admits a person an OpenID provider vouched for and
// returns their user. An identity already linked signs in as its user,
// whatever username it now asserts. Otherwise, by pol: a new user is
// created (no password; pol.DefaultRole), or the existing user of the
// asserted username is linked — only when pol.LinkExisting and that user
// has no external identity yet, so one provider can never take over
// another's user or a user already linked, nor an administrator. An email address is never
// matched. Groups, when asserted, replace the user's groups at every
// sign-in (system: and malformed names dropped). Each outcome is audited
// (login on sso, and create on user for a new user) and a success is
// written to the user's login history.
func (s *Service) SignInExternal(ctx context.Context, id ExternalIdentity, pol ExternalPolicy, m Meta) (*User, error) {
	now := s.now().UTC()
	groups, dropped := cleanGroups(id.Groups)
	var (
		u       *User
		how     string // linked, created, or "" for a known link
		reason  string
		refusal error
	)
	ev := audit.Event{Action: "login", ResourceType: "sso", ResourceID: id.Provider, AuthMethod: MethodSSO,
		Details: map[string]string{"issuer": id.Issuer, "subject": clip(id.Subject, 255), "username": clip(id.Username, 128)}}
	if len(dropped) > 0 {
		ev.Details["groups_dropped"] = clip(strings.Join(dropped, " "), 512)
	}
	s.prepare(nil, m, &ev)
	err := s.db.Update(func(tx *store.Tx) error {
		u, how, reason, refusal = nil, "", "", nil
		link, _, err := externalLinksTable.GetBy(tx, "subject", subjectKey(id.Issuer, id.Subject))
		switch {
		case err == nil:
			u, err = usersTable.Get(tx, link.UserID)
			if err != nil {
				if !isNotFound(err) {
					return err
				}
				// The user was deleted and the link outlived it: the
				// identity starts over.
				if err := externalLinksTable.Delete(tx, link.ID); err != nil {
					return err
				}
				link, u = nil, nil
			}
		case isNotFound(err):
			link = nil
		default:
			return err
		}
		if link == nil {
			var a admission
			a, err = s.firstExternal(tx, id, pol, groups, now)
			u, how, reason, refusal = a.user, a.how, a.reason, a.refusal
			if err != nil || refusal != nil {
				return err
			}
			link = &ExternalLink{ID: store.NewID("xid"), UserID: u.ID, Provider: id.Provider, Issuer: id.Issuer,
				Subject: id.Subject, Created: how, CreatedAt: now}
		}
		if u.Status != StatusActive {
			reason, refusal = "disabled", errExternalOff
			return nil
		}
		link.LastUsedAt = now
		if err := externalLinksTable.Put(tx, link.ID, link); err != nil {
			return err
		}
		if id.GroupsAsserted && !slices.Equal(u.Groups, groups) && how != "created" {
			ev.Details["groups"] = strings.Join(groups, " ")
			u.Groups, u.UpdatedAt = groups, now
			if err := usersTable.Put(tx, u.ID, u); err != nil {
				return err
			}
		}
		rec := &LoginRecord{ID: store.NewID("lgn"), UserID: u.ID, Time: now, ClientIP: m.ClientIP,
			UserAgent: clip(m.UserAgent, 256), Method: MethodSSO, Result: audit.ResultSuccess}
		if s.set.LoginHistoryRetention > 0 {
			rec.ExpiresAt = now.Add(s.set.LoginHistoryRetention)
		}
		return loginHistoryTable.Insert(tx, rec.ID, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("sso sign-in: %w", err)
	}
	if u != nil {
		ev.ActorID, ev.ActorName = u.ID, u.Username
	}
	if refusal != nil {
		ev.Result, ev.Reason = audit.ResultFailure, reason
		s.record(ctx, nil, m, ev)
		return nil, refusal
	}
	if how == "created" {
		s.record(ctx, nil, m, audit.Event{Action: "create", ResourceType: "user", ResourceID: u.ID, ActorID: u.ID, ActorName: u.Username,
			AuthMethod: MethodSSO, Details: map[string]string{"username": u.Username, "roles": strings.Join(u.Roles, " "),
				"source": "sso", "provider": id.Provider, "groups": strings.Join(u.Groups, " ")}})
	}
	if how != "" {
		ev.Details["link"] = how
	}
	s.record(ctx, nil, m, ev)
	return u, nil
}

// admission is firstExternal's outcome: the user and how they came
// (linked or created), or a refusal and its audit reason.
type admission struct {
	user        *User
	how, reason string
	refusal     error
}

func refused(u *User, reason string, err error) admission {
	return admission{user: u, reason: reason, refusal: err}
}

// firstExternal admits an identity linked to no user, by pol; see
// SignInExternal. A refusal comes back in the admission with a nil error,
// so that the caller's transaction writes nothing and the attempt is
// audited.
func (s *Service) firstExternal(tx *store.Tx, id ExternalIdentity, pol ExternalPolicy, groups []string, now time.Time) (admission, error) {
	if !usernameRE.MatchString(id.Username) {
		return refused(nil, "bad_username", errBadUsername), nil
	}
	existing, _, err := usersTable.GetBy(tx, "username", strings.ToLower(id.Username))
	switch {
	case err == nil:
		if !pol.LinkExisting {
			return refused(existing, "username_taken", errUsernameTaken), nil
		}
		links, err := externalLinksTable.IDsBy(tx, "user", existing.ID)
		if err != nil {
			return admission{}, err
		}
		if len(links) > 0 {
			// Linked to another provider or subject already: linking
			// by a name asserted here would hand the account over.
			return refused(existing, "username_taken", errUsernameTaken), nil
		}
		if slices.Contains(existing.Roles, RoleAdmin) {
			// Whoever can call themselves "admin" at the provider would
			// own Berth. The browser hears what any taken name gets.
			return refused(existing, "admin_not_linked", errUsernameTaken), nil
		}
		return admission{user: existing, how: "linked"}, nil
	case !isNotFound(err):
		return admission{}, err
	}
	if !pol.CreateUsers {
		return refused(nil, "not_provisioned", errNotProvisioned), nil
	}
	u := &User{ID: store.NewID("usr"), Username: id.Username, Status: StatusActive, CreatedAt: now, UpdatedAt: now}
	display, email := id.DisplayName, id.Email
	if len(display) > maxDisplayName || !printable(display) {
		display = ""
	}
	if err := applyProfile(u, &display, &email, nil); err != nil {
		// A verified but unusual address is left out rather than
		// refusing the person.
		email = ""
		if err := applyProfile(u, &display, &email, nil); err != nil {
			return admission{}, err
		}
	}
	u.Groups = groups
	if pol.DefaultRole == RoleAdmin {
		// Every person the provider vouches for would be an
		// administrator: the operator's error (configuration refuses it).
		return admission{}, fmt.Errorf("the default role of SSO users must not be %s", RoleAdmin)
	}
	roles, err := checkRoles(tx, []string{pol.DefaultRole})
	if err != nil {
		return admission{}, fmt.Errorf("the default role of SSO users: %w", err)
	}
	u.Roles = roles
	if err := usersTable.Insert(tx, u.ID, u); err != nil {
		return admission{}, err
	}
	if err := s.emitAccount(tx, events.UserCreated, nil, u); err != nil {
		return admission{}, err
	}
	return admission{user: u, how: "created"}, nil
}

// cleanGroups keeps the asserted groups Berth accepts (checkGroups' rules,
// one by one) and names the dropped ones: a provider's "system:masters"
// must not become cluster-admin everywhere.
func cleanGroups(in []string) (kept, dropped []string) {
	kept = []string{}
	for _, g := range in {
		if len(kept) < maxGroups {
			if ok, err := checkGroups([]string{g}); err == nil && len(ok) == 1 {
				if !slices.Contains(kept, g) {
					kept = append(kept, g)
				}
				continue
			}
		}
		dropped = append(dropped, clip(g, maxGroupLen))
	}
	return kept, dropped
}

// unlinkExternal deletes a deleted user's links, so the identity starts
// over at its next sign-in.
func (s *Service) unlinkExternal(userID string) error {
	return deleteByUser(s.db, externalLinksTable, userID)
}
