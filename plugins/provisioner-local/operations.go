package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
)

// opRetention is how long a finished operation can still be read.
const opRetention = 24 * time.Hour

// opStore holds operations in memory and in <data_dir>/operations, one
// JSON file each, so that a restarted plugin still answers GetOperation
// for work an earlier process started (and resumes it).
type opStore struct {
	dir string

	mu  sync.Mutex
	ops map[string]*opEntry
}

type opEntry struct {
	op      sdk.Operation
	changed chan struct{} // closed and replaced on every change
}

func newOpStore(dir string) *opStore {
	return &opStore{dir: dir, ops: map[string]*opEntry{}}
}

// load reads the stored operations, dropping finished ones past
// opRetention.
func (s *opStore) load() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read operations: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read operation: %w", err)
		}
		var op sdk.Operation
		if err := json.Unmarshal(data, &op); err != nil || op.ID+".json" != e.Name() {
			// A torn write from a crash: the operation is lost, the
			// cluster's own state still says where it is.
			_ = os.Remove(path)
			continue
		}
		if op.Done() && time.Since(op.UpdatedAt) > opRetention {
			_ = os.Remove(path)
			continue
		}
		s.ops[op.ID] = &opEntry{op: op, changed: make(chan struct{})}
	}
	return nil
}

// create records a new running operation.
func (s *opStore) create(kind sdk.OperationKind, cluster string) (sdk.Operation, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	now := time.Now().UTC()
	op := sdk.Operation{
		ID:          "op-" + hex.EncodeToString(b[:]),
		ClusterName: cluster,
		Kind:        kind,
		State:       sdk.OperationRunning,
		Progress:    sdk.Progress{Stage: "queued", Message: "waiting to start", Percent: 0},
		StartedAt:   now,
		UpdatedAt:   now,
	}
	if err := s.put(op); err != nil {
		return sdk.Operation{}, err
	}
	return op, nil
}

// put stores op (new or changed) and wakes its watchers.
func (s *opStore) put(op sdk.Operation) error {
	data, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("encode operation: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, op.ID+".json"), data, 0o600); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.ops[op.ID]; ok {
		e.op = op
		close(e.changed)
		e.changed = make(chan struct{})
	} else {
		s.ops[op.ID] = &opEntry{op: op, changed: make(chan struct{})}
	}
	s.pruneLocked()
	return nil
}

// update changes a stored operation with fn.
func (s *opStore) update(id string, fn func(*sdk.Operation)) (sdk.Operation, error) {
	s.mu.Lock()
	e, ok := s.ops[id]
	if !ok {
		s.mu.Unlock()
		return sdk.Operation{}, fmt.Errorf("operation %q: %w", id, sdk.ErrNotFound)
	}
	op := e.op
	s.mu.Unlock()
	fn(&op)
	op.UpdatedAt = time.Now().UTC()
	return op, s.put(op)
}

// get returns an operation and a channel closed at its next change.
func (s *opStore) get(id string) (sdk.Operation, <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ops[id]
	if !ok {
		return sdk.Operation{}, nil, false
	}
	return e.op, e.changed, true
}

// running returns the operations still running.
func (s *opStore) running() []sdk.Operation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sdk.Operation
	for _, e := range s.ops {
		if !e.op.Done() {
			out = append(out, e.op)
		}
	}
	return out
}

// pruneLocked forgets finished operations past opRetention.
func (s *opStore) pruneLocked() {
	for id, e := range s.ops {
		if e.op.Done() && time.Since(e.op.UpdatedAt) > opRetention {
			delete(s.ops, id)
			_ = os.Remove(filepath.Join(s.dir, id+".json"))
		}
	}
}

// watch sends op each time it changes until it is done or ctx ends.
func (s *opStore) watch(ctx context.Context, id string, send func(sdk.Operation) error) error {
	var last sdk.Operation
	for first := true; ; first = false {
		op, changed, ok := s.get(id)
		if !ok {
			return fmt.Errorf("operation %q: %w", id, sdk.ErrNotFound)
		}
		if first || op != last {
			if err := send(op); err != nil {
				return err
			}
			last = op
		}
		if op.Done() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
