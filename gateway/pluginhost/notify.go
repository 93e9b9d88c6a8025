package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// Notification states.
const (
	NotificationPending = "pending"
	NotificationDead    = "dead"
)

// Notification is a message queued for a notifier plugin.
type Notification struct {
	// ID is the queue's id; it is also the message's idempotency key, so a
	// retry after a plugin restart cannot send twice.
	ID string `json:"id"`
	// Plugin is the notifier to use; empty picks the first running
	// notifier (in configuration order) that offers the message's channel.
	Plugin  string      `json:"plugin,omitempty"`
	Message sdk.Message `json:"message"`
	// State is pending or dead; delivered notifications are removed.
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// Waits counts the times the plugin was unavailable (restarting,
	// degraded): those do not use up attempts, since the message was never
	// offered, but they do lengthen the wait.
	Waits       int       `json:"waits,omitempty"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	// ExpiresAt is set when the notification dies: dead ones are kept for
	// plugins.notify.dead_retention, then dropped.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// notifications is the durable queue, keyed by time-ordered ids so that a
// scan delivers oldest first.
var notifications = store.NewTable[Notification]("plugin_notifications").
	WithExpiry(func(n *Notification) time.Time { return n.ExpiresAt })

// errNoRoute: no running notifier offers the message's channel (yet).
var errNoRoute = errors.New("no running notifier plugin offers the channel")

// queueBatch bounds the notifications one pass of the queue tries.
const queueBatch = 100

// Notify queues msg for delivery and returns the notification's id. The
// queue is in the store, so a message survives plugin crashes and gateway
// restarts; it is retried with backoff (plugins.notify) and marked dead
// after max_attempts, or at once when the plugin refuses it as invalid.
func (h *Host) Notify(ctx context.Context, plugin string, msg sdk.Message) (string, error) {
	if msg.Channel == "" {
		return "", fmt.Errorf("notify: channel is required: %w", sdk.ErrInvalidArgument)
	}
	if plugin != "" {
		if _, err := h.capable(plugin, sdk.CapabilityNotifier); err != nil {
			return "", err
		}
	}
	now := h.now().UTC()
	n := &Notification{ID: store.NewID("ntf"), Plugin: plugin, Message: msg, State: NotificationPending, NextAttempt: now, CreatedAt: now}
	n.Message.IdempotencyKey = n.ID
	if err := h.db.Update(func(tx *store.Tx) error { return notifications.Insert(tx, n.ID, n) }); err != nil {
		return "", fmt.Errorf("queue notification: %w", err)
	}
	select {
	case h.queueWake <- struct{}{}:
	default:
	}
	return n.ID, nil
}

// Notifications returns the queued notifications in a state (pending or
// dead; empty for both), oldest first, up to limit.
func (h *Host) Notifications(state string, limit int) ([]Notification, error) {
	var out []Notification
	err := h.db.View(func(tx *store.Tx) error {
		return notifications.Scan(tx, store.ScanOptions{}, func(_ string, n *Notification) (bool, error) {
			if state == "" || n.State == state {
				out = append(out, *n)
			}
			return len(out) < limit, nil
		})
	})
	return out, err
}

// RunOutbox delivers due notifications until ctx ends, sleeping until the
// next one is due or Notify wakes it. It is the notification outbox, a
// component of its own that the gateway starts after the plugins and stops
// before them, so that across replicas exactly one can run.
func (h *Host) RunOutbox(ctx context.Context) {
	for {
		next := h.deliverDue(ctx)
		wait := time.Minute
		if !next.IsZero() {
			wait = max(next.Sub(h.now()), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-h.queueWake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverDue tries every notification that is due and returns when the
// earliest pending one not yet due is (zero: none).
func (h *Host) deliverDue(ctx context.Context) time.Time {
	var due []Notification
	var next time.Time
	now := h.now()
	err := h.db.View(func(tx *store.Tx) error {
		return notifications.Scan(tx, store.ScanOptions{}, func(_ string, n *Notification) (bool, error) {
			if n.State != NotificationPending {
				return true, nil
			}
			if n.NextAttempt.After(now) {
				if next.IsZero() || n.NextAttempt.Before(next) {
					next = n.NextAttempt
				}
				return true, nil
			}
			due = append(due, *n)
			return len(due) < queueBatch, nil
		})
	})
	if err != nil {
		h.log.Error("read notification queue", "err", err)
		return h.now().Add(h.opts.Notify.RetryMin)
	}
	if len(due) == queueBatch {
		// More may be due: come back at once.
		next = now
	}
	for i := range due {
		if ctx.Err() != nil {
			return next
		}
		if at := h.deliver(ctx, &due[i]); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// deliver makes one attempt and records its outcome; it returns the next
// attempt's time when the notification stays pending.
func (h *Host) deliver(ctx context.Context, n *Notification) time.Time {
	n.Attempts++
	ctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
	defer cancel()
	err := h.send(ctx, n)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// The host is stopping: this attempt does not count.
		return time.Time{}
	}
	log := h.log.With("notification", n.ID, "plugin", n.Plugin, "channel", n.Message.Channel, "attempt", n.Attempts)
	var next time.Time
	switch {
	case err == nil:
		h.metrics.notifications.WithLabelValues("delivered").Inc()
		log.Debug("notification delivered")
		err = h.db.Update(func(tx *store.Tx) error { return notifications.Delete(tx, n.ID) })
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	case errors.Is(err, errUnavailable), errors.Is(err, errUnknownPlugin), errors.Is(err, errNoCapability), errors.Is(err, errNoRoute):
		n.Attempts--
		n.Waits++
		next = h.now().Add(jittered(h.opts.Notify.RetryMin, h.opts.Notify.RetryMax, n.Waits))
		n.NextAttempt, n.LastError = next.UTC(), err.Error()
		log.Debug("notifier unavailable; notification waits", "err", err, "next_attempt", n.NextAttempt)
		err = h.db.Update(func(tx *store.Tx) error { return notifications.Put(tx, n.ID, n) })
	case undeliverable(err) || n.Attempts >= h.opts.Notify.MaxAttempts:
		h.metrics.notifications.WithLabelValues("dead").Inc()
		n.State, n.LastError = NotificationDead, err.Error()
		n.ExpiresAt = h.now().Add(h.opts.Notify.DeadRetention)
		log.Warn("notification dead", "err", err)
		err = h.db.Update(func(tx *store.Tx) error { return notifications.Put(tx, n.ID, n) })
	default:
		h.metrics.notifications.WithLabelValues("retried").Inc()
		next = h.now().Add(jittered(h.opts.Notify.RetryMin, h.opts.Notify.RetryMax, n.Attempts))
		n.NextAttempt, n.LastError = next.UTC(), err.Error()
		log.Info("notification not delivered; will retry", "err", err, "next_attempt", n.NextAttempt)
		err = h.db.Update(func(tx *store.Tx) error { return notifications.Put(tx, n.ID, n) })
	}
	if err != nil {
		log.Error("update notification queue", "err", err)
	}
	return next
}

// undeliverable reports refusals a retry cannot cure: the message itself
// is wrong, or names a channel the plugin does not have.
func undeliverable(err error) bool {
	return errors.Is(err, sdk.ErrInvalidArgument) || errors.Is(err, sdk.ErrNotFound) || errors.Is(err, sdk.ErrUnimplemented)
}

// send routes n to its plugin, or the first running notifier with its
// channel.
func (h *Host) send(ctx context.Context, n *Notification) error {
	name := n.Plugin
	if name == "" {
		name = h.routeChannel(n.Message.Channel)
		if name == "" {
			return fmt.Errorf("channel %q: %w", n.Message.Channel, errNoRoute)
		}
	}
	c, err := h.Notifier(name)
	if err != nil {
		return err
	}
	_, err = c.Send(ctx, n.Message)
	return err
}

func (h *Host) routeChannel(channel string) string {
	h.mu.RLock()
	insts := slices.Clone(h.instances)
	h.mu.RUnlock()
	for _, in := range insts {
		in.mu.Lock()
		ok := in.cur != nil && slices.Contains(in.cur.channels, channel)
		in.mu.Unlock()
		if ok {
			return in.name
		}
	}
	return ""
}

// now reads the host's clock.
func (h *Host) now() time.Time {
	if h.opts.Clock != nil {
		return h.opts.Clock()
	}
	return time.Now()
}
