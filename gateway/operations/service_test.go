package operations

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// scripted is a test Executor whose steps each test writes as functions.
// It stands in for the provisioner plugin, which the gateway's lifecycle
// end-to-end test drives for real; here it lets every branch of the state
// machine be reached on purpose.
type scripted struct {
	begin    func(n int, op *Operation) (string, error)
	follow   func(n int, ctx context.Context, op *Operation, progress func(Progress)) error
	complete func(n int, op *Operation) error

	mu                        sync.Mutex
	begins, follows, complets int
	settled                   []Operation
	done                      chan Operation
}

func newScripted() *scripted {
	return &scripted{
		begin:    func(int, *Operation) (string, error) { return "remote-1", nil },
		follow:   func(int, context.Context, *Operation, func(Progress)) error { return nil },
		complete: func(int, *Operation) error { return nil },
		done:     make(chan Operation, 16),
	}
}

func (x *scripted) Begin(_ context.Context, op *Operation) (string, error) {
	x.mu.Lock()
	x.begins++
	n := x.begins
	x.mu.Unlock()
	return x.begin(n, op)
}

func (x *scripted) Follow(ctx context.Context, op *Operation, progress func(Progress)) error {
	x.mu.Lock()
	x.follows++
	n := x.follows
	x.mu.Unlock()
	return x.follow(n, ctx, op, progress)
}

func (x *scripted) Complete(_ context.Context, op *Operation) error {
	x.mu.Lock()
	x.complets++
	n := x.complets
	x.mu.Unlock()
	return x.complete(n, op)
}

func (x *scripted) Settle(_ *store.Tx, op *Operation) error {
	x.mu.Lock()
	x.settled = append(x.settled, *op)
	x.mu.Unlock()
	return nil
}

func (x *scripted) Settled(op *Operation) { x.done <- *op }

func (x *scripted) counts() (begins, follows, completes int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.begins, x.follows, x.complets
}

// wait returns the next operation to finish; the limit only bounds a hang.
func (x *scripted) wait(t *testing.T) Operation {
	t.Helper()
	select {
	case op := <-x.done:
		return op
	case <-time.After(time.Minute):
		t.Fatal("no operation finished")
		return Operation{}
	}
}

func testDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testService(t *testing.T, db *store.DB, x Executor, tune func(*Options)) *Service {
	t.Helper()
	opts := Options{Workers: 2, Timeout: time.Minute, MaxAttempts: 3, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Retention: time.Hour}
	if tune != nil {
		tune(&opts)
	}
	s := NewService(db, opts)
	s.Use(x)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func insert(t *testing.T, db *store.DB, typ Type, cluster string) *Operation {
	t.Helper()
	op, err := New(typ, cluster, "prov", "usr_1", map[string]string{"name": cluster})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *store.Tx) error { return Insert(tx, op) }); err != nil {
		t.Fatal(err)
	}
	return op
}

var errRetry = Retryable(errors.New("provider busy"))

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    Type
		script func(x *scripted)
		tune   func(*Options)
		check  func(t *testing.T, op Operation, x *scripted)
	}{
		{
			name: "succeeds with progress",
			script: func(x *scripted) {
				x.follow = func(_ int, _ context.Context, _ *Operation, p func(Progress)) error {
					p(Progress{Stage: "bootstrap-etcd", Message: "starting etcd", Percent: 40})
					return nil
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if op.Status != Succeeded || op.Percent != 100 || op.AttemptCount != 1 || op.ProvisionerOperation != "remote-1" ||
					op.StartedAt == nil || op.FinishedAt == nil || op.Deadline == nil || op.Error != "" {
					t.Errorf("%+v", op)
				}
			},
		},
		{
			name: "retryable begin errors are retried",
			script: func(x *scripted) {
				x.begin = func(n int, _ *Operation) (string, error) {
					if n < 3 {
						return "", errRetry
					}
					return "remote-3", nil
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if op.Status != Succeeded || op.AttemptCount != 3 || op.ProvisionerOperation != "remote-3" {
					t.Errorf("%+v", op)
				}
			},
		},
		{
			name:   "gives up after max attempts",
			script: func(x *scripted) { x.begin = func(int, *Operation) (string, error) { return "", errRetry } },
			check: func(t *testing.T, op Operation, x *scripted) {
				if op.Status != Failed || op.AttemptCount != 3 || !strings.Contains(op.Error, "gave up after 3 attempts: provider busy") {
					t.Errorf("%+v", op)
				}
			},
		},
		{
			name: "a permanent begin error fails at once",
			script: func(x *scripted) {
				x.begin = func(int, *Operation) (string, error) { return "", errors.New("invalid spec: no such region") }
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if op.Status != Failed || op.AttemptCount != 1 || op.Error != "invalid spec: no such region" {
					t.Errorf("%+v", op)
				}
			},
		},
		{
			name: "the provisioner's failure keeps its stage",
			script: func(x *scripted) {
				x.follow = func(_ int, _ context.Context, _ *Operation, p func(Progress)) error {
					p(Progress{Stage: "wait-apiserver", Percent: 70})
					return errors.New("kube-apiserver did not become ready")
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if op.Status != Failed || op.Stage != "wait-apiserver" || op.Error != "kube-apiserver did not become ready" || op.Percent == 100 {
					t.Errorf("%+v", op)
				}
				if _, _, c := x.counts(); c != 0 {
					t.Errorf("Complete ran %d times after a failure", c)
				}
			},
		},
		{
			name: "a lost remote operation is begun again",
			script: func(x *scripted) {
				x.follow = func(n int, _ context.Context, _ *Operation, _ func(Progress)) error {
					if n == 1 {
						return ErrRemoteLost
					}
					return nil
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if b, f, _ := x.counts(); op.Status != Succeeded || op.AttemptCount != 2 || b != 2 || f != 2 {
					t.Errorf("%+v; begins %d follows %d", op, b, f)
				}
			},
		},
		{
			name: "a broken watch is watched again without a new attempt",
			script: func(x *scripted) {
				x.follow = func(n int, _ context.Context, _ *Operation, _ func(Progress)) error {
					if n < 3 {
						return Retryable(errors.New("plugin restarting"))
					}
					return nil
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if b, f, _ := x.counts(); op.Status != Succeeded || op.AttemptCount != 1 || b != 1 || f != 3 {
					t.Errorf("%+v; begins %d follows %d", op, b, f)
				}
			},
		},
		{
			name: "nothing to do skips to complete",
			typ:  Delete,
			script: func(x *scripted) {
				x.begin = func(int, *Operation) (string, error) { return "", ErrNothingToDo }
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if b, f, c := x.counts(); op.Status != Succeeded || b != 1 || f != 0 || c != 1 {
					t.Errorf("%+v; begins %d follows %d completes %d", op, b, f, c)
				}
			},
		},
		{
			name: "complete is retried",
			script: func(x *scripted) {
				x.complete = func(n int, _ *Operation) error {
					if n == 1 {
						return Retryable(errors.New("kubeconfig not ready"))
					}
					return nil
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if _, _, c := x.counts(); op.Status != Succeeded || c != 2 {
					t.Errorf("%+v; completes %d", op, c)
				}
			},
		},
		{
			name: "the deadline fails the operation",
			tune: func(o *Options) { o.Timeout = 100 * time.Millisecond },
			script: func(x *scripted) {
				x.follow = func(_ int, ctx context.Context, _ *Operation, p func(Progress)) error {
					p(Progress{Stage: "bootstrap-etcd"})
					<-ctx.Done()
					return ctx.Err()
				}
			},
			check: func(t *testing.T, op Operation, x *scripted) {
				if op.Status != Failed || !strings.Contains(op.Error, `timed out after operation_timeout 100ms at stage "bootstrap-etcd"`) {
					t.Errorf("%+v", op)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := testDB(t)
			x := newScripted()
			if tc.script != nil {
				tc.script(x)
			}
			typ := tc.typ
			if typ == "" {
				typ = Create
			}
			s := testService(t, db, x, tc.tune)
			op := insert(t, db, typ, "c1")
			s.Kick()
			got := x.wait(t)
			if got.ID != op.ID {
				t.Fatalf("finished %s, want %s", got.ID, op.ID)
			}
			stored, err := s.Get(op.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != got.Status || len(x.settled) != 1 || x.settled[0].Status != got.Status {
				t.Fatalf("stored %s, settled %+v, reported %s", stored.Status, x.settled, got.Status)
			}
			tc.check(t, *stored, x)
		})
	}
}

func TestCancel(t *testing.T) {
	db := testDB(t)
	x := newScripted()
	release := make(chan struct{})
	x.follow = func(_ int, ctx context.Context, op *Operation, _ func(Progress)) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	accepted := make(chan string, 4)
	x.begin = func(n int, op *Operation) (string, error) {
		accepted <- op.ID
		return "remote", nil
	}
	s := testService(t, db, x, func(o *Options) { o.Workers = 1 })

	running := insert(t, db, Create, "a")
	s.Kick()
	<-accepted
	// One worker: the second waits, and cancelling it ends it at once.
	pending := insert(t, db, Create, "b")
	s.Kick()
	out, err := s.Cancel(pending.ID, "usr_2")
	if err != nil || out.Status != Cancelled || out.FinishedAt == nil {
		t.Fatalf("cancel pending: %+v, %v", out, err)
	}
	if got := x.wait(t); got.ID != pending.ID || got.Status != Cancelled {
		t.Fatalf("settled %+v", got)
	}
	if _, err := s.Cancel(pending.ID, "usr_2"); !errors.Is(err, ErrFinished) {
		t.Errorf("cancel twice: %v", err)
	}
	// A running create is cancelled while the provisioner works on it.
	out, err = s.Cancel(running.ID, "usr_2")
	if err != nil || out.Status != Running || !out.CancelRequested {
		t.Fatalf("cancel running: %+v, %v", out, err)
	}
	if got := x.wait(t); got.ID != running.ID || got.Status != Cancelled || got.CancelRequested {
		t.Fatalf("cancelled running create: %+v", got)
	}

	// An update the provisioner has started cannot be cancelled.
	upd := insert(t, db, Update, "a")
	s.Kick()
	<-accepted
	waitStored(t, s, upd.ID, func(op *Operation) bool { return op.ProvisionerOperation != "" })
	if _, err := s.Cancel(upd.ID, "usr_2"); !errors.Is(err, ErrNotCancellable) {
		t.Errorf("cancel a started update: %v", err)
	}
	close(release)
	if got := x.wait(t); got.ID != upd.ID || got.Status != Succeeded {
		t.Fatalf("update after a refused cancel: %+v", got)
	}
	if _, err := s.Cancel("op_missing", "usr_2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel unknown: %v", err)
	}
}

// A cancel that arrives while an update waits to retry its first step ends
// it: the provisioner never started it.
func TestCancelDuringRetryWait(t *testing.T) {
	db := testDB(t)
	x := newScripted()
	x.begin = func(int, *Operation) (string, error) { return "", errRetry }
	s := testService(t, db, x, func(o *Options) { o.RetryMin, o.RetryMax, o.MaxAttempts = time.Hour, time.Hour, 10 })
	op := insert(t, db, Update, "a")
	s.Kick()
	waitStored(t, s, op.ID, func(op *Operation) bool { return op.Stage == "waiting" })
	if _, err := s.Cancel(op.ID, "usr_2"); err != nil {
		t.Fatal(err)
	}
	if got := x.wait(t); got.Status != Cancelled || got.AttemptCount != 1 {
		t.Fatalf("%+v", got)
	}
}

// Stopping the service leaves running work running in the store; the next
// service resumes it without beginning it again.
func TestResumeAfterRestart(t *testing.T) {
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
	first := NewService(db, Options{Workers: 1, Timeout: time.Minute, MaxAttempts: 3, RetryMin: time.Millisecond, RetryMax: time.Millisecond, Retention: time.Hour})
	first.Use(x)
	first.Start()
	op := insert(t, db, Create, "a")
	first.Kick()
	waitStored(t, first, op.ID, func(op *Operation) bool { return op.ProvisionerOperation != "" })
	first.Stop()
	stored, _ := first.Get(op.ID)
	if stored.Status != Running || len(x.settled) != 0 {
		t.Fatalf("after stop: %+v, settled %v", stored, x.settled)
	}

	close(release)
	testService(t, db, x, nil)
	got := x.wait(t)
	if b, _, _ := x.counts(); got.Status != Succeeded || b != 1 || got.AttemptCount != 1 {
		t.Fatalf("resumed: %+v, begins %d", got, b)
	}
}

// An operation whose deadline passed while no gateway ran fails with that
// reason instead of running on.
func TestDeadlinePassedWhileDown(t *testing.T) {
	db := testDB(t)
	op := insert(t, db, Create, "a")
	past := time.Now().Add(-time.Minute)
	err := db.Update(func(tx *store.Tx) error {
		o, err := Get(tx, op.ID)
		if err != nil {
			return err
		}
		o.Status, o.StartedAt, o.Deadline, o.ProvisionerOperation = Running, &past, &past, "remote"
		return table.Put(tx, o.ID, o)
	})
	if err != nil {
		t.Fatal(err)
	}
	x := newScripted()
	testService(t, db, x, nil)
	got := x.wait(t)
	if b, f, _ := x.counts(); got.Status != Failed || !strings.Contains(got.Error, "while the gateway was down") || b+f != 0 {
		t.Fatalf("%+v; begins %d follows %d", got, b, f)
	}
}

func TestOneActiveOperationPerCluster(t *testing.T) {
	db := testDB(t)
	first := insert(t, db, Create, "a")
	op, _ := New(Delete, "a", "prov", "usr_1", nil)
	err := db.Update(func(tx *store.Tx) error { return Insert(tx, op) })
	var busy *BusyError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &busy) || busy.Operation.ID != first.ID || !strings.Contains(err.Error(), first.ID) {
		t.Fatalf("second operation on a busy cluster: %v", err)
	}
	// Another cluster is not blocked.
	other, _ := New(Create, "b", "prov", "usr_1", nil)
	if err := db.Update(func(tx *store.Tx) error { return Insert(tx, other) }); err != nil {
		t.Fatal(err)
	}
}

func TestList(t *testing.T) {
	db := testDB(t)
	s := NewService(db, Options{})
	a := insert(t, db, Create, "a")
	insert(t, db, Create, "b")
	insert(t, db, Update, "c")
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{}, 3},
		{Filter{Type: Create}, 2},
		{Filter{Cluster: "a"}, 1},
		{Filter{Status: Pending, Type: Update}, 1},
		{Filter{Status: Running}, 0},
		{Filter{Visible: func(c string) bool { return c != "b" }}, 2},
	} {
		items, total, err := s.List(tc.f, 1, 10)
		if err != nil || total != tc.want || len(items) != tc.want {
			t.Errorf("%+v: %d items, total %d, %v; want %d", tc.f, len(items), total, err, tc.want)
		}
	}
	// Newest first.
	items, _, _ := s.List(Filter{}, 1, 10)
	if items[2].ID != a.ID {
		t.Errorf("order: %s %s %s", items[0].Cluster, items[1].Cluster, items[2].Cluster)
	}
}

func TestBackoff(t *testing.T) {
	s := NewService(nil, Options{RetryMin: time.Second, RetryMax: 10 * time.Second})
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		for range 20 {
			if d := s.backoff(n); d < want*8/10 || d > want*12/10 {
				t.Errorf("backoff(%d) = %s, want %s ±20%%", n, d, want)
			}
		}
	}
}

func waitStored(t *testing.T, s *Service, id string, cond func(*Operation) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		op, err := s.Get(id)
		if err == nil && cond(op) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s never reached the awaited state: %+v %v", id, op, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
