// Package health answers readiness: the gateway is ready only when every
// registered dependency (the store, each required plugin) says so.
package health

import (
	"sort"
	"sync"
)

// Checker holds named readiness checks. It is safe for concurrent use.
type Checker struct {
	mu     sync.RWMutex
	checks map[string]func() error
}

// NewChecker returns an empty checker (which reports ready).
func NewChecker() *Checker { return &Checker{checks: map[string]func() error{}} }

// Add registers or replaces the check called name.
func (c *Checker) Add(name string, check func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks[name] = check
}

// Failing returns the names of failing checks, sorted; empty means ready.
// Only names are returned: check errors may hold internal detail that a
// public /readyz must not show.
func (c *Checker) Failing() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var bad []string
	for name, check := range c.checks {
		if check() != nil {
			bad = append(bad, name)
		}
	}
	sort.Strings(bad)
	return bad
}
