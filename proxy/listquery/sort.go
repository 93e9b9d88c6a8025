package listquery

import (
	"cmp"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// sortKey is an item's value for the sort field, already converted for
// the query's SortFunc so comparisons do no parsing.
type sortKey struct {
	s     string
	i     int64
	f     float64
	t     time.Time
	ok    bool // false: field missing or not parseable; sorts last
	isInt bool // (the bools last: packed together, an entry is 8 bytes smaller)
}

// entry is one kept item: its raw JSON plus what ordering needs.
type entry struct {
	raw      string
	ns, name string
	// src is the source of the item in a union (Tag's value: the
	// cluster), "" otherwise. Two clusters may each hold web/nginx; the
	// source orders them before arrival does, since arrival from
	// clusters answering concurrently is not repeatable.
	src string
	key sortKey
	seq int // arrival order, the last tie-break: it makes the order total
}

// size is the bytes own allocates for the entry.
func (e *entry) size() int64 {
	return int64(len(e.raw) + len(e.ns) + len(e.name) + len(e.key.s))
}

// own copies the entry's strings, which point into a chunk, into one
// allocation of its own, so the chunk can be freed as soon as Add returns.
func (e *entry) own() {
	var b strings.Builder
	b.Grow(len(e.raw) + len(e.ns) + len(e.name) + len(e.key.s))
	b.WriteString(e.raw)
	b.WriteString(e.ns)
	b.WriteString(e.name)
	b.WriteString(e.key.s)
	all := b.String()
	n := 0
	take := func(l int) string { s := all[n : n+l]; n += l; return s }
	e.raw = take(len(e.raw))
	e.ns = take(len(e.ns))
	e.name = take(len(e.name))
	e.key.s = take(len(e.key.s))
}

// makeKey converts the value found at the sort path.
func makeKey(v gjson.Result, found bool, fn SortFunc) sortKey {
	if !found {
		return sortKey{}
	}
	switch fn {
	case SortNumber:
		var s string
		switch v.Type {
		case gjson.Number:
			s = v.Raw
		case gjson.String:
			// Annotations and some status fields carry numbers as
			// strings; sorting them by value is what users want.
			s = v.Str
		default:
			return sortKey{}
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return sortKey{ok: true, isInt: true, i: i, f: float64(i)}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return sortKey{}
		}
		return sortKey{ok: true, f: f}
	case SortTime:
		if v.Type != gjson.String {
			return sortKey{}
		}
		// RFC3339Nano as a parse layout accepts an optional fraction of
		// any length and either Z or a ±hh:mm offset.
		t, err := time.Parse(time.RFC3339Nano, v.Str)
		if err != nil {
			return sortKey{}
		}
		return sortKey{ok: true, t: t}
	default:
		return sortKey{ok: true, s: text(v)}
	}
}

// compareKeys orders two present keys ascending.
func compareKeys(a, b *sortKey, fn SortFunc) int {
	switch fn {
	case SortNumber:
		if a.isInt && b.isInt {
			return cmp.Compare(a.i, b.i)
		}
		return cmp.Compare(a.f, b.f)
	case SortTime:
		return a.t.Compare(b.t)
	default:
		return strings.Compare(a.s, b.s)
	}
}

// order is the total order of the result: items with the key before items
// without it (in both directions, so a desc sort does not open with
// blanks), then by key in the requested direction, then by namespace and
// name, then by arrival, which makes it stable.
type order struct {
	fn   SortFunc
	desc bool
}

func (o order) compare(a, b *entry) int {
	if a.key.ok != b.key.ok {
		if a.key.ok {
			return -1
		}
		return 1
	}
	if a.key.ok {
		c := compareKeys(&a.key, &b.key, o.fn)
		if o.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	if c := strings.Compare(a.ns, b.ns); c != 0 {
		return c
	}
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.src, b.src); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// The kept items form a max-heap under order once the page window is full:
// the root is the worst kept item, the one a better newcomer replaces.
// This keeps only pageNum*pageSize items in memory, not the whole list.

func (o order) heapify(h []entry) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		o.siftDown(h, i)
	}
}

func (o order) siftDown(h []entry, i int) {
	for {
		worst := i
		l, r := 2*i+1, 2*i+2
		if l < len(h) && o.compare(&h[l], &h[worst]) > 0 {
			worst = l
		}
		if r < len(h) && o.compare(&h[r], &h[worst]) > 0 {
			worst = r
		}
		if worst == i {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}
