package operations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

func jitter(n int64) int64 { return rand.Int64N(max(n, 1)) }

// errSkip ends a run whose operation another party has finished.
var errSkip = errors.New("operation is not active")

// run drives one operation until it ends or the Service stops. signal is
// cancelled when someone asks to cancel the operation.
func (s *Service) run(id string, signal context.Context) {
	resumed := false
	op, err := s.update(id, func(op *Operation) error {
		now := s.now().UTC()
		switch op.Status {
		case Pending:
			deadline := now.Add(s.opts.Timeout)
			op.Status, op.StartedAt, op.Deadline = Running, &now, &deadline
			op.Stage, op.Message = "starting", ""
		case Running:
			// Only an earlier process can have left it running: this one
			// tracks every run it starts until it ends.
			resumed = true
			op.Stage, op.Message = "resumed", "resumed after a gateway restart"
		default:
			return errSkip
		}
		return nil
	})
	if errors.Is(err, errSkip) || errors.Is(err, ErrNotFound) {
		return
	}
	if err != nil {
		s.log.Error("start operation", "operation", id, "err", err)
		return
	}
	log := s.log.With("operation", op.ID, "cluster", op.Cluster, "type", string(op.Type))
	if resumed {
		log.Info("resuming operation")
	}
	if op.Deadline != nil && !s.now().Before(*op.Deadline) {
		s.finish(op.ID, Failed, fmt.Sprintf("deadline passed (operation_timeout %s) while the gateway was down", s.opts.Timeout))
		return
	}
	// The deadline is on the injected clock; the context counts the time
	// left on the real one.
	ctx, cancel := context.WithTimeout(s.ctx, op.Deadline.Sub(s.now()))
	defer cancel()
	w := &worker{s: s, ctx: ctx, signal: signal, log: log}
	status, msg := w.drive(op)
	if status == "" {
		log.Info("operation paused by shutdown")
		return
	}
	s.finish(op.ID, status, msg)
}

// worker holds one run's contexts.
type worker struct {
	s      *Service
	ctx    context.Context // the operation's deadline and the Service's life
	signal context.Context // cancelled when a cancel is requested
	log    *slog.Logger
}

// drive runs the operation's steps. It returns the final status and its
// message, or "" when the Service is stopping and the operation should be
// left running for the next start.
func (w *worker) drive(op *Operation) (Status, string) {
	s := w.s
	follows := 0
	for {
		// Reread: a cancel may have been recorded.
		cur, err := s.Get(op.ID)
		if err != nil {
			return Failed, fmt.Sprintf("read operation: %v", err)
		}
		op = cur
		if op.CancelRequested {
			if op.ProvisionerOperation == "" || op.Type == Create {
				return Cancelled, "cancelled while running"
			}
			// The cancel arrived while Begin was in flight: too late.
			op, err = s.update(op.ID, func(o *Operation) error {
				o.CancelRequested, o.CancelledBy = false, ""
				o.Message = "cancel refused: the provisioner had already started the work"
				return nil
			})
			if err != nil {
				return Failed, fmt.Sprintf("record operation: %v", err)
			}
			w.rearm(op.ID)
		}
		if op.ProvisionerOperation == "" {
			if op.AttemptCount >= s.opts.MaxAttempts {
				return Failed, fmt.Sprintf("gave up after %d attempts: %s", op.AttemptCount, op.Error)
			}
			op, err = s.update(op.ID, func(o *Operation) error {
				o.AttemptCount++
				o.Stage, o.Message = "submitting", fmt.Sprintf("handing the work to %s (attempt %d)", o.Provisioner, o.AttemptCount)
				return nil
			})
			if err != nil {
				return Failed, fmt.Sprintf("record operation: %v", err)
			}
			// Begin is not interrupted by a cancel: it is short, and
			// cutting it could leave work started that nobody follows.
			remote, err := s.exec.Begin(w.ctx, op)
			if errors.Is(err, ErrNothingToDo) {
				return w.complete(op)
			}
			if err != nil {
				if w.ctx.Err() != nil {
					return w.ended(op)
				}
				if !IsRetryable(err) {
					return Failed, err.Error()
				}
				if op.AttemptCount >= s.opts.MaxAttempts {
					return Failed, fmt.Sprintf("gave up after %d attempts: %v", op.AttemptCount, err)
				}
				delay := s.backoff(op.AttemptCount)
				w.log.Warn("operation step failed; retrying", "err", err, "retry_in", delay.String())
				if _, err := s.update(op.ID, func(o *Operation) error {
					o.Error = err.Error()
					o.Stage, o.Message = "waiting", fmt.Sprintf("attempt %d failed; retrying in %s", o.AttemptCount, delay.Round(time.Millisecond))
					return nil
				}); err != nil {
					return Failed, fmt.Sprintf("record operation: %v", err)
				}
				if st, msg, stop := w.wait(op, delay); stop {
					return st, msg
				}
				continue
			}
			if _, err := s.update(op.ID, func(o *Operation) error {
				o.ProvisionerOperation, o.Error = remote, ""
				o.Stage, o.Message = "accepted", "the provisioner accepted the work"
				return nil
			}); err != nil {
				return Failed, fmt.Sprintf("record operation: %v", err)
			}
			continue
		}

		// Follow the provisioner's work. Only a create may be cancelled
		// while it runs; the executor then deletes what was made.
		followCtx, stopFollow := w.ctx, context.CancelFunc(func() {})
		if op.Type == Create {
			followCtx, stopFollow = mergeCancel(w.ctx, w.signal)
		}
		err = s.exec.Follow(followCtx, op, func(p Progress) {
			if _, err := s.update(op.ID, func(o *Operation) error {
				o.Stage, o.Message, o.Percent = p.Stage, p.Message, min(max(p.Percent, 0), 99)
				return nil
			}); err != nil {
				w.log.Warn("record operation progress", "err", err)
			}
		})
		stopFollow()
		switch {
		case err == nil:
			return w.complete(op)
		case errors.Is(err, ErrRemoteLost):
			w.log.Warn("provisioner lost the operation; starting it again", "err", err)
			if _, err := s.update(op.ID, func(o *Operation) error {
				o.ProvisionerOperation, o.Error = "", err.Error()
				return nil
			}); err != nil {
				return Failed, fmt.Sprintf("record operation: %v", err)
			}
			continue
		}
		if w.ctx.Err() != nil {
			return w.ended(op)
		}
		if op.Type == Create && w.signal.Err() != nil {
			continue // a cancel: the next turn ends the operation
		}
		if !IsRetryable(err) {
			return Failed, err.Error()
		}
		follows++
		delay := s.backoff(follows)
		w.log.Warn("lost track of the provisioner's work; watching again", "err", err, "retry_in", delay.String())
		if _, err := s.update(op.ID, func(o *Operation) error {
			o.Error = err.Error()
			o.Message = fmt.Sprintf("lost contact with %s; watching again in %s", o.Provisioner, delay.Round(time.Millisecond))
			return nil
		}); err != nil {
			return Failed, fmt.Sprintf("record operation: %v", err)
		}
		if st, msg, stop := w.wait(op, delay); stop {
			return st, msg
		}
	}
}

// complete runs the executor's last step, retrying what is temporary.
func (w *worker) complete(op *Operation) (Status, string) {
	s := w.s
	for n := 1; ; n++ {
		if _, err := s.update(op.ID, func(o *Operation) error {
			o.Stage, o.Message, o.Percent = "finishing", "the provisioner is done; recording the result", 99
			return nil
		}); err != nil {
			return Failed, fmt.Sprintf("record operation: %v", err)
		}
		err := s.exec.Complete(w.ctx, op)
		if err == nil {
			return Succeeded, ""
		}
		if w.ctx.Err() != nil {
			return w.ended(op)
		}
		if !IsRetryable(err) {
			return Failed, err.Error()
		}
		delay := s.backoff(n)
		w.log.Warn("finishing the operation failed; retrying", "err", err, "retry_in", delay.String())
		if _, err := s.update(op.ID, func(o *Operation) error { o.Error = err.Error(); return nil }); err != nil {
			return Failed, fmt.Sprintf("record operation: %v", err)
		}
		select {
		case <-w.ctx.Done():
			return w.ended(op)
		case <-time.After(delay):
		}
	}
}

// rearm replaces a spent cancel signal after a cancel was refused, so
// later waits are not cut short by it.
func (w *worker) rearm(id string) {
	signal, cancel := context.WithCancel(context.Background())
	w.s.mu.Lock()
	w.s.running[id] = cancel // the dispatcher calls it when the run ends
	w.s.mu.Unlock()
	w.signal = signal
}

// ended explains a run whose context ended: the deadline passed, or the
// Service is stopping ("").
func (w *worker) ended(op *Operation) (Status, string) {
	if w.s.ctx.Err() != nil {
		return "", ""
	}
	cur, err := w.s.Get(op.ID)
	stage := op.Stage
	if err == nil {
		stage = cur.Stage
	}
	return Failed, fmt.Sprintf("timed out after operation_timeout %s at stage %q", w.s.opts.Timeout, stage)
}

// wait sleeps for d unless the run ends or a cancel is requested first.
func (w *worker) wait(op *Operation, d time.Duration) (Status, string, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.signal.Done():
	case <-w.ctx.Done():
		st, msg := w.ended(op)
		return st, msg, true
	}
	return "", "", false
}

// mergeCancel returns a context of parent that also ends when other does.
func mergeCancel(parent, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

// finish records the operation's final status and applies it to its
// cluster in the same transaction.
func (s *Service) finish(id string, status Status, msg string) {
	var out *Operation
	err := s.db.Update(func(tx *store.Tx) error {
		op, err := Get(tx, id)
		if err != nil {
			return err
		}
		if op.Status.Done() {
			return errSkip
		}
		now := tx.Now().UTC()
		op.Status, op.FinishedAt, op.UpdatedAt, op.CancelRequested = status, &now, now, false
		if status != Cancelled {
			op.CancelledBy = "" // a cancel that came too late to matter
		}
		switch status {
		case Succeeded:
			op.Stage, op.Message, op.Percent, op.Error = "done", "succeeded", 100, ""
		case Cancelled:
			op.Stage, op.Message = "cancelled", msg
		default:
			// Keep the stage: it says where the work failed.
			op.Error, op.Message = msg, "failed"
		}
		// Stored first, so Settle sees the cluster free for a follow-up
		// operation (the clean-up of a cancelled create).
		if err := table.Put(tx, id, op); err != nil {
			return err
		}
		if err := s.emitEnd(tx, op); err != nil {
			return err
		}
		out = op
		return s.exec.Settle(tx, op)
	})
	if errors.Is(err, errSkip) {
		return
	}
	if err != nil {
		s.log.Error("record the end of an operation", "operation", id, "status", string(status), "err", err)
		return
	}
	s.log.Info("operation finished", "operation", id, "cluster", out.Cluster, "type", string(out.Type), "status", string(status), "error", out.Error)
	s.exec.Settled(out)
	s.Kick()
}
