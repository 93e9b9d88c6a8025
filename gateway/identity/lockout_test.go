package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// The sign-in lockout survives a restart: a new Service on the same store
// (as after `berth serve` restarts) keeps every lock and count, for known
// and unknown names alike, and a success clears what was saved.
func TestLockoutSurvivesRestart(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	set := Settings{Issuer: "berth", Audience: "berth", AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour,
		SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour,
		Lockout: ratelimit.BackoffOptions{Threshold: 3, Base: time.Minute, Max: time.Hour}}
	start := func() *Service {
		t.Helper()
		s, err := NewService(Options{DB: db, Box: box, Now: func() time.Time { return now }, Settings: set})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	s := start()
	const pw = "ann-long-password-1"
	ann, err := s.CreateUser(ctx, grantAdmin, NewUser{Username: "ann", Password: pw}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(s *Service, name, password string) error {
		_, err := s.SignIn(ctx, name, password, MethodPassword, Meta{})
		return err
	}
	locked := func(err error) bool {
		return fault.Is(err, fault.TooMany)
	}
	saved := func() int {
		n := 0
		db.View(func(tx *store.Tx) error {
			return signinFailures.Scan(tx, store.ScanOptions{}, func(id string, r *failureRecord) (bool, error) {
				if strings.Contains(strings.ToLower(id), "ann") || strings.Contains(strings.ToLower(id), "ghost") {
					t.Errorf("a saved record names its account: %q", id)
				}
				n++
				return true, nil
			})
		})
		return n
	}

	// ann: two wrong sign-ins and a wrong password change (3 failures);
	// ghost, who does not exist: three wrong sign-ins in mixed case; bob:
	// one failure then a success.
	for range 2 {
		if err := signIn(s, "ann", "wrong-password-1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	annP := &Principal{UserID: ann.ID, Username: "ann"}
	if err := s.ChangePassword(ctx, annP, "wrong-password-1", "a-new-password-1", Meta{}); err == nil {
		t.Fatal("password changed with a wrong current password")
	}
	for _, name := range []string{"ghost", "Ghost", "GHOST"} {
		signIn(s, name, "wrong-password-1")
	}
	if _, err := s.CreateUser(ctx, grantAdmin, NewUser{Username: "bob", Password: "bob-long-password-1"}, Meta{}); err != nil {
		t.Fatal(err)
	}
	signIn(s, "bob", "wrong-password-1")
	if err := signIn(s, "bob", "bob-long-password-1"); err != nil {
		t.Fatalf("bob's sign-in: %v", err)
	}
	if n := saved(); n != 2 {
		t.Errorf("%d saved failure records, want 2 (ann and ghost; bob's success cleared his)", n)
	}

	now = now.Add(30 * time.Second)
	s = start()
	if err := signIn(s, "ann", pw); !locked(err) {
		t.Errorf("ann after a restart: %v, want locked", err)
	}
	if err := signIn(s, "ghost", "anything-at-all-1"); !locked(err) {
		t.Errorf("an unknown name after a restart: %v, want locked", err)
	}
	if err := s.ConfirmPassword(annP, pw); !locked(err) {
		t.Errorf("confirming ann's password after a restart: %v, want locked", err)
	}
	if err := signIn(s, "bob", "wrong-password-1"); locked(err) {
		t.Error("bob's cleared failures came back")
	}

	// Past the lock, ann signs in; her saved state goes with it, so the
	// next restart finds her clean.
	now = now.Add(time.Minute)
	if err := signIn(s, "ann", pw); err != nil {
		t.Fatalf("ann after the lock: %v", err)
	}
	s = start()
	for range 2 {
		signIn(s, "ann", "wrong-password-1")
	}
	if err := signIn(s, "ann", pw); err != nil {
		t.Errorf("ann's old failures were counted again after her success: %v", err)
	}

	// A saved state older than the lockout's memory is not restored.
	now = now.Add(2 * time.Hour)
	s = start()
	signIn(s, "ghost", "wrong-password-1")
	if err := signIn(s, "ghost", "wrong-password-1"); locked(err) {
		t.Error("ghost's forgotten failures were restored")
	}

	// An admin's password reset clears the saved lock too.
	for range 3 {
		signIn(s, "ann", "wrong-password-1")
	}
	if err := s.ResetPassword(ctx, grantAdmin, ann.ID, "ann-new-password-2", Meta{}); err != nil {
		t.Fatal(err)
	}
	s = start()
	if err := signIn(s, "ann", "ann-new-password-2"); err != nil {
		t.Errorf("after an admin reset and a restart: %v", err)
	}
}

// A lock evicted from memory by a flood of other names is read back from
// the store, and a success clears the store even when memory had
// forgotten the failures.
func TestLockoutSurvivesEviction(t *testing.T) {
	now := time.Now()
	s, _ := newTestService(t, &now, Settings{AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour,
		AccessKeyTokenTTL: time.Hour, Lockout: ratelimit.BackoffOptions{Threshold: 3, Base: time.Minute, Max: time.Hour, MaxKeys: 2}})
	ctx := context.Background()
	const pw = "ann-long-password-1"
	if _, err := s.CreateUser(ctx, grantAdmin, NewUser{Username: "ann", Password: pw}, Meta{}); err != nil {
		t.Fatal(err)
	}
	signIn := func(name, password string) error {
		_, err := s.SignIn(ctx, name, password, MethodPassword, Meta{})
		return err
	}
	flood := func() {
		for i := range 5 {
			signIn(fmt.Sprintf("flood-%d", i), "wrong-password-1")
		}
	}
	for range 3 {
		signIn("ann", "wrong-password-1")
	}
	flood()
	if _, ok := s.lockout.State(s.lockKey("ann")); ok {
		t.Fatal("the flood did not evict ann from memory; the test proves nothing")
	}
	if err := signIn("ann", pw); !fault.Is(err, fault.TooMany) {
		t.Fatalf("ann after her lock was evicted from memory: %v, want locked", err)
	}

	// Two failures, evicted, then a success: the success clears the store,
	// so two more failures do not lock.
	now = now.Add(2 * time.Hour)
	for range 2 {
		signIn("ann", "wrong-password-1")
	}
	flood()
	if err := signIn("ann", pw); err != nil {
		t.Fatalf("ann's sign-in: %v", err)
	}
	flood()
	for range 2 {
		signIn("ann", "wrong-password-1")
	}
	if err := signIn("ann", pw); err != nil {
		t.Errorf("failures from before a success counted again: %v", err)
	}
}
