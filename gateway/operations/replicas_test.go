package operations

import (
	"context"
	"testing"
	"time"
)

// Replicas share the store; one of them, the leader, runs operations. Two
// services on one store stand for two replicas here: the store runs every
// service's commit hook on each write, as store.FollowChanges does on etcd
// for writes from other replicas.

// A cancel asked on a replica that does not run the operation reaches the
// replica that does, which ends it.
func TestCancelAskedOnAnotherReplica(t *testing.T) {
	db := testDB(t)
	x := newScripted()
	x.follow = func(_ int, ctx context.Context, _ *Operation, _ func(Progress)) error {
		<-ctx.Done()
		return ctx.Err()
	}
	leader := testService(t, db, x, nil)
	follower := NewService(db, Options{Workers: 1, Timeout: time.Minute, MaxAttempts: 3, Retention: time.Hour})
	follower.Use(x) // every replica has the executor; only the leader runs

	op := insert(t, db, Create, "a")
	leader.Kick()
	waitStored(t, leader, op.ID, func(op *Operation) bool { return op.ProvisionerOperation != "" })
	out, err := follower.Cancel(op.ID, "usr_2")
	if err != nil || !out.CancelRequested {
		t.Fatalf("cancel through the follower: %+v %v", out, err)
	}
	if got := x.wait(t); got.ID != op.ID || got.Status != Cancelled {
		t.Fatalf("the leader ended the operation as %+v, want cancelled", got)
	}
}

// A replica that loses the lead stops; when it leads again it starts
// again and resumes what was running, without beginning it twice.
func TestStartAgainAfterStop(t *testing.T) {
	db := testDB(t)
	x := newScripted()
	release := make(chan struct{})
	x.follow = func(_ int, ctx context.Context, _ *Operation, _ func(Progress)) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s := testService(t, db, x, nil)
	op := insert(t, db, Create, "a")
	s.Kick()
	waitStored(t, s, op.ID, func(op *Operation) bool { return op.ProvisionerOperation != "" })
	s.Stop()
	if stored, _ := s.Get(op.ID); stored.Status != Running {
		t.Fatalf("after losing the lead: %s, want still running", stored.Status)
	}
	close(release)
	s.Start()
	got := x.wait(t)
	if b, _, _ := x.counts(); got.Status != Succeeded || b != 1 {
		t.Fatalf("after leading again: %+v, begins %d", got, b)
	}
}
