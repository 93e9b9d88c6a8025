// Package lru holds a fixed-capacity map that forgets its least recently
// used entry when full, the building block of Berth's bounded caches and
// rate-limit tables.
package lru

// Map is a fixed-capacity map that forgets its least recently used entry
// when full. Get, Put and eviction are O(1): a map finds entries and an
// intrusive doubly-linked list keeps them in use order. It is not safe for
// concurrent use; callers hold a lock.
type Map[V any] struct {
	max   int
	items map[string]*entry[V]
	// head.next is the most recently used entry, head.prev the least; head
	// itself holds no value, which removes every nil check from the list code.
	head entry[V]
}

type entry[V any] struct {
	key        string
	val        V
	prev, next *entry[V]
}

// New returns a Map holding at most max entries (at least 1). Its memory
// grows with the entries put, not with max: the gateway holds dozens of
// these (a rate-limit scope alone has 16), mostly near empty, and sizing
// each for its bound up front cost megabytes of an idle gateway's memory.
func New[V any](max int) *Map[V] {
	if max < 1 {
		max = 1
	}
	l := &Map[V]{max: max, items: make(map[string]*entry[V])}
	l.head.prev, l.head.next = &l.head, &l.head
	return l
}

// Get returns the value for key and marks it most recently used.
func (l *Map[V]) Get(key string) (V, bool) {
	e, ok := l.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	l.unlink(e)
	l.pushFront(e)
	return e.val, true
}

// Put stores val under key as the most recently used entry, evicting the
// least recently used one when the map is full.
func (l *Map[V]) Put(key string, val V) {
	if e, ok := l.items[key]; ok {
		e.val = val
		l.unlink(e)
		l.pushFront(e)
		return
	}
	var e *entry[V]
	if len(l.items) >= l.max {
		// Reuse the evicted entry: a flood of new keys then allocates no
		// list nodes once the map is full.
		e = l.head.prev
		l.unlink(e)
		delete(l.items, e.key)
	} else {
		e = new(entry[V])
	}
	e.key, e.val = key, val
	l.items[key] = e
	l.pushFront(e)
}

// Remove forgets key.
func (l *Map[V]) Remove(key string) {
	if e, ok := l.items[key]; ok {
		l.unlink(e)
		delete(l.items, key)
	}
}

// RemoveIf forgets every entry for which drop returns true. It walks the
// whole map, so it suits rare invalidations, not the request path.
func (l *Map[V]) RemoveIf(drop func(key string, val V) bool) {
	for e := l.head.next; e != &l.head; {
		next := e.next
		if drop(e.key, e.val) {
			l.unlink(e)
			delete(l.items, e.key)
		}
		e = next
	}
}

// Clear forgets every entry.
func (l *Map[V]) Clear() {
	clear(l.items)
	l.head.prev, l.head.next = &l.head, &l.head
}

// Len returns the number of entries.
func (l *Map[V]) Len() int { return len(l.items) }

func (l *Map[V]) unlink(e *entry[V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (l *Map[V]) pushFront(e *entry[V]) {
	e.prev, e.next = &l.head, l.head.next
	l.head.next.prev = e
	l.head.next = e
}
