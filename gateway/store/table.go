package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Key layout, versioned so a later migration can rewrite a whole family:
//
//	v1/t/<table>/<id>                         → JSON record
//	v1/u/<table>/<index>/<value>              → id          (unique index)
//	v1/x/<table>/<index>/<value>\x00<id>      → ""          (plain index)
//	v1/g/<table>                              → ""          (generation)
//	v1/v/<table>/<index>/<value>              → ""          (generation of a plain index value)
//
// The generation key is written by every transaction that writes the
// table and read by every read-write transaction that scans it, so the
// engine's conflict check (a read key changed since) also catches records
// created, changed or deleted in a scanned range: phantoms, which
// comparing only the keys a scan returned would miss. A scan of one plain
// index value (IDsBy) reads that value's generation key instead, written
// by every transaction that adds or removes the value, so it conflicts
// only with writes to the records it could see: a user's sessions, not
// everyone's.
const (
	recordPrefix          = "v1/t/"
	uniquePrefix          = "v1/u/"
	plainPrefix           = "v1/x/"
	generationPrefix      = "v1/g/"
	valueGenerationPrefix = "v1/v/"
)

func generationKey(table string) string { return generationPrefix + table }

func valueGenerationKey(table, index, value string) string {
	return valueGenerationPrefix + table + "/" + index + "/" + value
}

// dependOn makes a read-write transaction depend on a generation key,
// before it scans what the key stands for.
func (tx *Tx) dependOn(key string) error {
	if !tx.writable {
		return nil // a read-only transaction sees one snapshot and commits nothing
	}
	if _, err := tx.kv.get(key); err != nil && !errors.Is(err, errKeyNotFound) {
		return fmt.Errorf("read %s: %w", key, err)
	}
	return nil
}

// readTable makes a read-write transaction depend on the whole of table.
func (tx *Tx) readTable(table string) error { return tx.dependOn(generationKey(table)) }

// bump writes a generation key, once per transaction.
func (tx *Tx) bump(key string) error {
	if slices.Contains(tx.written, key) {
		return nil
	}
	tx.written = append(tx.written, key)
	return tx.kv.set(entry{key: key})
}

// wroteTable marks table as changed by this transaction.
func (tx *Tx) wroteTable(table string, id string) error {
	tx.changes = append(tx.changes, Change{Table: table, ID: id})
	return tx.bump(generationKey(table))
}

// Index declares a secondary index on a table. Values returns the index
// values of a record; empty strings are not indexed.
type Index[T any] struct {
	Name   string
	Unique bool
	Values func(*T) []string
}

// Table is a typed repository of JSON records of type T.
type Table[T any] struct {
	name    string
	indexes []Index[T]
	expiry  func(*T) time.Time
}

// NewTable declares a table. Names and index names must not contain '/'.
func NewTable[T any](name string, indexes ...Index[T]) *Table[T] {
	if name == "" || strings.Contains(name, "/") {
		panic("store: bad table name " + name)
	}
	for _, ix := range indexes {
		if ix.Name == "" || strings.Contains(ix.Name, "/") || ix.Values == nil {
			panic("store: bad index on " + name)
		}
	}
	return &Table[T]{name: name, indexes: indexes}
}

// WithExpiry makes records expire at the time fn returns (zero: never).
// Expired records and their index entries read as absent, both through
// the engine's TTL (Badger's, etcd's leases) and a check here on the
// store's clock, because an engine may still return expired keys it has
// not removed yet.
func (t *Table[T]) WithExpiry(fn func(*T) time.Time) *Table[T] {
	t.expiry = fn
	return t
}

// Name returns the table's name.
func (t *Table[T]) Name() string { return t.name }

func (t *Table[T]) recordPrefix() string { return recordPrefix + t.name + "/" }

func (t *Table[T]) recordKey(id string) string { return t.recordPrefix() + id }

func (t *Table[T]) uniqueKey(index, value string) string {
	return uniquePrefix + t.name + "/" + index + "/" + value
}

func (t *Table[T]) plainKey(index, value, id string) string {
	return t.plainScanPrefix(index, value) + id
}

func (t *Table[T]) plainScanPrefix(index, value string) string {
	return plainPrefix + t.name + "/" + index + "/" + value + "\x00"
}

// getLive returns the live entry at key, or errKeyNotFound.
func getLive(tx *Tx, key string) (entry, error) {
	e, err := tx.kv.get(key)
	if err == nil && !e.live(tx.now.Unix()) {
		return entry{}, errKeyNotFound
	}
	return e, err
}

// Get returns the record with id, or ErrNotFound.
func (t *Table[T]) Get(tx *Tx, id string) (*T, error) {
	e, err := getLive(tx, t.recordKey(id))
	if errors.Is(err, errKeyNotFound) {
		return nil, fmt.Errorf("%s %s: %w", t.name, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", t.name, id, err)
	}
	v := new(T)
	if err := json.Unmarshal(e.value, v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", t.name, id, err)
	}
	return v, nil
}

// GetBy returns the record a unique index maps value to, or ErrNotFound.
func (t *Table[T]) GetBy(tx *Tx, index, value string) (*T, string, error) {
	e, err := getLive(tx, t.uniqueKey(index, value))
	if errors.Is(err, errKeyNotFound) {
		return nil, "", fmt.Errorf("%s by %s: %w", t.name, index, ErrNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("get %s by %s: %w", t.name, index, err)
	}
	id := string(e.value)
	v, err := t.Get(tx, id)
	return v, id, err
}

// IDsBy returns the ids a plain index maps value to, in id order.
func (t *Table[T]) IDsBy(tx *Tx, index, value string) ([]string, error) {
	return t.FirstIDsBy(tx, index, value, 0)
}

// FirstIDsBy is IDsBy for the first n ids only (every one when n <= 0),
// for queues read from their head: its cost does not grow with the rest.
func (t *Table[T]) FirstIDsBy(tx *Tx, index, value string, n int) ([]string, error) {
	prefix := t.plainScanPrefix(index, value)
	if err := tx.dependOn(valueGenerationKey(t.name, index, value)); err != nil {
		return nil, err
	}
	var ids []string
	err := tx.kv.scan(prefix, scanOrder{}, func(e entry) (bool, error) {
		if e.live(tx.now.Unix()) {
			ids = append(ids, e.key[len(prefix):])
		}
		return n <= 0 || len(ids) < n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s by %s: %w", t.name, index, err)
	}
	return ids, nil
}

// Insert stores v under a new id; ErrExists if the id is taken.
func (t *Table[T]) Insert(tx *Tx, id string, v *T) error {
	if _, err := t.Get(tx, id); err == nil {
		return fmt.Errorf("%s %s: %w", t.name, id, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return t.Put(tx, id, v)
}

// Put creates or replaces the record with id, keeping its indexes in step.
// A unique index value held by another live record fails with ErrDuplicate
// and changes nothing.
func (t *Table[T]) Put(tx *Tx, id string, v *T) error {
	if id == "" || strings.ContainsRune(id, 0) {
		return fmt.Errorf("put %s: invalid id %q", t.name, id)
	}
	old, err := t.Get(tx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	// Check every unique value before writing anything, so a clash leaves
	// the transaction as it was.
	for _, ix := range t.indexes {
		if !ix.Unique {
			continue
		}
		for _, val := range indexValues(ix, v) {
			owner, err := getLive(tx, t.uniqueKey(ix.Name, val))
			if errors.Is(err, errKeyNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("check %s.%s: %w", t.name, ix.Name, err)
			}
			if string(owner.value) != id {
				return fmt.Errorf("%s %s %q: %w", t.name, ix.Name, val, ErrDuplicate)
			}
		}
	}
	if old != nil {
		if err := t.deleteIndexes(tx, id, old); err != nil {
			return err
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", t.name, id, err)
	}
	var expiresAt uint64
	if t.expiry != nil {
		if at := t.expiry(v); !at.IsZero() {
			expiresAt = uint64(at.Unix())
		}
	}
	set := func(k string, val []byte) error {
		tx.wrote(k, val)
		return tx.kv.set(entry{key: k, value: val, expiresAt: expiresAt})
	}
	if err := set(t.recordKey(id), data); err != nil {
		return fmt.Errorf("put %s %s: %w", t.name, id, err)
	}
	if err := tx.wroteTable(t.name, id); err != nil {
		return err
	}
	for _, ix := range t.indexes {
		for _, val := range indexValues(ix, v) {
			key := t.plainKey(ix.Name, val, id)
			value := []byte(nil)
			if ix.Unique {
				key, value = t.uniqueKey(ix.Name, val), []byte(id)
			} else if err := tx.bump(valueGenerationKey(t.name, ix.Name, val)); err != nil {
				return err
			}
			if err := set(key, value); err != nil {
				return fmt.Errorf("index %s.%s: %w", t.name, ix.Name, err)
			}
		}
	}
	return nil
}

// Delete removes the record and its index entries; ErrNotFound if absent.
func (t *Table[T]) Delete(tx *Tx, id string) error {
	old, err := t.Get(tx, id)
	if err != nil {
		return err
	}
	if err := t.deleteIndexes(tx, id, old); err != nil {
		return err
	}
	tx.wrote(t.recordKey(id), nil)
	if err := tx.kv.delete(t.recordKey(id)); err != nil {
		return fmt.Errorf("delete %s %s: %w", t.name, id, err)
	}
	return tx.wroteTable(t.name, id)
}

func (t *Table[T]) deleteIndexes(tx *Tx, id string, old *T) error {
	for _, ix := range t.indexes {
		for _, val := range indexValues(ix, old) {
			key := t.plainKey(ix.Name, val, id)
			if ix.Unique {
				key = t.uniqueKey(ix.Name, val)
			} else if err := tx.bump(valueGenerationKey(t.name, ix.Name, val)); err != nil {
				return err
			}
			tx.wrote(key, nil)
			if err := tx.kv.delete(key); err != nil {
				return fmt.Errorf("unindex %s.%s: %w", t.name, ix.Name, err)
			}
		}
	}
	return nil
}

func indexValues[T any](ix Index[T], v *T) []string {
	vals := ix.Values(v)
	out := vals[:0:0]
	for _, s := range vals {
		if s != "" && !strings.ContainsRune(s, 0) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ScanOptions narrows a Scan.
type ScanOptions struct {
	// Reverse walks from the highest id down; with time-ordered ids that is
	// newest first.
	Reverse bool
	// After starts just past this id (exclusive), for cursors.
	After string
}

// Scan calls fn for each live record in id order until fn returns false or
// an error.
func (t *Table[T]) Scan(tx *Tx, opts ScanOptions, fn func(id string, v *T) (bool, error)) error {
	prefix := t.recordPrefix()
	if err := tx.readTable(t.name); err != nil {
		return err
	}
	order := scanOrder{reverse: opts.Reverse}
	if opts.After != "" {
		order.after = prefix + opts.After
	}
	return tx.kv.scan(prefix, order, func(e entry) (bool, error) {
		if !e.live(tx.now.Unix()) {
			return true, nil
		}
		id := e.key[len(prefix):]
		v := new(T)
		if err := json.Unmarshal(e.value, v); err != nil {
			return false, fmt.Errorf("decode %s %s: %w", t.name, id, err)
		}
		return fn(id, v)
	})
}

// Page returns one page (1-based) of the records keep accepts, in id order,
// and how many records it accepts in all. A nil keep accepts everything.
func (t *Table[T]) Page(tx *Tx, page, pageSize int, reverse bool, keep func(*T) bool) ([]T, int, error) {
	if page < 1 || pageSize < 1 {
		return nil, 0, fmt.Errorf("page %s: page and page size must be positive", t.name)
	}
	start := (page - 1) * pageSize
	items := []T{}
	total := 0
	err := t.Scan(tx, ScanOptions{Reverse: reverse}, func(_ string, v *T) (bool, error) {
		if keep != nil && !keep(v) {
			return true, nil
		}
		if total >= start && len(items) < pageSize {
			items = append(items, *v)
		}
		total++
		return true, nil
	})
	return items, total, err
}
