// Package events is Berth's catalog of typed, versioned events and their
// durable outbox. A service emits an event inside the store transaction
// that makes the change it reports, so the event commits exactly when the
// change does: a crash never loses one, and a change that did not commit
// is never reported. The notify package reads the outbox and fans events
// out to channels; nothing here sends anything.
package events

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/berthgw/berth/gateway/store"
)

// Severity ranks events; routes pass those at or above a minimum.
type Severity string

// Severities, lowest first.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Error    Severity = "error"
	Critical Severity = "critical"
)

var severities = []Severity{Info, Warning, Error, Critical}

// Rank orders severities (info 0 … critical 3); an unknown one is -1.
func (s Severity) Rank() int { return slices.Index(severities, s) }

// ParseSeverity checks s names a severity.
func ParseSeverity(s string) (Severity, error) {
	if Severity(s).Rank() < 0 {
		return "", fmt.Errorf("severity %q is not one of info, warning, error, critical", s)
	}
	return Severity(s), nil
}

// SystemActor is the actor of events no person caused (probes, sweeps).
const SystemActor = "system"

// Event is one thing that happened, as notifications report it.
type Event struct {
	// ID is unique and time-ordered; deliveries use it in their
	// idempotency keys, and webhook receivers to de-duplicate.
	ID      string    `json:"id"`
	Type    string    `json:"type"`
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	// Severity is the type's unless the emitter raised it.
	Severity Severity `json:"severity"`
	// Actor is the user id that caused the event, or "system".
	Actor   string `json:"actor"`
	Cluster string `json:"cluster,omitempty"`
	// Recipient, when set, is the user the event is personally for (the
	// operation they started): it also goes to that user's own targets,
	// and never to an operator's channel in their place.
	Recipient string `json:"recipient,omitempty"`
	// Summary is one human sentence.
	Summary string `json:"summary"`
	// Data holds the type's fields (documented in docs/notifications.md).
	Data map[string]string `json:"data,omitempty"`
}

// ErrUnknownType: an emitter named a type the catalog lacks.
var ErrUnknownType = errors.New("events: type not in the catalog")

// outbox holds emitted events until the notify dispatcher has turned each
// into its deliveries. Ids are time-ordered, so a scan is oldest first.
var outbox = store.NewTable[Event]("event_outbox")

// Emit adds e to the outbox within tx. It fills in the id, the type's
// version and, when e has none, its severity; e.Time must be set from the
// emitter's clock. Only a store failure or a type missing from the catalog
// (a programming error) makes it fail.
func Emit(tx *store.Tx, e Event) error {
	t, ok := Lookup(e.Type)
	if !ok {
		return fmt.Errorf("emit %q: %w", e.Type, ErrUnknownType)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("emit %q: the event has no time", e.Type)
	}
	e.ID = store.NewID("evt")
	e.Version = t.Version
	e.Time = e.Time.UTC()
	if e.Severity == "" {
		e.Severity = t.Severity
	}
	if e.Actor == "" {
		e.Actor = SystemActor
	}
	// Values may come from outside: a node's name and Ready reason from
	// its cluster, an error from a provisioner. Cut them, so an event
	// always renders within notify's 64 KiB and fits a store record.
	e.Summary = bound(e.Summary)
	if e.Data != nil {
		data := make(map[string]string, len(e.Data))
		for k, v := range e.Data {
			data[k] = bound(v)
		}
		e.Data = data
	}
	if err := outbox.Insert(tx, e.ID, &e); err != nil {
		return fmt.Errorf("emit %q: %w", e.Type, err)
	}
	return nil
}

// MaxValue bounds an event's summary and each of its data values, in
// bytes.
const MaxValue = 1024

// bound cuts s to at most MaxValue bytes, on a character boundary, marking
// the cut.
func bound(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	cut := MaxValue - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Pending returns up to limit events from the outbox, oldest first.
func Pending(tx *store.Tx, limit int) ([]Event, error) {
	var out []Event
	err := outbox.Scan(tx, store.ScanOptions{}, func(_ string, e *Event) (bool, error) {
		out = append(out, *e)
		return len(out) < limit, nil
	})
	return out, err
}

// Done removes a dispatched event from the outbox.
func Done(tx *store.Tx, id string) error {
	if err := outbox.Delete(tx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// Table is the outbox's table name, for commit hooks that wake the
// dispatcher.
func Table() string { return outbox.Name() }
