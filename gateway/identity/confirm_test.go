package identity

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

func TestConfirmPassword(t *testing.T) {
	now := time.Now()
	s, db := newTestService(t, &now, Settings{AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour})
	const pw = "the-right-password-1"
	if _, err := EnsureAdmin(db, pw, io.Discard); err != nil {
		t.Fatal(err)
	}
	var u *User
	var err error
	db.View(func(tx *store.Tx) error { u, _, err = usersTable.GetBy(tx, "username", AdminUsername); return err })
	p := &Principal{UserID: u.ID, Username: "Admin"} // any case: the lockout key is case-folded

	for _, tc := range []struct {
		password string
		kind     fault.Kind
	}{{"", fault.Invalid}, {strings.Repeat("x", MaxPasswordLength+1), fault.Invalid}, {"wrong-password-1", fault.Forbidden}} {
		if err := s.ConfirmPassword(p, tc.password); !fault.Is(err, tc.kind) {
			t.Errorf("password of %d bytes: %v, want kind %d", len(tc.password), err, tc.kind)
		}
	}
	if err := s.ConfirmPassword(p, pw); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := s.ConfirmPassword(&Principal{UserID: "usr_gone", Username: "gone"}, pw); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("deleted account: %v", err)
	}
	if err := s.ConfirmPassword(nil, pw); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("no principal: %v", err)
	}
	// Wrong passwords count towards the sign-in lockout (the right one in
	// between reset it): once locked, even the right password is not
	// checked, here or at sign-in.
	for range 3 {
		s.ConfirmPassword(p, "wrong-password-1")
	}
	if err := s.ConfirmPassword(p, pw); !fault.Is(err, fault.TooMany) {
		t.Errorf("after 3 wrong passwords: %v, want locked", err)
	}
	if _, err := s.SignIn(context.Background(), "admin", pw, MethodPassword, Meta{}); !fault.Is(err, fault.TooMany) {
		t.Errorf("sign-in after 3 wrong confirmations: %v, want locked", err)
	}
	now = now.Add(2 * time.Hour)
	if err := s.ConfirmPassword(p, pw); err != nil {
		t.Errorf("after the lockout: %v", err)
	}
}
