package identity

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// newTestService is a Service on an in-memory Badger whose clock reads
// *now. Issuer and audience are "berth", and the lockout locks after 3
// failures for a minute unless set says otherwise.
func newTestService(t *testing.T, now *time.Time, set Settings) (*Service, *store.DB) {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	set.Issuer, set.Audience = "berth", "berth"
	if set.Lockout.Threshold == 0 {
		set.Lockout = ratelimit.BackoffOptions{Threshold: 3, Base: time.Minute, Max: time.Hour}
	}
	s, err := NewService(Options{DB: db, Box: box, Now: func() time.Time { return *now }, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}
