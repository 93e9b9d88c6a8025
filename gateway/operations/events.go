package operations

import (
	"fmt"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// emitEnd reports an operation that has just reached its final status,
// in tx, the transaction that records that status: the event exists
// exactly when the operation's end does, and an end is recorded once
// (finish and Cancel both refuse an operation that is already done), so
// it is reported once. The event is for the user who asked for the work.
func (s *Service) emitEnd(tx *store.Tx, op *Operation) error {
	e := events.Event{
		Time: s.now(), Actor: op.CreatedBy, Recipient: op.CreatedBy, Cluster: op.Cluster,
		Data: map[string]string{"operation": op.ID, "kind": string(op.Type)},
	}
	what := fmt.Sprintf("%s cluster %q (operation %s)", verbs[op.Type], op.Cluster, op.ID)
	switch op.Status {
	case Succeeded:
		e.Type, e.Summary = events.OperationSucceeded, what+" succeeded."
	case Failed:
		e.Type, e.Summary = events.OperationFailed, what+" failed."
		e.Data["error"] = op.Error
	case Cancelled:
		e.Type, e.Summary = events.OperationCancelled, what+" was cancelled."
		if op.CancelledBy != "" {
			e.Actor = op.CancelledBy
		}
	default:
		return nil
	}
	return events.Emit(tx, e)
}

// verbs name each type of work at the start of a summary.
var verbs = map[Type]string{Create: "Creating", Update: "Changing", Delete: "Deleting"}
