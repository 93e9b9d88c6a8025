package operations

import (
	"errors"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

func pendingEvents(t *testing.T, db *store.DB) []events.Event {
	t.Helper()
	var out []events.Event
	if err := db.View(func(tx *store.Tx) (err error) { out, err = events.Pending(tx, 100); return err }); err != nil {
		t.Fatal(err)
	}
	return out
}

// failingSettle is an Executor whose Settle fails, so the transaction that
// would record an operation's end rolls back.
type failingSettle struct{ *scripted }

func (failingSettle) Settle(*store.Tx, *Operation) error { return errors.New("settle failed") }

// An operation's end is reported once, in the transaction that records
// it, to the user who asked for the work.
func TestEndEmitsOneEvent(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := func(o *Options) { o.Clock = func() time.Time { return at } }
	for _, tc := range []struct {
		name      string
		script    func(x *scripted)
		typ       string
		actor     string
		errorData string
	}{
		{"succeeded", func(*scripted) {}, events.OperationSucceeded, "usr_1", ""},
		{"failed", func(x *scripted) {
			x.begin = func(int, *Operation) (string, error) { return "", errors.New("no such flavour") }
		}, events.OperationFailed, "usr_1", "no such flavour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testDB(t)
			x := newScripted()
			tc.script(x)
			s := testService(t, db, x, clock)
			op := insert(t, db, Create, "edge-1")
			s.Kick()
			x.wait(t)
			got := pendingEvents(t, db)
			if len(got) != 1 {
				t.Fatalf("want one event, got %+v", got)
			}
			e := got[0]
			if e.Type != tc.typ || e.Actor != tc.actor || e.Recipient != "usr_1" || e.Cluster != "edge-1" ||
				!e.Time.Equal(at) || e.Data["operation"] != op.ID || e.Data["kind"] != "create" ||
				e.Data["error"] != tc.errorData || e.Summary == "" {
				t.Errorf("event %+v", e)
			}
			// An end already recorded is not recorded, or reported, again.
			s.finish(op.ID, Failed, "late")
			if n := len(pendingEvents(t, db)); n != 1 {
				t.Errorf("a second end emitted: %d events", n)
			}
		})
	}
}

// A cancel names who cancelled as the actor; the requester still receives
// the event. A cancel whose transaction fails reports nothing.
func TestCancelEmits(t *testing.T) {
	db := testDB(t)
	broken := NewService(db, Options{})
	broken.Use(failingSettle{newScripted()})
	op := insert(t, db, Delete, "edge-1")
	if _, err := broken.Cancel(op.ID, "usr_2"); err == nil {
		t.Fatal("cancel succeeded although Settle failed")
	}
	if got := pendingEvents(t, db); len(got) != 0 {
		t.Fatalf("a rolled-back cancel emitted %+v", got)
	}

	s := NewService(db, Options{})
	s.Use(newScripted())
	if _, err := s.Cancel(op.ID, "usr_2"); err != nil {
		t.Fatal(err)
	}
	got := pendingEvents(t, db)
	if len(got) != 1 {
		t.Fatalf("want one event, got %+v", got)
	}
	if e := got[0]; e.Type != events.OperationCancelled || e.Actor != "usr_2" || e.Recipient != "usr_1" ||
		e.Cluster != "edge-1" || e.Data["kind"] != "delete" || e.Data["operation"] != op.ID {
		t.Errorf("event %+v", e)
	}
}
