// Package readmap holds a map for the request path: read on every request
// from every core, written only the first time a key is seen.
package readmap

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Map is a read-mostly map. Get takes no lock: the map is replaced whole,
// copied, when a key is added, so readers never contend with each other
// (a sync.RWMutex's reader count is one cache line every core writes).
// Keys must come from a bounded set — metric label values, say: past
// Limit entries, new keys are made but not kept. The zero value is ready.
type Map[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex // serialises writers
	// Limit bounds the entries kept; 0 means 1024.
	Limit int
}

// Get returns the value for k, made by newValue the first time k is seen.
func (m *Map[K, V]) Get(k K, newValue func() V) V {
	if v, ok := m.load(k); ok {
		return v
	}
	limit := m.Limit
	if limit == 0 {
		limit = 1024
	}
	if cur := m.m.Load(); cur != nil && len(*cur) >= limit {
		// Full: made every time, without serialising the callers on mu.
		return newValue()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.load(k); ok {
		return v
	}
	v := newValue()
	var next map[K]V
	if cur := m.m.Load(); cur != nil {
		if len(*cur) >= limit {
			return v
		}
		next = maps.Clone(*cur)
	} else {
		next = map[K]V{}
	}
	next[k] = v
	m.m.Store(&next)
	return v
}

func (m *Map[K, V]) load(k K) (V, bool) {
	if cur := m.m.Load(); cur != nil {
		v, ok := (*cur)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// Len is the number of entries kept.
func (m *Map[K, V]) Len() int {
	if cur := m.m.Load(); cur != nil {
		return len(*cur)
	}
	return 0
}
