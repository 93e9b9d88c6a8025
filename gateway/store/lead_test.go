package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Processes sharing an etcd store take turns: one leads at a time, and
// when it stops (shutdown, a rolling restart) another takes over at once.
func TestLeadOneAtATime(t *testing.T) {
	opts := etcdOptions(t)
	var leading, most atomic.Int32
	type replica struct {
		cancel context.CancelFunc
		done   chan struct{}
		led    chan struct{}
	}
	start := func() *replica {
		db := openStore(t, opts)
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{cancel: cancel, done: make(chan struct{}), led: make(chan struct{}, 1)}
		go func() {
			defer close(r.done)
			db.Lead(ctx, "duties", func(ctx context.Context) {
				n := leading.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				r.led <- struct{}{}
				<-ctx.Done()
				leading.Add(-1)
			})
		}()
		return r
	}
	replicas := []*replica{start(), start(), start()}
	stopped := 0
	for stopped < len(replicas) {
		// Whoever leads now is stopped; the next must take over.
		var leader *replica
		select {
		case <-replicas[0].led:
			leader = replicas[0]
		case <-replicas[1].led:
			leader = replicas[1]
		case <-replicas[2].led:
			leader = replicas[2]
		case <-time.After(30 * time.Second):
			t.Fatalf("nobody took the lead after %d stopped", stopped)
		}
		leader.cancel()
		<-leader.done
		stopped++
	}
	if most.Load() != 1 {
		t.Fatalf("%d replicas led at once", most.Load())
	}
}

// On Badger there is nobody to share with: Lead runs at once.
func TestLeadOnBadgerRunsAtOnce(t *testing.T) {
	db := openStore(t, Options{Dir: t.TempDir()})
	ran := false
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	db.Lead(ctx, "duties", func(context.Context) { ran = true })
	if !ran || db.Replicated() {
		t.Fatalf("ran %v, replicated %v", ran, db.Replicated())
	}
}
