package plugintest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
)

// MemoryKV is an in-memory host.KVBackend with TTLs, for tests.
type MemoryKV struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]memEntry
}

type memEntry struct {
	value   []byte
	expires time.Time
}

var _ host.KVBackend = (*MemoryKV)(nil)

// NewMemoryKV returns an empty store.
func NewMemoryKV() *MemoryKV { return &MemoryKV{now: time.Now, entries: map[string]memEntry{}} }

func (m *MemoryKV) live(key string) (memEntry, bool) {
	e, ok := m.entries[key]
	if ok && !e.expires.IsZero() && !m.now().Before(e.expires) {
		delete(m.entries, key)
		return memEntry{}, false
	}
	return e, ok
}

// Get implements host.KVBackend.
func (m *MemoryKV) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	if !ok {
		return nil, fmt.Errorf("key %q: %w", key, sdk.ErrNotFound)
	}
	return slices.Clone(e.value), nil
}

// Put implements host.KVBackend.
func (m *MemoryKV) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := memEntry{value: slices.Clone(value)}
	if ttl > 0 {
		e.expires = m.now().Add(ttl)
	}
	m.entries[key] = e
	return nil
}

// Delete implements host.KVBackend.
func (m *MemoryKV) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// List implements host.KVBackend.
func (m *MemoryKV) List(_ context.Context, prefix, startAfter string, limit int) ([]sdk.KVEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.entries {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			if _, ok := m.live(k); ok {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	more := false
	if limit > 0 && len(keys) > limit {
		keys, more = keys[:limit], true
	}
	out := make([]sdk.KVEntry, len(keys))
	for i, k := range keys {
		out[i] = sdk.KVEntry{Key: k, Value: slices.Clone(m.entries[k].value)}
	}
	return out, more, nil
}

// Expires returns when key expires (zero for never) and whether it exists.
func (m *MemoryKV) Expires(key string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	return e.expires, ok
}

// MemoryEvents is a host.EventSink that keeps every event, for tests.
type MemoryEvents struct {
	mu     sync.Mutex
	events []sdk.Event
}

var _ host.EventSink = (*MemoryEvents)(nil)

// NewMemoryEvents returns an empty sink.
func NewMemoryEvents() *MemoryEvents { return &MemoryEvents{} }

// Emit implements host.EventSink.
func (m *MemoryEvents) Emit(_ context.Context, ev sdk.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, ev)
	return nil
}

// Events returns the events received so far.
func (m *MemoryEvents) Events() []sdk.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}
