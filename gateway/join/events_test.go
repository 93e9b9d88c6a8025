package join

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tokenService is a Service on an in-memory store with no clusters:
// redeeming and sweeping read only the store.
func tokenService(t *testing.T, c *clock) (*Service, *store.DB) {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewService(db, nil, nil, []byte("a test key of thirty-two bytes!!"), c.Now), db
}

func putTokens(t *testing.T, db *store.DB, ts ...*Token) {
	t.Helper()
	err := db.Update(func(tx *store.Tx) error {
		for _, tok := range ts {
			if err := tokens.Put(tx, tok.ID, tok); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Each use of a token is reported with the use; a refused one is not.
func TestRedeemEmitsUsed(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	s, db := tokenService(t, c)
	const secret = "0123456789abcdef"
	putTokens(t, db, &Token{ID: "abc123", Cluster: "edge", Digest: s.digest(secret), ExpiresAt: c.Now().Add(time.Hour), MaxUses: 1})
	for _, st := range []struct {
		name, value string
		used        bool
	}{
		{"wrong secret", "abc123.0123456789abcdee", false},
		{"used", "abc123." + secret, true},
		{"used up", "abc123." + secret, false},
	} {
		_, _, err := s.Redeem(context.Background(), st.value, "203.0.113.7")
		if st.used != (err == nil) {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := eventstest.Take(t, db)
		if !st.used {
			if len(got) != 0 {
				t.Fatalf("%s: want no event, got %+v", st.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Type != events.JoinTokenUsed || got[0].Cluster != "edge" || got[0].Data["token"] != "abc123" ||
			got[0].Data["node"] != "203.0.113.7" || got[0].Actor != events.SystemActor || !got[0].Time.Equal(c.Now()) {
			t.Fatalf("%s: %+v", st.name, got)
		}
	}
}

// The sweep reports each token that expired unused, once.
func TestSweepExpired(t *testing.T) {
	c := &clock{t: time.Now().UTC()}
	s, db := tokenService(t, c)
	now := c.Now()
	putTokens(t, db,
		&Token{ID: "unused", Cluster: "edge", ExpiresAt: now.Add(-time.Minute)},
		&Token{ID: "usedup", Cluster: "edge", ExpiresAt: now.Add(-time.Minute), Uses: 1},
		&Token{ID: "revokd", Cluster: "edge", ExpiresAt: now.Add(-time.Minute), Revoked: true},
		&Token{ID: "active", Cluster: "edge", ExpiresAt: now.Add(time.Hour)},
		&Token{ID: "ancient", Cluster: "edge", ExpiresAt: now.Add(-ExpiryReportWindow - time.Minute)},
	)
	expect := func(step string, ids ...string) {
		t.Helper()
		n, err := s.SweepExpired(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		got := eventstest.Take(t, db)
		if n != len(ids) || len(got) != len(ids) {
			t.Fatalf("%s: reported %d, events %+v, want %q", step, n, got, ids)
		}
		for i, e := range got {
			if e.Type != events.JoinTokenExpired || e.Data["token"] != ids[i] || e.Cluster != "edge" || e.Summary == "" {
				t.Errorf("%s: event %+v, want token %s", step, e, ids[i])
			}
		}
	}
	expect("first sweep", "unused")
	expect("second sweep")
	c.Advance(2 * time.Hour)
	expect("after the active one expired", "active")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	putTokens(t, db, &Token{ID: "later", Cluster: "edge", ExpiresAt: c.Now().Add(-time.Second)})
	if _, err := s.SweepExpired(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled sweep: %v", err)
	}
	if got := eventstest.Take(t, db); len(got) != 0 {
		t.Fatalf("a cancelled sweep reported %+v", got)
	}
}
