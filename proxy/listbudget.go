package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Errors a list lease refuses bytes with.
var (
	// errListBusy: the bytes would fit the budget, but other lists hold
	// too much of it now; the client may retry (429).
	errListBusy = errors.New("list memory budget held by other lists")
	// errListOverBudget: this list alone needs more than the whole
	// budget; retrying cannot help (413).
	errListOverBudget = errors.New("list needs more than the list memory budget")
)

// listBudget bounds the bytes that every list being post-processed holds
// at once: chunk buffers, kept items, and response bodies until they are
// written. A per-list cap did not bound memory — four lists under a
// 256 MiB cap each could hold several GB — while one budget for all of
// them does, whatever their number.
type listBudget struct {
	limit int64

	mu         sync.Mutex
	used, peak int64

	// Counts of lists stopped early, for ListStats.
	refused, overBudget, clientGone, timedOut atomic.Int64
}

// ListStats counts the lists the proxy stopped before answering them, by
// reason, since it started.
type ListStats struct {
	// Refused lists found the memory budget held by other lists (429).
	Refused int64
	// OverBudget lists needed more than the whole budget alone (413).
	OverBudget int64
	// ClientGone lists were abandoned because their client left.
	ClientGone int64
	// TimedOut lists ran out of the time budget (504).
	TimedOut int64
}

// ListMemory is a snapshot of the list memory budget.
type ListMemory struct {
	// Held is the bytes lists hold now.
	Held int64
	// Peak is the most they ever held at once since the proxy started.
	Peak int64
	// Limit is the budget (Options.ListMemoryBudget).
	Limit int64
}

func (b *listBudget) snapshot() ListMemory {
	b.mu.Lock()
	defer b.mu.Unlock()
	return ListMemory{Held: b.used, Peak: b.peak, Limit: b.limit}
}

func (b *listBudget) stats() ListStats {
	return ListStats{Refused: b.refused.Load(), OverBudget: b.overBudget.Load(), ClientGone: b.clientGone.Load(), TimedOut: b.timedOut.Load()}
}

// take reserves n bytes for a list that already holds held, or says why
// not.
func (b *listBudget) take(n, held int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if held+n > b.limit {
		return errListOverBudget
	}
	if b.used+n > b.limit {
		return errListBusy
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return nil
}

func (b *listBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// listLease is one list's share of the budget. It is a listquery.Budget
// for the list's Collector, and the proxy takes its chunk buffer and its
// response body from it too; release gives back whatever is left. Used by
// one request at a time (the handler, then fasthttp writing the body in
// the same goroutine).
type listLease struct {
	b    *listBudget
	held int64
}

// Take reserves n more bytes.
func (l *listLease) Take(n int64) error {
	if n <= 0 {
		return nil
	}
	if err := l.b.take(n, l.held); err != nil {
		return err
	}
	l.held += n
	return nil
}

// Give returns n bytes.
func (l *listLease) Give(n int64) {
	if n <= 0 {
		return
	}
	n = min(n, l.held)
	l.held -= n
	l.b.give(n)
}

// release gives back everything the lease holds.
func (l *listLease) release() { l.Give(l.held) }

// leasedBody is a post-processed list on its way to the client. Its bytes
// stay counted until fasthttp has written it and closes it — a slow client
// holds them as long as it reads.
type leasedBody struct {
	io.Reader
	lease interface{ release() }
	once  sync.Once
}

// Close gives the body's bytes back to the budget.
func (b *leasedBody) Close() error {
	b.once.Do(b.lease.release)
	return nil
}
