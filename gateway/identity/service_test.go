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
	// The store runs on the test's clock too, as in the gateway: records
	// with a TTL expire when the test says so.
	db, err := store.Open(store.Options{InMemory: true, Clock: func() time.Time { return *now }})
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
