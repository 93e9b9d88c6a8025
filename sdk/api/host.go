package api

import (
	"context"
	"time"
)

// Host is what the gateway offers back to a plugin. A plugin receives it in
// Configure. Both fields are always set: when the gateway offers no such
// service (as in some tests), their methods return sdk.ErrUnimplemented.
type Host struct {
	// KV is a key-value store private to this plugin, kept by the gateway
	// across plugin restarts.
	KV KV
	// Events records events (operation progress, facts worth auditing) in
	// the gateway.
	Events Events
}

// KV is a key-value store scoped to one plugin.
type KV interface {
	// Get returns sdk.ErrNotFound for a missing or expired key.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key; a positive ttl lets the gateway drop it
	// after that long.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every entry whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]KVEntry, error)
}

// KVEntry is one key and its value.
type KVEntry struct {
	Key   string
	Value []byte
}

// Events sends events to the gateway.
type Events interface {
	Emit(ctx context.Context, ev Event) error
}

// Event is something a plugin wants the gateway to record or pass on.
type Event struct {
	// Type is a dotted name, e.g. "operation.progress".
	Type string
	// Subject names what the event is about: an operation id, a zone.
	Subject string
	Message string
	// Progress is set for progress events.
	Progress *Progress
	// Attributes are extra facts; never secrets.
	Attributes map[string]string
	// Time is when it happened; zero means now.
	Time time.Time
}
