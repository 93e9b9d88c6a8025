package pluginhost

import (
	"context"
	"log/slog"
	"sync"

	"github.com/berthgw/berth/sdk"
)

// Event is an event a plugin emitted through the host's event service,
// tagged with the plugin's name.
type Event struct {
	Plugin string
	sdk.Event
}

// maxRecentEvents bounds the in-memory log of recent events.
const maxRecentEvents = 1000

// eventBus keeps the last events and hands each to the subscribers.
type eventBus struct {
	mu     sync.RWMutex
	ring   []Event
	next   int
	full   bool
	subs   map[int]func(Event)
	nextID int
}

func newEventBus() *eventBus {
	return &eventBus{ring: make([]Event, maxRecentEvents), subs: map[int]func(Event){}}
}

func (b *eventBus) publish(ev Event) {
	b.mu.Lock()
	b.ring[b.next] = ev
	b.next = (b.next + 1) % len(b.ring)
	if b.next == 0 {
		b.full = true
	}
	subs := make([]func(Event), 0, len(b.subs))
	for _, fn := range b.subs {
		subs = append(subs, fn)
	}
	b.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}

func (b *eventBus) subscribe(fn func(Event)) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.nextID
	b.nextID++
	b.subs[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}
}

func (b *eventBus) recent() []Event {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.full {
		return append([]Event(nil), b.ring[:b.next]...)
	}
	return append(append([]Event(nil), b.ring[b.next:]...), b.ring[:b.next]...)
}

// sink is the host.EventSink of one plugin.
type sink struct {
	plugin string
	bus    *eventBus
	log    *slog.Logger
}

// Emit records ev under the plugin's name. Attributes are logged by name
// only: plugins promise not to put secrets in events, but the log is not
// the place to find out that one did.
func (s *sink) Emit(_ context.Context, ev sdk.Event) error {
	s.log.Debug("plugin event", "type", ev.Type, "subject", ev.Subject)
	s.bus.publish(Event{Plugin: s.plugin, Event: ev})
	return nil
}
