// Package operations runs long work on clusters (creating, changing and
// deleting them through a provisioner) as durable operations. Each
// operation is a record in the store that a pool of workers drives to an
// end: it retries what may succeed later, gives up at a deadline, and is
// picked up again after a gateway restart rather than forgotten.
//
// The package knows nothing of clusters or plugins: an Executor does the
// work of each step, and decides what a finished operation means for the
// cluster it names.
package operations

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// Status is where an operation is in its life.
type Status string

// Statuses. Pending and Running are active; the rest are final.
const (
	Pending   Status = "pending"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
)

// Statuses lists every status, for validating filters.
var Statuses = []Status{Pending, Running, Succeeded, Failed, Cancelled}

// Done reports whether s is final.
func (s Status) Done() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Type says what an operation does.
type Type string

// Types of operation.
const (
	Create Type = "create"
	Update Type = "update"
	Delete Type = "delete"
)

// Types lists every type, for validating filters.
var Types = []Type{Create, Update, Delete}

// Operation is one piece of long work on a cluster, as stored and as the
// API shows it.
type Operation struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	Type    Type   `json:"type"`
	Status  Status `json:"status"`
	// Stage is a short machine-readable step ("submitting",
	// "bootstrap-etcd", "registering"); Message is for people.
	Stage   string `json:"stage,omitempty"`
	Message string `json:"message,omitempty"`
	Percent int    `json:"percent"`
	// AttemptCount is how many times the work was handed to the
	// provisioner (retries after retryable failures included).
	AttemptCount int `json:"attempt_count"`
	// Error explains a failed operation, or the last retryable failure of
	// one still running.
	Error string `json:"error,omitempty"`
	// Provisioner is the plugin doing the work, and ProvisionerOperation
	// its own id for it.
	Provisioner          string `json:"provisioner,omitempty"`
	ProvisionerOperation string `json:"provisioner_operation_id,omitempty"`
	// Spec is what was asked for, in the executor's terms.
	Spec json.RawMessage `json:"spec,omitempty"`
	// CancelRequested is set when a cancel arrives while the work runs;
	// the worker ends the operation at its next safe point.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// CancelledBy is the user who asked for the cancel, so the event that
	// reports it names them even when a worker ends the operation later.
	CancelledBy string     `json:"cancelled_by,omitempty"`
	CreatedBy   string     `json:"created_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// Deadline is when a running operation fails if it has not ended.
	Deadline *time.Time `json:"deadline,omitempty"`
}

// Active reports whether the operation is pending or running.
func (o *Operation) Active() bool { return !o.Status.Done() }

var table = store.NewTable("operations",
	store.Index[Operation]{Name: "cluster", Values: func(o *Operation) []string { return []string{o.Cluster} }},
	store.Index[Operation]{Name: "status", Values: func(o *Operation) []string { return []string{string(o.Status)} }},
)

// Errors of this package, testable with errors.Is. The refusals a caller
// of the API can meet are faults, answered as their kind says.
var (
	ErrNotFound = fault.New(fault.NotFound, "operation not found")
	// ErrFinished: the operation has ended and cannot be cancelled.
	ErrFinished = fault.New(fault.Conflict, "operation has already finished")
	// ErrNotCancellable: the provisioner is already changing or deleting
	// the cluster, and that cannot be stopped half way.
	ErrNotCancellable = fault.New(fault.Conflict, "operation cannot be cancelled once the provisioner has started it")
	// ErrBusy: the cluster already has an active operation.
	ErrBusy = fault.New(fault.Conflict, "the cluster has an operation in progress")
	// ErrRemoteLost is returned by Executor.Follow when the provisioner
	// no longer knows the operation (its state was lost); the work is
	// started again under the same idempotency key.
	ErrRemoteLost = errors.New("the provisioner no longer knows the operation")
	// ErrNothingToDo is returned by Executor.Begin when the work is
	// already done (deleting what the provisioner does not have): the
	// operation goes straight to Complete.
	ErrNothingToDo = errors.New("nothing to do")
)

// BusyError names the operation that makes a cluster busy.
type BusyError struct{ Operation *Operation }

func (e *BusyError) Error() string {
	return fmt.Sprintf("cluster %q has a %s operation in progress (%s, %s)", e.Operation.Cluster, e.Operation.Type, e.Operation.ID, e.Operation.Status)
}

// Is makes errors.Is(err, ErrBusy) hold.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Unwrap is the refusal a caller sees: a conflict naming the operation.
func (e *BusyError) Unwrap() error { return fault.New(fault.Conflict, "%s", e.Error()) }

// New returns a pending operation for Insert.
func New(typ Type, cluster, provisioner, createdBy string, spec any) (*Operation, error) {
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("operation spec: %w", err)
	}
	return &Operation{
		ID: store.NewID("op"), Cluster: cluster, Type: typ, Status: Pending, Stage: "queued",
		Provisioner: provisioner, CreatedBy: createdBy, Spec: raw,
	}, nil
}

// Insert stores a new operation inside the caller's transaction, after
// checking that its cluster has no other active operation: one change at
// a time, so a delete cannot overtake a create.
func Insert(tx *store.Tx, op *Operation) error {
	if busy, err := ActiveFor(tx, op.Cluster); err != nil {
		return err
	} else if busy != nil {
		return &BusyError{Operation: busy}
	}
	now := tx.Now().UTC()
	op.CreatedAt, op.UpdatedAt = now, now
	if err := table.Insert(tx, op.ID, op); err != nil {
		return fmt.Errorf("insert operation: %w", err)
	}
	return nil
}

// ActiveFor returns the cluster's pending or running operation, or nil.
func ActiveFor(tx *store.Tx, cluster string) (*Operation, error) {
	ids, err := table.IDsBy(tx, "cluster", cluster)
	if err != nil {
		return nil, fmt.Errorf("operations of %s: %w", cluster, err)
	}
	for _, id := range ids {
		op, err := table.Get(tx, id)
		if err != nil {
			continue
		}
		if op.Active() {
			return op, nil
		}
	}
	return nil, nil
}

// Get reads one operation inside a transaction.
func Get(tx *store.Tx, id string) (*Operation, error) {
	op, err := table.Get(tx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return op, err
}
