// Package idempotency remembers the answers to mutating plugin calls by
// idempotency key, so a host that retries a call (after a timeout, a
// restart of its own) gets the first answer instead of a second side effect.
package idempotency

import (
	"container/list"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk/internal/rpcerr"
	"google.golang.org/protobuf/proto"
)

// Defaults for New: a day covers any sane retry policy, and ten thousand
// answers of a few hundred bytes each is a few megabytes at most.
const (
	DefaultTTL        = 24 * time.Hour
	DefaultMaxEntries = 10000
)

// Cache maps (method, idempotency key) to the first successful answer.
// Failed calls are not remembered, so a retry after an error runs again.
// It lives in the plugin's memory: a plugin restart forgets it, so plugins
// whose side effects matter pass the key on to their provider as well.
type Cache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	order   *list.List // of string keys, oldest first
}

type entry struct {
	reqHash [sha256.Size]byte
	done    chan struct{}
	resp    proto.Message
	err     error
	at      time.Time
	elem    *list.Element
}

// New returns a cache that keeps at most max answers for ttl each.
func New(ttl time.Duration, max int) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if max <= 0 {
		max = DefaultMaxEntries
	}
	return &Cache{ttl: ttl, max: max, now: time.Now, entries: map[string]*entry{}, order: list.New()}
}

// Do runs fn once per (method, key) and returns its answer to every call
// with the same key and the same request. A call with the same key but a
// different request is refused with ErrInvalidArgument, as reusing a key for
// other work is a bug in the caller. Concurrent calls with one key wait for
// the first to finish.
func (c *Cache) Do(ctx context.Context, method, key string, req proto.Message, fn func() (proto.Message, error)) (proto.Message, error) {
	if key == "" {
		return nil, fmt.Errorf("%s: idempotency_key is required: %w", method, rpcerr.ErrInvalidArgument)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: hash request: %w", method, err)
	}
	hash := sha256.Sum256(raw)
	id := method + "\x00" + key

	for {
		c.mu.Lock()
		c.expire()
		e, ok := c.entries[id]
		if !ok {
			e = &entry{reqHash: hash, done: make(chan struct{}), at: c.now()}
			e.elem = c.order.PushBack(id)
			c.entries[id] = e
			c.evict()
			c.mu.Unlock()
			return c.run(id, e, fn)
		}
		c.mu.Unlock()
		if e.reqHash != hash {
			return nil, fmt.Errorf("%s: idempotency_key %q was already used for a different request: %w", method, key, rpcerr.ErrInvalidArgument)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.resp, nil
		}
		// The first call failed and was forgotten; run this one afresh.
	}
}

func (c *Cache) run(id string, e *entry, fn func() (proto.Message, error)) (proto.Message, error) {
	defer close(e.done)
	resp, err := fn()
	e.resp, e.err = resp, err
	if err != nil {
		c.mu.Lock()
		if c.entries[id] == e {
			delete(c.entries, id)
			c.order.Remove(e.elem)
		}
		c.mu.Unlock()
	}
	return resp, err
}

// expire drops answers older than the TTL; c.mu is held.
func (c *Cache) expire() {
	cutoff := c.now().Add(-c.ttl)
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		id := front.Value.(string)
		e := c.entries[id]
		if e.at.After(cutoff) {
			return
		}
		c.order.Remove(front)
		delete(c.entries, id)
	}
}

// evict keeps the cache within its size; c.mu is held.
func (c *Cache) evict() {
	for c.order.Len() > c.max {
		front := c.order.Front()
		c.order.Remove(front)
		delete(c.entries, front.Value.(string))
	}
}

// Len returns the number of remembered answers, for tests.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
