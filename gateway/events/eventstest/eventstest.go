// Package eventstest reads the event outbox for the tests of the services
// that emit into it.
package eventstest

import (
	"testing"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// Take returns the events in db's outbox, oldest first, and empties it, so
// that the next Take sees only what was emitted since.
func Take(t testing.TB, db *store.DB) []events.Event {
	t.Helper()
	var out []events.Event
	err := db.Update(func(tx *store.Tx) error {
		var err error
		if out, err = events.Pending(tx, 1000); err != nil {
			return err
		}
		for _, e := range out {
			if err := events.Done(tx, e.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
