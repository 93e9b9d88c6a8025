package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// A user holds one plan at a time: paying for a new one replaces the
// entitlement at once. When the replaced plan was a subscription, the
// provider would go on charging for it, so the grant that replaces it
// queues its cancellation in the same transaction, and RunCancellations
// asks the provider to cancel it (at once: its remaining period grants
// nothing any more) until the provider confirms. The queue is in the
// store, so neither a restart nor the plugin being down loses it.
type cancellation struct {
	SubscriptionID string    `json:"subscription_id"`
	UserID         string    `json:"user_id"`
	OrderID        string    `json:"order_id"`
	ReplacedBy     string    `json:"replaced_by"`
	Attempts       int       `json:"attempts"`
	NextAt         time.Time `json:"next_at"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// cancellations are keyed by subscription id.
var cancellations = store.NewTable[cancellation]("billing_cancellations")

// Retry delays of a cancellation the provider did not confirm: doubling
// from a minute to an hour, for as long as it takes.
const (
	cancelRetryMin = time.Minute
	cancelRetryMax = time.Hour
	// cancelBatch bounds the provider calls of one pass.
	cancelBatch = 50
	// CancelInterval is how often RunCancellations looks for due work.
	CancelInterval = 15 * time.Second
)

// queueReplaced queues the cancellation of prev's subscription, which o
// replaces, within tx.
func (s *Service) queueReplaced(tx *store.Tx, prev *Entitlement, o *Order) error {
	old, err := orders.Get(tx, prev.OrderID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if old.SubscriptionID == "" || old.SubscriptionID == o.SubscriptionID {
		return nil
	}
	now := s.now()
	return cancellations.Put(tx, old.SubscriptionID, &cancellation{SubscriptionID: old.SubscriptionID, UserID: old.UserID,
		OrderID: old.ID, ReplacedBy: o.ID, NextAt: now, CreatedAt: now})
}

// RunCancellations cancels replaced subscriptions at the provider until ctx
// ends. It is a leader duty: one replica asks, and the idempotency key
// makes a repeat after a change of leader harmless.
func (s *Service) RunCancellations(ctx context.Context) {
	t := time.NewTicker(CancelInterval)
	defer t.Stop()
	for {
		s.CancelReplaced(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CancelReplaced makes one pass over the due cancellations and returns how
// many remain queued.
func (s *Service) CancelReplaced(ctx context.Context) int {
	var due []cancellation
	var settings map[string]string
	left := 0
	err := s.db.View(func(tx *store.Tx) error {
		now := s.now()
		err := cancellations.Scan(tx, store.ScanOptions{}, func(_ string, c *cancellation) (bool, error) {
			left++
			if !now.Before(c.NextAt) && len(due) < cancelBatch {
				due = append(due, *c)
			}
			return true, nil
		})
		if err != nil || len(due) == 0 {
			return err
		}
		settings, err = s.settings(tx)
		return err
	})
	if err != nil || len(due) == 0 {
		return left
	}
	b, perr := s.provider()
	for _, c := range due {
		if ctx.Err() != nil {
			break
		}
		err := perr
		if err == nil {
			err = b.CancelSubscription(ctx, sdk.CancelRequest{IdempotencyKey: "replaced-" + c.SubscriptionID,
				Settings: settings, SubscriptionID: c.SubscriptionID})
		}
		if errors.Is(err, sdk.ErrNotFound) {
			err = nil // gone already: nothing more will be charged
		}
		if s.settle(c, err) {
			left--
		}
	}
	return left
}

// settle records the outcome of one cancellation: done (removed from the
// queue, reported true) or due again after a longer wait.
func (s *Service) settle(c cancellation, callErr error) (done bool) {
	err := s.db.Update(func(tx *store.Tx) error {
		cur, err := cancellations.Get(tx, c.SubscriptionID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if callErr == nil {
			done = true
			return cancellations.Delete(tx, c.SubscriptionID)
		}
		cur.Attempts++
		wait := cancelRetryMin << min(cur.Attempts-1, 6)
		cur.NextAt, cur.LastError = s.now().Add(min(wait, cancelRetryMax)), pluginMessage(callErr)
		return cancellations.Put(tx, c.SubscriptionID, cur)
	})
	if err != nil {
		s.opts.logError("recording a subscription's cancellation", fmt.Errorf("subscription %s: %w", c.SubscriptionID, err))
		return false
	}
	if callErr != nil {
		s.opts.logError("canceling a replaced subscription at the provider", fmt.Errorf("subscription %s of order %s: %w", c.SubscriptionID, c.OrderID, callErr))
	}
	return done
}
