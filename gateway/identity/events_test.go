package identity

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
)

var eventSettings = Settings{AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour}

// Creating, disabling and resetting the password of an account each
// report once, with the change; a refused change reports nothing.
func TestAccountChangesEmit(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	s, db := newTestService(t, &now, eventSettings)
	ctx := context.Background()
	root, err := s.CreateUser(ctx, grantAdmin, NewUser{Username: "root", Password: "root-long-password-1", Roles: []string{RoleAdmin}}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	eventstest.Take(t, db)
	var ann *User
	disable, enable := StatusDisabled, StatusActive
	steps := []struct {
		name string
		do   func() error
		want string // "" for no event
		user func() *User
	}{
		{"create", func() (err error) {
			ann, err = s.CreateUser(ctx, grantAdmin, NewUser{Username: "ann", Password: "ann-long-password-1"}, Meta{})
			return err
		}, events.UserCreated, func() *User { return ann }},
		{"create a taken name", func() error {
			_, err := s.CreateUser(ctx, grantAdmin, NewUser{Username: "ann", Password: "ann-long-password-1"}, Meta{})
			return expectErr(err)
		}, "", nil},
		{"disable", func() error {
			_, err := s.UpdateUser(ctx, grantAdmin, ann.ID, UserChanges{Status: &disable}, Meta{})
			return err
		}, events.UserDisabled, func() *User { return ann }},
		{"disable again", func() error {
			_, err := s.UpdateUser(ctx, grantAdmin, ann.ID, UserChanges{Status: &disable}, Meta{})
			return err
		}, "", nil},
		{"enable", func() error {
			_, err := s.UpdateUser(ctx, grantAdmin, ann.ID, UserChanges{Status: &enable}, Meta{})
			return err
		}, "", nil},
		{"disable the last admin", func() error {
			_, err := s.UpdateUser(ctx, grantAdmin, root.ID, UserChanges{Status: &disable}, Meta{})
			return expectErr(err)
		}, "", nil},
		{"reset a password", func() error {
			return s.ResetPassword(ctx, grantAdmin, ann.ID, "ann-new-password-2", Meta{})
		}, events.UserPasswordReset, func() *User { return ann }},
		{"reset an unknown user's password", func() error {
			return expectErr(s.ResetPassword(ctx, grantAdmin, "usr_nobody", "ann-new-password-2", Meta{}))
		}, "", nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := eventstest.Take(t, db)
		if st.want == "" {
			if len(got) != 0 {
				t.Fatalf("%s: want no event, got %+v", st.name, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("%s: want one %s, got %+v", st.name, st.want, got)
		}
		e, u := got[0], st.user()
		if e.Type != st.want || e.Actor != grantAdmin.UserID || e.Data["user"] != u.ID || e.Data["username"] != u.Username ||
			!e.Time.Equal(now) || e.Summary == "" {
			t.Errorf("%s: event %+v", st.name, e)
		}
	}
}

// expectErr turns the refusal a step expects into success, and its
// absence into a failure.
func expectErr(err error) error {
	if err == nil {
		return errExpected
	}
	return nil
}

var errExpected = errors.New("the change was not refused")

// A lockout is reported once per lock, by whichever password check
// brought it, and not for each attempt it refuses; a name that is no
// account locks unreported.
func TestLockoutEmitsOncePerLock(t *testing.T) {
	const pw = "the-right-password-1"
	for _, tc := range []struct {
		name string
		fail func(s *Service, u *User) error
	}{
		{"sign-in", func(s *Service, u *User) error {
			_, err := s.SignIn(context.Background(), u.Username, "wrong-password", MethodPassword, Meta{})
			return err
		}},
		{"confirm password", func(s *Service, u *User) error {
			return s.ConfirmPassword(&Principal{UserID: u.ID, Username: u.Username}, "wrong-password")
		}},
		{"change password", func(s *Service, u *User) error {
			return s.ChangePassword(context.Background(), &Principal{UserID: u.ID, Username: u.Username}, "wrong-password", "a-new-long-password-2", Meta{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().UTC().Truncate(time.Second)
			s, db := newTestService(t, &now, eventSettings)
			ann, err := s.CreateUser(context.Background(), grantAdmin, NewUser{Username: "ann", Password: pw}, Meta{})
			if err != nil {
				t.Fatal(err)
			}
			eventstest.Take(t, db)
			count := func(attempts int) []events.Event {
				t.Helper()
				for range attempts {
					if err := tc.fail(s, ann); err == nil {
						t.Fatal("a wrong password was accepted")
					}
				}
				return eventstest.Take(t, db)
			}
			if got := count(2); len(got) != 0 {
				t.Fatalf("under the threshold: %+v", got)
			}
			got := count(1)
			if len(got) != 1 || got[0].Type != events.UserLockedOut || got[0].Data["username"] != "ann" ||
				got[0].Data["until"] != now.Add(time.Minute).Format(time.RFC3339) || got[0].Actor != events.SystemActor {
				t.Fatalf("the locking attempt: %+v", got)
			}
			if got := count(5); len(got) != 0 {
				t.Fatalf("attempts refused while locked: %+v", got)
			}
			// The lock ends; the next failure locks again, for longer.
			now = now.Add(time.Minute)
			got = count(1)
			if len(got) != 1 || got[0].Data["until"] != now.Add(2*time.Minute).Format(time.RFC3339) {
				t.Fatalf("the second lock: %+v", got)
			}
			if tc.name == "sign-in" {
				for range 4 {
					s.SignIn(context.Background(), "ghost", "wrong-password", MethodPassword, Meta{})
				}
				if got := eventstest.Take(t, db); len(got) != 0 {
					t.Fatalf("a name that is no account: %+v", got)
				}
			}
		})
	}
}
