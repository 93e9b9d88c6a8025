package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/host"
)

// kvRecord is one plugin key's value. The key itself is the record id:
// "<plugin>/<key>". Plugin names cannot contain '/', so one plugin's keys
// can never be read as another's.
type kvRecord struct {
	Value     []byte    `json:"value"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// kvTable holds every plugin's keys. Expiry goes through the store, which
// hides expired records from reads even before Badger compacts them away.
var kvTable = store.NewTable[kvRecord]("plugin_kv").WithExpiry(func(r *kvRecord) time.Time { return r.ExpiresAt })

// KV is the Badger-backed host.KVBackend of one plugin.
type KV struct {
	db     *store.DB
	plugin string
	now    func() time.Time
}

var _ host.KVBackend = (*KV)(nil)

// newKV returns the key-value store of the plugin called name.
func newKV(db *store.DB, name string) *KV { return &KV{db: db, plugin: name, now: time.Now} }

func (k *KV) id(key string) string { return k.plugin + "/" + key }

// checkKey refuses keys the store cannot hold as ids (a NUL byte);
// host.Register has already enforced the length limits.
func checkKey(key string) error {
	if key == "" || strings.ContainsRune(key, 0) {
		return fmt.Errorf("key must be non-empty and free of NUL bytes: %w", sdk.ErrInvalidArgument)
	}
	return nil
}

// Get returns the value of key, or an error matching sdk.ErrNotFound.
func (k *KV) Get(_ context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var v []byte
	err := k.db.View(func(tx *store.Tx) error {
		r, err := kvTable.Get(tx, k.id(key))
		if err != nil {
			return err
		}
		v = r.Value
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("key %q: %w", key, sdk.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("host kv get: %w", err)
	}
	return v, nil
}

// Put stores value under key; ttl > 0 makes it expire.
func (k *KV) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	r := &kvRecord{Value: value}
	if ttl > 0 {
		// Badger's expiry has one-second resolution; round up so a TTL
		// never ends early.
		r.ExpiresAt = k.now().Add(ttl + time.Second - 1).Truncate(time.Second)
	}
	if err := k.db.Update(func(tx *store.Tx) error { return kvTable.Put(tx, k.id(key), r) }); err != nil {
		return fmt.Errorf("host kv put: %w", err)
	}
	return nil
}

// Delete removes key; a missing key is not an error.
func (k *KV) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := k.db.Update(func(tx *store.Tx) error { return kvTable.Delete(tx, k.id(key)) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("host kv delete: %w", err)
	}
	return nil
}

// List returns up to limit entries whose keys start with prefix and sort
// after startAfter, in key order, and whether more follow.
func (k *KV) List(_ context.Context, prefix, startAfter string, limit int) ([]sdk.KVEntry, bool, error) {
	if limit <= 0 {
		limit = host.MaxListLimit
	}
	base := k.id(prefix)
	out := make([]sdk.KVEntry, 0, min(limit, 64))
	more := false
	err := k.db.View(func(tx *store.Tx) error {
		// Scan's cursor is exclusive. Starting after the prefix itself
		// would skip a key equal to the prefix, so that one is read first.
		after := base
		if startAfter >= prefix && startAfter != "" {
			after = k.id(startAfter)
		} else if prefix != "" {
			r, err := kvTable.Get(tx, base)
			switch {
			case err == nil:
				out = append(out, sdk.KVEntry{Key: prefix, Value: r.Value})
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		return kvTable.Scan(tx, store.ScanOptions{After: after}, func(id string, r *kvRecord) (bool, error) {
			if !strings.HasPrefix(id, base) {
				return false, nil
			}
			if len(out) == limit {
				more = true
				return false, nil
			}
			out = append(out, sdk.KVEntry{Key: id[len(k.plugin)+1:], Value: r.Value})
			return true, nil
		})
	})
	if err != nil {
		return nil, false, fmt.Errorf("host kv list: %w", err)
	}
	return out, more, nil
}
