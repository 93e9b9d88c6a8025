package operations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// Executor does the work of operations and applies their outcome. The
// Service calls it from its workers; every method may be called again for
// the same operation after a retry or a gateway restart, so each must be
// idempotent (the operation id is the idempotency key).
type Executor interface {
	// Begin hands the operation's work to the provisioner and returns the
	// provisioner's id for it. It should return at once: long work is
	// watched with Follow.
	Begin(ctx context.Context, op *Operation) (remoteID string, err error)
	// Follow waits until the provisioner's work ends, reporting progress
	// on the way. It returns nil when the work succeeded, ErrRemoteLost
	// when the provisioner does not know the operation, an error marked
	// with Retryable when contact was lost, and any other error when the
	// work failed.
	Follow(ctx context.Context, op *Operation, progress func(Progress)) error
	// Complete does what remains after the provisioner succeeded (for a
	// create: fetch the new cluster's connection).
	Complete(ctx context.Context, op *Operation) error
	// Settle applies a finished operation to its cluster, inside the
	// transaction that records the operation's final status.
	Settle(tx *store.Tx, op *Operation) error
	// Settled runs after that transaction commits, for in-memory effects.
	Settled(op *Operation)
}

// Progress is a step of an operation the provisioner reported.
type Progress struct {
	Stage   string
	Message string
	Percent int
}

// retryable marks an error after which the same step may succeed later.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable marks err as temporary: the worker waits and tries the step
// again (up to Options.MaxAttempts for Begin).
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// IsRetryable reports whether err was marked with Retryable.
func IsRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

// Options configure the Service.
type Options struct {
	// Workers is how many operations run at once.
	Workers int
	// Timeout bounds one operation from start to end.
	Timeout time.Duration
	// MaxAttempts bounds how often Begin is tried.
	MaxAttempts int
	// RetryMin and RetryMax bound the doubling delay between tries.
	RetryMin, RetryMax time.Duration
	// Retention is how long finished operations are kept.
	Retention time.Duration
	Logger    *slog.Logger
	// Clock stamps operations (started, deadline, retention); nil means
	// time.Now.
	Clock func() time.Time
}

// Service stores operations and runs them.
type Service struct {
	db   *store.DB
	opts Options
	log  *slog.Logger
	exec Executor

	kick chan struct{}
	stop chan struct{}
	ctx  context.Context // cancelled by Stop: running work pauses, to resume at the next start
	halt context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	running map[string]context.CancelFunc // id → signal that a cancel was requested
}

// NewService returns a Service that runs nothing until Start.
func NewService(db *store.DB, opts Options) *Service {
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.MaxAttempts < 1 {
		opts.MaxAttempts = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, halt := context.WithCancel(context.Background())
	s := &Service{
		db: db, opts: opts, log: opts.Logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}),
		ctx: ctx, halt: halt, running: map[string]context.CancelFunc{},
	}
	if db != nil {
		db.OnCommit(s.onStoreChange)
	}
	return s
}

// onStoreChange is the store's commit hook. An operation written by
// another replica (a new one, a cancel asked there) reaches the replica
// running operations here, through store.FollowChanges: a new one is
// dispatched now rather than at the next idle poll, and a running one
// whose cancel was asked elsewhere is told.
func (s *Service) onStoreChange(changes []store.Change) {
	kick := false
	for _, c := range changes {
		if c.Table != table.Name() && c != store.AllChanged {
			continue
		}
		kick = true
		s.mu.Lock()
		signal := s.running[c.ID]
		s.mu.Unlock()
		if signal != nil {
			// The hook must not wait on the store: read it elsewhere.
			go func() {
				if op, err := s.Get(c.ID); err == nil && op.CancelRequested {
					signal()
				}
			}()
		}
	}
	if kick {
		s.Kick()
	}
}

// Use sets the Executor that operations run with and settle through. Call
// it before Start, on every replica: cancelling a pending operation settles
// it on the replica asked.
func (s *Service) Use(exec Executor) { s.exec = exec }

// Start runs the dispatcher and workers: operations left pending or
// running by an earlier process (or another replica, gone) are picked up
// first. On replicas one runs them, the one that leads; after Stop it may
// Start again when it leads again.
func (s *Service) Start() {
	s.stop = make(chan struct{})
	s.ctx, s.halt = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.loop()
}

// Stop pauses every running operation where it is (the next Start resumes
// it) and waits for the workers to return.
func (s *Service) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.halt()
	s.wg.Wait()
}

// Kick makes the dispatcher look for pending operations now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// loop starts active operations while workers are free, and sweeps old
// finished ones.
func (s *Service) loop() {
	defer s.wg.Done()
	const idle = 5 * time.Second
	sweep := time.Now()
	for {
		s.dispatch()
		if time.Since(sweep) > time.Hour {
			s.sweep()
			sweep = time.Now()
		}
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-time.After(idle):
		}
	}
}

// dispatch starts the oldest active operations that are not running yet.
func (s *Service) dispatch() {
	var ids []string
	err := s.db.View(func(tx *store.Tx) error {
		for _, st := range []Status{Running, Pending} {
			more, err := table.IDsBy(tx, "status", string(st))
			if err != nil {
				return err
			}
			ids = append(ids, more...)
		}
		return nil
	})
	if err != nil {
		s.log.Error("list active operations", "err", err)
		return
	}
	// Ids sort by creation time; running ones from an earlier process
	// come first anyway because they are older than anything pending.
	slices.Sort(ids)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if len(s.running) >= s.opts.Workers {
			return
		}
		if _, ok := s.running[id]; ok {
			continue
		}
		signal, cancel := context.WithCancel(context.Background())
		s.running[id] = cancel
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				s.running[id]() // the latest signal: the worker may have replaced it
				delete(s.running, id)
				s.mu.Unlock()
				cancel()
				s.Kick()
			}()
			s.run(id, signal)
		}()
	}
}

// sweep deletes finished operations older than the retention.
func (s *Service) sweep() {
	cutoff := s.now().Add(-s.opts.Retention)
	var old []string
	_ = s.db.View(func(tx *store.Tx) error {
		return table.Scan(tx, store.ScanOptions{}, func(id string, op *Operation) (bool, error) {
			if op.FinishedAt != nil && op.FinishedAt.Before(cutoff) {
				old = append(old, id)
			}
			return true, nil
		})
	})
	for _, id := range old {
		if err := s.db.Update(func(tx *store.Tx) error { return table.Delete(tx, id) }); err != nil {
			s.log.Warn("delete old operation", "operation", id, "err", err)
		}
	}
}

// update changes the stored operation with fn and returns the result.
// fn always sees the latest stored copy, so a cancel request recorded by
// the API in between is never overwritten.
func (s *Service) update(id string, fn func(op *Operation) error) (*Operation, error) {
	var out *Operation
	err := s.db.Update(func(tx *store.Tx) error {
		op, err := Get(tx, id)
		if err != nil {
			return err
		}
		if err := fn(op); err != nil {
			return err
		}
		op.UpdatedAt = tx.Now().UTC()
		out = op
		return table.Put(tx, id, op)
	})
	return out, err
}

// Get returns one operation.
func (s *Service) Get(id string) (*Operation, error) {
	var op *Operation
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		op, err = Get(tx, id)
		return err
	})
	return op, err
}

// Filter narrows List. Empty fields match everything.
type Filter struct {
	Status  Status
	Type    Type
	Cluster string
	// Visible, when set, hides operations on clusters it refuses.
	Visible func(cluster string) bool
}

// List returns one page of operations, newest first, and how many match.
func (s *Service) List(f Filter, page, pageSize int) ([]Operation, int, error) {
	keep := func(op *Operation) bool {
		return (f.Status == "" || op.Status == f.Status) && (f.Type == "" || op.Type == f.Type) &&
			(f.Cluster == "" || op.Cluster == f.Cluster) && (f.Visible == nil || f.Visible(op.Cluster))
	}
	var (
		items []Operation
		total int
	)
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		items, total, err = table.Page(tx, page, pageSize, true, keep)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list operations: %w", err)
	}
	return items, total, nil
}

// Cancel stops an operation. A pending one ends at once, cancelled. A
// running one is marked and its worker ends it at the next safe point:
// before the provisioner starts the work, or, for a create, while it runs
// (the executor then cleans up what was made). Changes and deletions the
// provisioner has started are not cancellable: ErrNotCancellable. by is
// the user asking, named by the operation.cancelled event.
func (s *Service) Cancel(id, by string) (*Operation, error) {
	var (
		out     *Operation
		settled bool
	)
	err := s.db.Update(func(tx *store.Tx) error {
		op, err := Get(tx, id)
		if err != nil {
			return err
		}
		now := tx.Now().UTC()
		switch {
		case op.Status.Done():
			return ErrFinished
		case op.Status == Pending:
			op.Status, op.Stage, op.Message, op.FinishedAt, op.UpdatedAt = Cancelled, "cancelled", "cancelled before it started", &now, now
			op.CancelledBy = by
			out, settled = op, true
			if err := table.Put(tx, id, op); err != nil {
				return err
			}
			if err := s.emitEnd(tx, op); err != nil {
				return err
			}
			return s.exec.Settle(tx, op)
		case op.Type != Create && op.ProvisionerOperation != "":
			return ErrNotCancellable
		default:
			op.CancelRequested, op.CancelledBy = true, by
		}
		op.UpdatedAt = now
		out = op
		return table.Put(tx, id, op)
	})
	if err != nil {
		return nil, err
	}
	if settled {
		s.exec.Settled(out)
		s.Kick()
		return out, nil
	}
	s.mu.Lock()
	signal := s.running[id]
	s.mu.Unlock()
	if signal != nil {
		signal()
	}
	return out, nil
}

// backoff is the jittered, doubling delay before try n (1-based).
func (s *Service) backoff(n int) time.Duration {
	d := s.opts.RetryMin
	for i := 1; i < n && d < s.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.RetryMax)
	// ±20 % so operations failing together do not retry together.
	return d - d/5 + time.Duration(jitter(int64(d/5*2+1)))
}

// now reads the injected clock.
func (s *Service) now() time.Time {
	if s.opts.Clock != nil {
		return s.opts.Clock()
	}
	return time.Now()
}
