package identity

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

var sysActor = &Principal{UserID: "system", Username: "system", Permissions: []string{PermAll}}

func corpID(sub, username string) ExternalIdentity {
	return ExternalIdentity{Provider: "corp", Issuer: "https://corp.example", Subject: sub, Username: username}
}

func userCount(t *testing.T, db *store.DB) int {
	t.Helper()
	n := 0
	err := db.View(func(tx *store.Tx) error {
		return usersTable.Scan(tx, store.ScanOptions{}, func(string, *User) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignInExternalCreatesAndReturns(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newTestService(t, &now, eventSettings)
	ctx := context.Background()
	pol := ExternalPolicy{CreateUsers: true, DefaultRole: RoleUser}
	id := corpID("sub-1", "alice")
	id.Email, id.DisplayName = "alice@corp.example", "Alice"
	id.Groups, id.GroupsAsserted = []string{"devs", "system:masters", "devs", "ops"}, true
	u, err := s.SignInExternal(ctx, id, pol, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.PasswordHash != "" || !slices.Equal(u.Roles, []string{RoleUser}) ||
		!slices.Equal(u.Groups, []string{"devs", "ops"}) || u.Email != "alice@corp.example" {
		t.Fatalf("created %+v", u)
	}
	// No password: a password sign-in as the new user fails like any wrong one.
	if _, err := s.SignIn(ctx, "alice", "", MethodPassword, Meta{}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("empty password: %v", err)
	}
	if _, err := s.SignIn(ctx, "alice", "anything-at-all", MethodPassword, Meta{}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("password sign-in of an SSO user: %v", err)
	}

	// The same subject later: the same user, whatever username it now
	// asserts, and its groups follow the provider's.
	id.Username, id.Groups = "alice-renamed", []string{"ops"}
	again, err := s.SignInExternal(ctx, id, pol, Meta{})
	if err != nil || again.ID != u.ID || !slices.Equal(again.Groups, []string{"ops"}) {
		t.Fatalf("second sign-in: %+v, %v", again, err)
	}
	stored, _ := s.GetUser(u.ID)
	if !slices.Equal(stored.Groups, []string{"ops"}) {
		t.Errorf("groups not stored: %v", stored.Groups)
	}
	// Groups not asserted (no groups claim configured) are left alone.
	id.GroupsAsserted, id.Groups = false, nil
	if again, err = s.SignInExternal(ctx, id, pol, Meta{}); err != nil || !slices.Equal(again.Groups, []string{"ops"}) {
		t.Errorf("unasserted groups changed them: %+v, %v", again, err)
	}
	hist, _, err := s.LoginHistoryPage(sysActor, u.ID, 1, 10)
	if err != nil || len(hist) < 3 || hist[0].Method != MethodSSO {
		t.Errorf("login history: %+v, %v", hist, err)
	}
}

// The account takeovers a provider could attempt by asserting a username,
// and the policies that refuse or allow them.
func TestSignInExternalTakeovers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	type step struct {
		id      ExternalIdentity
		pol     ExternalPolicy
		wantErr error // nil: admitted
		wantAs  string
	}
	create := ExternalPolicy{CreateUsers: true, DefaultRole: RoleUser}
	link := ExternalPolicy{LinkExisting: true, DefaultRole: RoleUser}
	other := ExternalIdentity{Provider: "other", Issuer: "https://other.example", Subject: "sub-1", Username: "alice"}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"password user is not linked without link_existing", []step{
			{corpID("s", "bob"), create, errUsernameTaken, ""},
		}},
		{"link_existing links a password user once", []step{
			{corpID("s", "bob"), link, nil, "bob"},
			{corpID("s", "bob"), ExternalPolicy{}, nil, "bob"}, // the link, not the policy, admits it now
		}},
		{"a second provider asserting a linked user's name is refused", []step{
			{corpID("s", "alice"), create, nil, "alice"},
			{other, link, errUsernameTaken, ""},
			{other, create, errUsernameTaken, ""},
		}},
		{"a second subject of the same issuer cannot take a linked user", []step{
			{corpID("s1", "bob"), link, nil, "bob"},
			{corpID("s2", "bob"), link, errUsernameTaken, ""},
		}},
		{"an email equal to a user's is not a link", []step{
			{ExternalIdentity{Provider: "corp", Issuer: "https://corp.example", Subject: "m", Username: "mallory", Email: "bob@example.com"}, create, nil, "mallory"},
		}},
		{"neither creating nor linking", []step{
			{corpID("s", "carol"), ExternalPolicy{}, errNotProvisioned, ""},
		}},
		{"a username Berth refuses", []step{
			{corpID("s", "../admin"), create, errBadUsername, ""},
			{corpID("s", ""), create, errBadUsername, ""},
		}},
		{"the admin cannot be taken by name", []step{
			{corpID("s", "ADMIN"), create, errUsernameTaken, ""},
		}},
		// link_existing trusts the provider's username claim; it never
		// hands over an administrator by it (any person who can call
		// themselves "admin" there would own Berth).
		{"link_existing does not link an administrator", []step{
			{corpID("s", "admin"), link, errUsernameTaken, ""},
			{corpID("s", "Admin"), ExternalPolicy{LinkExisting: true, CreateUsers: true, DefaultRole: RoleUser}, errUsernameTaken, ""},
		}},
		{"lookalike names are no username", []step{
			{corpID("s", "adm\u0131n"), create, errBadUsername, ""},
			{corpID("s", "\uff41dmin"), create, errBadUsername, ""},
			{corpID("s", "admin\u200b"), create, errBadUsername, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, db := newTestService(t, &now, eventSettings)
			if _, err := s.CreateUser(ctx, sysActor, NewUser{Username: "bob", Password: "bob-password-123", Email: "bob@example.com"}, Meta{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateUser(ctx, sysActor, NewUser{Username: "admin", Password: "admin-password-123", Roles: []string{RoleAdmin}}, Meta{}); err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				before := userCount(t, db)
				u, err := s.SignInExternal(ctx, st.id, st.pol, Meta{})
				if st.wantErr != nil {
					if !errors.Is(err, st.wantErr) || !fault.Is(err, fault.Forbidden) || u != nil {
						t.Fatalf("step %d: got %+v, %v; want %v", i, u, err, st.wantErr)
					}
					if userCount(t, db) != before {
						t.Errorf("step %d: a refusal created a user", i)
					}
					continue
				}
				if err != nil || u.Username != st.wantAs {
					t.Fatalf("step %d: got %+v, %v; want %s", i, u, err, st.wantAs)
				}
			}
		})
	}
}

func TestSignInExternalDisabledDeletedAndRole(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newTestService(t, &now, eventSettings)
	ctx := context.Background()
	pol := ExternalPolicy{CreateUsers: true, DefaultRole: RoleUser}
	u, err := s.SignInExternal(ctx, corpID("s", "dave"), pol, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	disabled := StatusDisabled
	if _, err := s.UpdateUser(ctx, sysActor, u.ID, UserChanges{Status: &disabled}, Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignInExternal(ctx, corpID("s", "dave"), pol, Meta{}); !errors.Is(err, errExternalOff) {
		t.Fatalf("disabled user signed in: %v", err)
	}
	// Deleted: the link goes with the user, and the identity starts over.
	if err := s.DeleteUser(ctx, sysActor, u.ID, Meta{}); err != nil {
		t.Fatal(err)
	}
	again, err := s.SignInExternal(ctx, corpID("s", "dave"), pol, Meta{})
	if err != nil || again.ID == u.ID {
		t.Fatalf("after deletion: %+v, %v", again, err)
	}
	// A default role that does not exist is the operator's error, not a
	// user created with no role.
	if _, err := s.SignInExternal(ctx, corpID("s2", "erin"), ExternalPolicy{CreateUsers: true, DefaultRole: "ghost"}, Meta{}); err == nil {
		t.Fatal("created a user with an unknown role")
	}
	if _, err := s.UserByName("erin"); !fault.Is(err, fault.NotFound) {
		t.Errorf("erin: %v", err)
	}
	// Nor are the users it creates administrators, whatever the policy
	// says (configuration refuses it too).
	if _, err := s.SignInExternal(ctx, corpID("s3", "frank"), ExternalPolicy{CreateUsers: true, DefaultRole: RoleAdmin}, Meta{}); err == nil {
		t.Fatal("created an administrator")
	}
	if _, err := s.UserByName("frank"); !fault.Is(err, fault.NotFound) {
		t.Errorf("frank: %v", err)
	}
}

// Groups a provider asserts are groups, nothing more: a role's name as a
// group grants no role, and Kubernetes' reserved groups are dropped however
// they are dressed, at creation and at every later sign-in.
func TestSignInExternalGroupsGrantNoRole(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newTestService(t, &now, eventSettings)
	ctx := context.Background()
	pol := ExternalPolicy{CreateUsers: true, DefaultRole: RoleUser}
	id := corpID("sub-g", "gina")
	id.GroupsAsserted = true
	id.Groups = []string{RoleAdmin, "system:masters", "system:nodes", " system:masters", "system:masters\n", "*", "devs"}
	for i := 0; i < 2; i++ {
		u, err := s.SignInExternal(ctx, id, pol, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(u.Roles, []string{RoleUser}) || !slices.Equal(u.Groups, []string{RoleAdmin, "*", "devs"}) {
			t.Fatalf("sign-in %d: roles %v, groups %q", i, u.Roles, u.Groups)
		}
		p, err := s.UserPrincipal(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(p.Permissions, PermAll) {
			t.Fatalf("sign-in %d: a group named %s made an administrator: %v", i, RoleAdmin, p.Permissions)
		}
	}
}
