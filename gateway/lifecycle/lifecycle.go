// Package lifecycle starts and stops the long-lived parts of a server in
// one order: each part is a Component, a Sequence starts them in order and
// stops them in reverse, and a failure while starting stops exactly what
// had started. Background loops (probes, sweeps, renewals, purges) are
// components too, so each runs once and stops before what it uses.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Component is one part of a running server.
type Component interface {
	// Start begins the component's work; work that lasts runs in the
	// background until Stop. ctx bounds starting only.
	Start(ctx context.Context) error
	// Stop ends the component's work and waits for it, within ctx. It is
	// called only after a successful Start.
	Stop(ctx context.Context) error
}

// Hooks makes a Component from two functions; either may be nil.
type Hooks struct {
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Start implements Component.
func (h Hooks) Start(ctx context.Context) error {
	if h.OnStart == nil {
		return nil
	}
	return h.OnStart(ctx)
}

// Stop implements Component.
func (h Hooks) Stop(ctx context.Context) error {
	if h.OnStop == nil {
		return nil
	}
	return h.OnStop(ctx)
}

// Loop is a background loop as a Component: Start runs run in a goroutine
// with a context that Stop cancels; Stop then waits for run to return.
type Loop struct {
	run    func(ctx context.Context)
	cancel context.CancelFunc
	done   chan struct{}
}

// NewLoop returns the Loop running run, which must return soon after its
// context is cancelled.
func NewLoop(run func(ctx context.Context)) *Loop { return &Loop{run: run} }

// Start implements Component. The loop outlives ctx: only Stop ends it.
func (l *Loop) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		l.run(ctx)
	}()
	return nil
}

// Stop implements Component: it cancels the loop and waits for it to
// return, past ctx if need be, so that nothing stopped after it (the
// store) is closed under it.
func (l *Loop) Stop(context.Context) error {
	l.cancel()
	<-l.done
	return nil
}

// Sequence is an ordered list of named components. Add them in start
// order: each may use those added before it.
type Sequence struct {
	mu      sync.Mutex
	list    []named
	started int // how many of list, from the front, are running
}

type named struct {
	name string
	c    Component
}

// Add appends a component, named for errors and logs.
func (s *Sequence) Add(name string, c Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, named{name, c})
}

// Names lists the components in start order.
func (s *Sequence) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, len(s.list))
	for i, n := range s.list {
		names[i] = n.name
	}
	return names
}

// Start starts the components in order. When one fails, Start stops those
// already started, in reverse, and returns the failure with any errors from
// stopping. They stop with ctx's values but not its deadline: a start that
// ran out of time must still stop what it started.
func (s *Sequence) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.started < len(s.list) {
		n := s.list[s.started]
		if err := n.c.Start(ctx); err != nil {
			err = fmt.Errorf("start %s: %w", n.name, err)
			return errors.Join(err, s.stopLocked(context.WithoutCancel(ctx)))
		}
		s.started++
	}
	return nil
}

// Stop stops the started components in reverse order, each within ctx,
// and returns their errors joined. Stopping continues past a failure: a
// later component (the store) must still close. A second Stop does
// nothing.
func (s *Sequence) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(ctx)
}

func (s *Sequence) stopLocked(ctx context.Context) error {
	var errs []error
	for s.started > 0 {
		s.started--
		n := s.list[s.started]
		if err := n.c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", n.name, err))
		}
	}
	return errors.Join(errs...)
}
