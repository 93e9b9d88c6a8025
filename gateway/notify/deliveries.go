package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// Delivery states.
const (
	Pending   = "pending"
	Delivered = "delivered"
	Dead      = "dead"
)

// Delivery is one event on its way to one target through one channel. Its
// message is rendered when it is created, so every retry sends the same
// thing under the same idempotency key.
type Delivery struct {
	ID string `json:"id"`
	// Key is the idempotency key of the (event, channel, target): the
	// plugin and webhook receivers de-duplicate on it.
	Key         string          `json:"idempotency_key"`
	EventID     string          `json:"event_id"`
	EventType   string          `json:"event_type"`
	Severity    events.Severity `json:"severity"`
	Cluster     string          `json:"cluster,omitempty"`
	ChannelID   string          `json:"channel_id"`
	Channel     string          `json:"channel"`
	ChannelType string          `json:"channel_type"`
	Target      string          `json:"target,omitempty"`
	// Recipient is the user a personal delivery is for.
	Recipient string `json:"recipient,omitempty"`
	// Route names the route that chose it (empty: personal or a test).
	Route    string          `json:"route,omitempty"`
	Subject  string          `json:"subject"`
	Text     string          `json:"text"`
	HTML     string          `json:"html,omitempty"`
	Event    json.RawMessage `json:"event"`
	Status   string          `json:"status"`
	Attempts int             `json:"attempts"`
	// Waits counts passes when no plugin could take the delivery
	// (restarting, not installed): they lengthen the wait but do not use
	// up attempts, since nothing was offered to a receiver.
	Waits             int       `json:"waits,omitempty"`
	NextAttempt       time.Time `json:"next_attempt,omitzero"`
	LastError         string    `json:"last_error,omitempty"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	DeliveredAt       time.Time `json:"delivered_at,omitzero"`
	// ExpiresAt: finished deliveries are kept for the retention period.
	ExpiresAt time.Time `json:"-"`
}

// deliveries are keyed by time-ordered ids. The "queue" index holds the
// pending ones under their channel's id, so a channel's queue reads in
// order without scanning the others.
var deliveries = store.NewTable[Delivery]("notify_deliveries",
	store.Index[Delivery]{Name: "queue", Values: func(d *Delivery) []string {
		if d.Status != Pending {
			return nil
		}
		return []string{d.ChannelID}
	}},
).WithExpiry(func(d *Delivery) time.Time { return d.ExpiresAt })

// ErrDeliveryNotFound: no delivery with that id.
var ErrDeliveryNotFound = fault.New(fault.NotFound, "delivery not found")

// deliveryKey is the idempotency key of (event, channel, target).
func deliveryKey(eventID, channelID, target string) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + channelID + "\x00" + target))
	return "ndl_" + hex.EncodeToString(sum[:16])
}

// Run dispatches events and delivers notifications until ctx ends. It is
// a leader duty: one replica runs it at a time, and it may stop and start
// again (another replica then carries on where it stopped).
func (s *Service) Run(ctx context.Context) {
	for ctx.Err() == nil {
		s.dispatchAll(ctx)
		next := s.deliverDue(ctx)
		wait := time.Minute
		if !next.IsZero() {
			wait = max(next.Sub(s.now()), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// dispatchBatch bounds the events read from the outbox at once, so that a
// backlog of any size costs bounded memory.
const dispatchBatch = 100

// dispatchAll turns every event in the outbox into its deliveries.
func (s *Service) dispatchAll(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := s.dispatch()
		if err != nil {
			s.log.Error("notifications: dispatch events", "err", err)
			return
		}
		if n < dispatchBatch {
			return
		}
	}
}

// dispatch handles one batch of events. An event's deliveries are written
// in as many transactions as they need (on etcd one carries at most
// max-txn-ops writes, and an event may match many routes), its removal
// from the outbox with the last. Their ids are the event's and the
// target's, so an event dispatched again, after a replica died halfway,
// finds the ones already written and adds no second copy.
func (s *Service) dispatch() (int, error) {
	var batch []events.Event
	if err := s.db.View(func(tx *store.Tx) (err error) { batch, err = events.Pending(tx, dispatchBatch); return err }); err != nil {
		return 0, err
	}
	// A delivery is a read, its record and its queue entry.
	per := s.db.RecordsPerTxn(3)
	for i := range batch {
		e := &batch[i]
		var ds []*Delivery
		err := s.db.View(func(tx *store.Tx) (err error) { ds, err = s.plan(tx, e); return err })
		for err == nil {
			// n: how many this transaction wrote, at most per, fewer if
			// their messages fill it first.
			var n int
			err = s.db.Update(func(tx *store.Tx) error {
				n = 0
				for _, d := range ds[:min(len(ds), per)] {
					if n > 0 && tx.Full() {
						break
					}
					if err := deliveries.Insert(tx, d.ID, d); err != nil && !errors.Is(err, store.ErrExists) {
						return err
					}
					n++
				}
				if n == len(ds) {
					return events.Done(tx, e.ID)
				}
				return nil
			})
			if err != nil || n == len(ds) {
				break
			}
			ds = ds[n:]
		}
		if err != nil {
			return i, fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	return len(batch), nil
}

// deliveryID is the id of the delivery of key for event eventID: ordered
// by the event's time-ordered id, so a channel's queue is in the order
// things happened, and the same however often the event is dispatched.
func deliveryID(eventID, key string) string {
	return "ndl_" + strings.TrimPrefix(eventID, "evt_") + "_" + strings.TrimPrefix(key, "ndl_")[:12]
}

// plan returns the deliveries e makes: one per matching route, and one per
// personal target its recipient turned on.
func (s *Service) plan(tx *store.Tx, e *events.Event) ([]*Delivery, error) {
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	var out []*Delivery
	seen := map[string]bool{}
	add := func(c *Channel, target, route, recipient string) error {
		key := deliveryKey(e.ID, c.ID, target)
		if seen[key] {
			return nil // two routes to the same place send once
		}
		seen[key] = true
		t, err := templateFor(tx, e.Type, c.Type)
		if err != nil {
			return err
		}
		msg, err := t.render(e)
		if err != nil {
			// An override that fails on a real event: fall back to the
			// built-in template rather than lose the event.
			s.log.Warn("notifications: template failed; using the built-in one", "event_type", e.Type, "channel_type", c.Type, "err", err)
			b := builtin
			if msg, err = b.render(e); err != nil {
				return err
			}
		}
		now := s.now()
		out = append(out, &Delivery{ID: deliveryID(e.ID, key), Key: key, EventID: e.ID, EventType: e.Type, Severity: e.Severity, Cluster: e.Cluster,
			ChannelID: c.ID, Channel: c.Name, ChannelType: c.Type, Target: target, Recipient: recipient, Route: route,
			Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML, Event: raw,
			Status: Pending, NextAttempt: now, CreatedAt: now, UpdatedAt: now})
		return nil
	}
	err = routes.Scan(tx, store.ScanOptions{}, func(_ string, r *Route) (bool, error) {
		if !r.matches(e) {
			return true, nil
		}
		c, err := channelByName(tx, r.Channel)
		if errors.Is(err, ErrChannelNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return true, add(c, r.Target, r.Name, "")
	})
	if err != nil || e.Recipient == "" {
		return out, err
	}
	p, err := personal.Get(tx, e.Recipient)
	if errors.Is(err, store.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	wanted := []struct {
		on          bool
		typ, target string
	}{
		{p.EmailNotifications, "email", ""},
		{p.SlackNotifications, "slack", p.SlackTarget},
		{p.TelegramNotifications, "telegram", p.TelegramChatID},
	}
	for _, w := range wanted {
		if !w.on {
			continue
		}
		target := w.target
		if w.typ == "email" {
			if target, err = s.users.Email(e.Recipient); err != nil || target == "" {
				continue
			}
		}
		c, err := personalChannel(tx, w.typ)
		if err != nil {
			return nil, err
		}
		// No personal channel of the type: the personal copy is not sent;
		// it never falls back to an operator's channel.
		if c != nil && target != "" {
			if err := add(c, target, "", e.Recipient); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// perChannelPass and perChannelTime bound what one channel sends in one
// pass, so a busy channel, or a receiver that accepts but slowly, cannot
// starve the others: they are served before it goes on.
const (
	perChannelPass = 100
	perChannelTime = 10 * time.Second
)

// deliverDue sends what is due, channel by channel and in order within
// each, and returns when the earliest pending delivery not yet sent is
// due (zero: none).
func (s *Service) deliverDue(ctx context.Context) time.Time {
	var chans []Channel
	err := s.db.View(func(tx *store.Tx) error {
		return channels.Scan(tx, store.ScanOptions{}, func(_ string, c *Channel) (bool, error) {
			chans = append(chans, *c)
			return true, nil
		})
	})
	if err != nil {
		s.log.Error("notifications: read channels", "err", err)
		return s.now().Add(s.opts.RetryMin)
	}
	// Channels are independent queues: serve them side by side, so one
	// slow or hanging receiver holds back only its own channel.
	var mu sync.Mutex
	var next time.Time
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelChannels)
	for i := range chans {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *Channel) {
			defer func() { <-sem; wg.Done() }()
			t := s.deliverChannel(ctx, c)
			mu.Lock()
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
			mu.Unlock()
		}(&chans[i])
	}
	wg.Wait()
	return next
}

// parallelChannels bounds the channels served at once.
const parallelChannels = 8

// headBatch is how many of a channel's queue are read at once.
const headBatch = 32

// deliverChannel sends channel c's due deliveries in order; the first that
// is not due or fails holds the ones after it back, so a receiver that was
// down gets everything afterwards in the order it happened.
func (s *Service) deliverChannel(ctx context.Context, c *Channel) time.Time {
	start, sent := s.now(), 0
	for sent < perChannelPass && s.now().Sub(start) < perChannelTime {
		var heads []*Delivery
		err := s.db.View(func(tx *store.Tx) error {
			ids, err := deliveries.FirstIDsBy(tx, "queue", c.ID, headBatch)
			if err != nil {
				return err
			}
			for _, id := range ids {
				d, err := deliveries.Get(tx, id)
				if err != nil {
					return err
				}
				heads = append(heads, d)
			}
			return nil
		})
		if err != nil {
			s.log.Error("notifications: read queue", "channel", c.Name, "err", err)
			return s.now().Add(s.opts.RetryMin)
		}
		if len(heads) == 0 {
			return time.Time{}
		}
		target := s.sender(ctx, c)
		for _, d := range heads {
			if ctx.Err() != nil {
				return time.Time{}
			}
			if d.NextAttempt.After(s.now()) {
				return d.NextAttempt
			}
			if sent >= perChannelPass || s.now().Sub(start) >= perChannelTime {
				break
			}
			if next := s.attempt(ctx, c, target, d); !next.IsZero() {
				return next
			}
			sent++
		}
	}
	return s.now() // more to send: come back at once
}

// sendTarget is what sending through a channel needs, looked up once per
// batch of its queue: its settings and the plugin that offers its type.
type sendTarget struct {
	settings map[string]string
	notifier interface {
		Send(context.Context, sdk.Message) (sdk.Delivery, error)
	}
	err error // why nothing can be sent now
}

func (s *Service) sender(ctx context.Context, c *Channel) sendTarget {
	settings, err := s.settings(c)
	if err != nil {
		return sendTarget{err: err}
	}
	n, _, _, err := s.notifier(ctx, c.Type, c.Plugin)
	if err != nil {
		return sendTarget{err: err}
	}
	return sendTarget{settings: settings, notifier: n}
}

// attempt sends d once and records the outcome; it returns when d is due
// again if it stays pending (zero when it was delivered or died).
func (s *Service) attempt(ctx context.Context, c *Channel, to sendTarget, d *Delivery) time.Time {
	msg := sdk.Message{IdempotencyKey: d.Key, Channel: c.Type, Target: d.Target, Subject: d.Subject, TextBody: d.Text, HTMLBody: d.HTML,
		Metadata: map[string]string{"event": string(d.Event), "event_id": d.EventID, "event_type": d.EventType, "severity": string(d.Severity), "cluster": d.Cluster}}
	var receipt sdk.Delivery
	err, sent := to.err, to.err == nil
	if sent {
		msg.Settings = to.settings
		cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
		receipt, err = to.notifier.Send(cctx, msg)
		cancel()
	}
	if ctx.Err() != nil {
		return s.now() // stopping: this attempt does not count
	}
	now := s.now()
	d.UpdatedAt = now
	var next time.Time
	if !sent && now.Sub(d.CreatedAt) >= s.opts.Retention {
		// Waiting is bounded too: a channel whose plugin stays away for
		// the whole retention does not pile up pending deliveries for ever.
		s.outcomes.WithLabelValues("dead").Inc()
		d.Status, d.NextAttempt, d.ExpiresAt = Dead, time.Time{}, now.Add(s.opts.Retention)
		d.LastError = "no notifier plugin took the delivery within the retention period: " + failureText(err)
		s.log.Warn("notification dead", "delivery", d.ID, "channel", c.Name, "err", d.LastError)
		if err := s.db.Update(func(tx *store.Tx) error { return deliveries.Put(tx, d.ID, d) }); err != nil {
			s.log.Error("notifications: record dead delivery", "err", err)
		}
		return time.Time{}
	}
	if !sent {
		s.outcomes.WithLabelValues("waited").Inc()
		d.Waits++
		next = now.Add(backoff(s.opts.RetryMin, s.opts.RetryMax, d.Waits))
		d.LastError, d.NextAttempt = failureText(err), next
		s.log.Info("notifications: no plugin can take the delivery now; it waits", "delivery", d.ID, "channel", c.Name, "err", d.LastError, "next_attempt", next)
		if err := s.db.Update(func(tx *store.Tx) error { return deliveries.Put(tx, d.ID, d) }); err != nil {
			s.log.Error("notifications: record wait", "err", err)
		}
		return next
	}
	d.Attempts++
	log := s.log.With("delivery", d.ID, "channel", c.Name, "event_type", d.EventType, "attempt", d.Attempts)
	switch {
	case err == nil:
		d.Status, d.DeliveredAt, d.ProviderMessageID, d.LastError = Delivered, now, receipt.ProviderMessageID, ""
		d.NextAttempt, d.ExpiresAt = time.Time{}, now.Add(s.opts.Retention)
		s.outcomes.WithLabelValues("delivered").Inc()
		log.Debug("notification delivered")
	case permanent(err) || d.Attempts >= s.opts.MaxAttempts:
		d.Status, d.LastError, d.NextAttempt = Dead, failureText(err), time.Time{}
		d.ExpiresAt = now.Add(s.opts.Retention)
		s.outcomes.WithLabelValues("dead").Inc()
		log.Warn("notification dead", "err", d.LastError)
	default:
		next = now.Add(backoff(s.opts.RetryMin, s.opts.RetryMax, d.Attempts))
		d.LastError, d.NextAttempt = failureText(err), next
		s.outcomes.WithLabelValues("retried").Inc()
		log.Info("notification not delivered; will retry", "err", d.LastError, "next_attempt", next)
	}
	if err := s.db.Update(func(tx *store.Tx) error { return deliveries.Put(tx, d.ID, d) }); err != nil {
		log.Error("notifications: record attempt", "err", err)
		return now.Add(s.opts.RetryMin)
	}
	return next
}

// permanent reports failures a retry cannot cure: the plugin found the
// message, target or settings wrong, or the provider refused for good.
func permanent(err error) bool {
	for _, k := range []error{sdk.ErrInvalidArgument, sdk.ErrNotFound, sdk.ErrUnimplemented, sdk.ErrFailedPrecondition, sdk.ErrPermissionDenied} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// failureText is what a delivery records of a failure: the plugin's own
// message (which must not hold secrets; the conformance suite and
// plugins/notify's tests check theirs), bounded.
func failureText(err error) string {
	msg := refusalText(err)
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// backoff is exponential from min to max with full jitter in its upper
// half, so retries of many deliveries spread out.
func backoff(lo, hi time.Duration, attempts int) time.Duration {
	d := lo
	for i := 1; i < attempts && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}
