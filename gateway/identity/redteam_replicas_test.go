package identity

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// redteamReplica is one identity service on a shared etcd store, following
// the other replicas' writes as berth serve does.
func redteamReplica(t *testing.T, endpoints []string, prefix string, key []byte) *Service {
	t.Helper()
	db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: endpoints, Prefix: prefix}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); db.FollowChanges(ctx) }()
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	set := Settings{Issuer: "berth", Audience: "berth", AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: time.Hour,
		SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour, MaxAccessKeys: 5, MinPasswordLength: 8,
		Lockout: ratelimit.BackoffOptions{Threshold: 3, Base: time.Minute, Max: time.Hour}}
	s, err := NewService(Options{DB: db, Box: box, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-followed; db.Close() })
	return s
}

// Found by a red-team pass (fixed; the test guards it): the lockout (threshold 3) should give an attacker at most 3
// password checks of one name per lock window, however the attempts are
// spread. Two replicas, one attacker goroutine per replica, each sending its
// next attempt as soon as the previous one is answered (no concurrency
// within a replica, so the single-process check-then-count window plays no
// part): every checked guess the store's last-writer-wins state and the
// foreign-commit Reset lose is a guess beyond the threshold.
func TestLockoutHoldsAcrossReplicas(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	key := make([]byte, 32)
	a := redteamReplica(t, c.Endpoints(), "/rt-lock/", key)
	b := redteamReplica(t, c.Endpoints(), "/rt-lock/", key)
	var checked, locked atomic.Int64
	var wg sync.WaitGroup
	for _, s := range []*Service{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range redteamAttempts {
				_, err := s.SignIn(context.Background(), "mallory", "guess", "password", Meta{})
				switch {
				case errors.Is(err, ErrInvalidCredentials):
					checked.Add(1)
				case err != nil:
					locked.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("guesses checked: %d, refused as locked: %d (threshold 3)", checked.Load(), locked.Load())
	if checked.Load() > 3 {
		t.Errorf("%d password guesses were checked across two replicas, want at most the threshold of 3", checked.Load())
	}
}

// RED TEAM, for comparison: the same on ONE replica with 8 concurrent
// attempts. lockedFor is checked before the (slow) argon2 verification and
// the failure counted after it, so concurrent attempts all pass the check.
// With replicas the attacker multiplies this by the replica count.
func TestLockoutHoldsUnderConcurrentGuesses(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	key := make([]byte, 32)
	a := redteamReplica(t, c.Endpoints(), "/rt-lock1/", key)
	var checked atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.SignIn(context.Background(), "mallory", "guess", "password", Meta{}); errors.Is(err, ErrInvalidCredentials) {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("guesses checked: %d of 8 concurrent (threshold 3)", checked.Load())
	if checked.Load() > 3 {
		t.Errorf("%d concurrent password guesses were checked on one replica, want at most the threshold of 3", checked.Load())
	}
}

// redteamAttempts is how many attempts each replica's attacker makes.
var redteamAttempts = 12

// Found by a red-team pass (fixed; the test guards it): disabling a user revokes its sessions in the same transaction
// (revokeWhere). On etcd a transaction carries at most max_txn_ops (128)
// writes, and each revoked session is 2-3 (record + index keys). So a user
// holding ~62 live sessions — an attacker with a stolen password signs in
// that many times — can no longer be DISABLED (nor deleted, nor have its
// password reset: same revokeWhere) on etcd: the admin's request fails and
// every session stays live. Fix: revoke in batches below max_txn_ops
// (after the status change commits), or make the user's status alone end
// its sessions (the grant check already reads the user).
func TestDisableUserWithManySessionsOnEtcd(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	s := redteamReplica(t, c.Endpoints(), "/rt-sess/", make([]byte, 32))
	admin := &Principal{UserID: "usr_admin", Username: "admin", Permissions: []string{PermAll}}
	u, err := s.CreateUser(context.Background(), admin, NewUser{Username: "mallory", Password: "correct horse battery"}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := s.IssueTokens(context.Background(), u, "password", "", Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	disabled := StatusDisabled
	if _, err := s.UpdateUser(context.Background(), admin, u.ID, UserChanges{Status: &disabled}, Meta{}); err != nil {
		t.Errorf("an admin cannot disable a user holding 100 sessions on etcd: %v", err)
	}
}
