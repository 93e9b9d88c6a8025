package ratelimit

// lru is a fixed-capacity map that forgets its least recently used entry
// when full. Get, Put and eviction are O(1): a map finds entries and an
// intrusive doubly-linked list keeps them in use order. It is not safe for
// concurrent use; callers hold a lock.
type lru[V any] struct {
	max   int
	items map[string]*lruEntry[V]
	// head.next is the most recently used entry, head.prev the least; head
	// itself holds no value, which removes every nil check from the list code.
	head lruEntry[V]
}

type lruEntry[V any] struct {
	key        string
	val        V
	prev, next *lruEntry[V]
}

func newLRU[V any](max int) *lru[V] {
	if max < 1 {
		max = 1
	}
	l := &lru[V]{max: max, items: make(map[string]*lruEntry[V], min(max, 1024))}
	l.head.prev, l.head.next = &l.head, &l.head
	return l
}

// get returns the value for key and marks it most recently used.
func (l *lru[V]) get(key string) (V, bool) {
	e, ok := l.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	l.unlink(e)
	l.pushFront(e)
	return e.val, true
}

// put stores val under key as the most recently used entry, evicting the
// least recently used one when the map is full.
func (l *lru[V]) put(key string, val V) {
	if e, ok := l.items[key]; ok {
		e.val = val
		l.unlink(e)
		l.pushFront(e)
		return
	}
	var e *lruEntry[V]
	if len(l.items) >= l.max {
		// Reuse the evicted entry: a flood of new keys then allocates no
		// list nodes once the map is full.
		e = l.head.prev
		l.unlink(e)
		delete(l.items, e.key)
	} else {
		e = new(lruEntry[V])
	}
	e.key, e.val = key, val
	l.items[key] = e
	l.pushFront(e)
}

// remove forgets key.
func (l *lru[V]) remove(key string) {
	if e, ok := l.items[key]; ok {
		l.unlink(e)
		delete(l.items, key)
	}
}

func (l *lru[V]) len() int { return len(l.items) }

func (l *lru[V]) unlink(e *lruEntry[V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (l *lru[V]) pushFront(e *lruEntry[V]) {
	e.prev, e.next = &l.head, l.head.next
	l.head.next.prev = e
	l.head.next = e
}
