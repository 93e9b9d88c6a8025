package notify

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// DeliveryFilter narrows ListDeliveries; zero fields do not filter.
type DeliveryFilter struct {
	Status    string
	Channel   string
	EventType string
	Since     time.Time
	Until     time.Time
}

// Statuses are the delivery states a filter may name.
var Statuses = []string{Pending, Delivered, Dead}

// ListDeliveries returns a page of deliveries, newest first.
func (s *Service) ListDeliveries(f DeliveryFilter, page, pageSize int) ([]Delivery, int, error) {
	var items []Delivery
	var total int
	err := s.db.View(func(tx *store.Tx) (err error) {
		items, total, err = deliveries.Page(tx, page, pageSize, true, func(d *Delivery) bool {
			return (f.Status == "" || d.Status == f.Status) &&
				(f.Channel == "" || d.Channel == f.Channel) &&
				(f.EventType == "" || d.EventType == f.EventType) &&
				(f.Since.IsZero() || !d.CreatedAt.Before(f.Since)) &&
				(f.Until.IsZero() || d.CreatedAt.Before(f.Until))
		})
		return err
	})
	return items, total, err
}

// Delivery returns the delivery with id.
func (s *Service) Delivery(id string) (*Delivery, error) {
	var d *Delivery
	err := s.db.View(func(tx *store.Tx) (err error) { d, err = deliveries.Get(tx, id); return err })
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrDeliveryNotFound
	}
	return d, err
}

// Retry makes a dead or pending delivery due now, with its attempts
// counted afresh; a delivered one is a 409 (it would send twice).
func (s *Service) Retry(id string) (*Delivery, error) {
	var d *Delivery
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		d, err = deliveries.Get(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrDeliveryNotFound
		}
		if err != nil {
			return err
		}
		if d.Status == Delivered {
			return fault.New(fault.Conflict, "the delivery was delivered; retrying would send it twice")
		}
		if _, err := channels.Get(tx, d.ChannelID); errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.Conflict, "the delivery's channel was deleted")
		}
		now := s.now()
		d.Status, d.Attempts, d.NextAttempt, d.UpdatedAt, d.ExpiresAt = Pending, 0, now, now, time.Time{}
		return deliveries.Put(tx, d.ID, d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// TestResult is what a test send reports.
type TestResult struct {
	Channel           string    `json:"channel"`
	Target            string    `json:"target,omitempty"`
	Template          string    `json:"template"`
	Delivered         bool      `json:"delivered"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	AcceptedAt        time.Time `json:"accepted_at,omitzero"`
	// Error is the plugin's answer when it did not deliver.
	Error string `json:"error,omitempty"`
}

// Test sends a sample of the template for event type tmpl (default
// notification.test) through the saved channel called channel, to target
// (empty: the channel's default), now and once, and reports the plugin's
// answer. Nothing is queued or retried.
func (s *Service) Test(ctx context.Context, channel, target, tmpl string) (*TestResult, error) {
	if tmpl == "" {
		tmpl = events.NotificationTest
	}
	if _, ok := events.Lookup(tmpl); !ok {
		return nil, fault.New(fault.Invalid, "template %q is not an event type (GET /api/v1/notifications/events lists them)", tmpl)
	}
	c, err := s.Channel(channel)
	if errors.Is(err, ErrChannelNotFound) {
		return nil, fault.New(fault.Invalid, "channel %q does not exist", channel)
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkTarget(ctx, c, target); err != nil {
		return nil, err
	}
	e := Sample(tmpl, s.now())
	e.Data["channel"] = c.Name
	var t *Template
	if err := s.db.View(func(tx *store.Tx) (err error) { t, err = templateFor(tx, tmpl, c.Type); return err }); err != nil {
		return nil, err
	}
	msg, err := t.render(&e)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "the template does not render: %s", templateError(err))
	}
	settings, err := s.settings(c)
	if err != nil {
		return nil, err
	}
	n, _, _, err := s.notifier(ctx, c.Type, c.Plugin)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	receipt, err := n.Send(cctx, sdk.Message{IdempotencyKey: store.NewID("ntest"), Channel: c.Type, Target: target,
		Subject: msg.Subject, TextBody: msg.Text, HTMLBody: msg.HTML, Settings: settings,
		Metadata: map[string]string{"event": string(raw), "event_type": e.Type, "event_id": e.ID, "test": "true"}})
	out := &TestResult{Channel: c.Name, Target: target, Template: tmpl}
	if err != nil {
		out.Error = failureText(err)
		return out, nil
	}
	out.Delivered, out.ProviderMessageID, out.AcceptedAt = true, receipt.ProviderMessageID, receipt.AcceptedAt
	return out, nil
}

// EventTypes is the catalog as the API lists it.
func EventTypes() []events.Type { return slices.Clone(events.Types()) }
