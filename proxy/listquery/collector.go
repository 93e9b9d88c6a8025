package listquery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Errors from the Collector. They are wrapped with context; test them with
// errors.Is.
var (
	// ErrTooLarge means the list exceeded Limits; the proxy answers 413
	// and tells the user to narrow the request (a namespace, a
	// labelSelector or fieldSelector the apiserver applies itself).
	ErrTooLarge = errors.New("list too large to sort and page")
	// ErrMalformed means an upstream chunk was not a well-formed list
	// (invalid JSON, items not an array, an item not an object, chunks of
	// different kinds); the proxy answers 502.
	ErrMalformed = errors.New("malformed list from upstream")
	// ErrNotList means the first chunk is valid JSON but not a list (a
	// single object, or a Status): the request was not a list call, and
	// the proxy can pass the body on unchanged.
	ErrNotList = errors.New("upstream response is not a list")
)

// Limits bound what a Collector accepts, so one list call cannot exhaust
// the gateway's memory. A zero or negative field means no limit.
type Limits struct {
	// MaxBytes caps the total size of the raw chunk bodies.
	MaxBytes int64
	// MaxItems caps the number of items seen, before filtering.
	MaxItems int
}

// Budget accounts for the memory a Collector holds, so that a caller can
// bound the bytes of every list it processes at once rather than of each
// list alone. The Collector calls Take before it keeps bytes (an item's
// copy, a larger array of kept items, the response) and Give when it lets
// them go (an item pushed out of the page window, the items once the
// response is built). The bytes counted are those the Collector keeps
// reachable; garbage not yet collected is the runtime's to bound.
type Budget interface {
	// Take reserves n more bytes, or refuses them with an error that the
	// Collector returns (wrapped) and keeps, failing the list.
	Take(n int64) error
	// Give returns n bytes taken before.
	Give(n int64)
}

// field is one top-level member of the first chunk, kept for the output.
type field struct {
	key   string // raw JSON of the key, quotes included
	value string // raw JSON of the value
	list  bool   // the items (or rows) member, replaced by the page
}

// Collector consumes the successive chunks of one paginated List and
// produces the filtered, sorted page. Items that fail the selector are
// dropped as they arrive, and only the best pageNum×pageSize matching
// items are kept, each as its raw JSON; nothing is decoded into maps. A
// Collector is for one list call and is not safe for concurrent use.
type Collector struct {
	sel   Selector
	path  fieldPath
	ord   order
	lim   Limits
	table bool

	offset int // index of the page's first item in the sorted result
	keep   int // items kept: offset+PageSize, or fewer when the limit bounds the list
	kept   []entry

	err    error // sticky: once a chunk fails, the collector stays failed
	chunks int
	bytes  int64
	seen   int
	total  int
	done   bool

	kind   string
	header []field

	quit <-chan struct{} // the context's Done channel, nil for none
	ctx  context.Context // set by WithContext
	mem  Budget          // set by WithBudget; nil: nothing is counted
	held int64           // bytes taken from mem and not given back
	tag  *Tag            // set by WithTag, for one source of a union

	result []byte // the body, once Result has built it
}

// WithContext makes the collector stop when ctx ends: Add checks it before
// every item and Result while sorting, and they fail with an error that
// wraps context.Cause(ctx). A caller whose client has gone, or whose time
// budget is spent, cancels ctx and the CPU work stops at the next item.
// It returns c.
func (c *Collector) WithContext(ctx context.Context) *Collector {
	c.ctx, c.quit = ctx, ctx.Done()
	return c
}

// WithBudget makes the collector account the bytes it holds to b (see
// Budget). It returns c.
func (c *Collector) WithBudget(b Budget) *Collector {
	c.mem = b
	return c
}

// stopped returns the context's cause, wrapped, once it has ended.
func (c *Collector) stopped() error {
	if c.quit == nil {
		return nil
	}
	select {
	case <-c.quit:
		return fmt.Errorf("listquery: stopped: %w", context.Cause(c.ctx))
	default:
		return nil
	}
}

func (c *Collector) take(n int64) error {
	if c.mem == nil || n <= 0 {
		return nil
	}
	if err := c.mem.Take(n); err != nil {
		return fmt.Errorf("listquery: %w", err)
	}
	c.held += n
	return nil
}

func (c *Collector) give(n int64) {
	if c.mem == nil || n <= 0 {
		return
	}
	c.mem.Give(n)
	c.held -= n
}

// NewCollector prepares to collect a list for q, which must not be nil
// (Parse returns nil exactly when the list is to be passed through). A
// Query that Parse did not produce is validated here; if it is invalid,
// the first Add returns the *ParamError.
func NewCollector(q *Query, lim Limits) *Collector {
	c := &Collector{sel: q.Selector, lim: lim}
	size, num := q.PageSize, q.PageNum
	if size <= 0 {
		size = DefaultPageSize
	}
	if num <= 0 {
		num = DefaultPageNum
	}
	// Parse allows at most 9 digits; clamping a hand-made Query the same
	// way keeps the int64 arithmetic below from overflowing.
	const maxN = 999_999_999
	size, num = min(size, maxN), min(num, maxN)
	off := (int64(num) - 1) * int64(size)
	keep := off + int64(size)
	if lim.MaxItems > 0 && keep > int64(lim.MaxItems) {
		keep = int64(lim.MaxItems) // more items than that fail with ErrTooLarge anyway
	}
	if keep <= off || off > math.MaxInt {
		// The page lies past the end of any list we accept: keep
		// nothing, only count.
		keep, off = 0, math.MaxInt
	}
	c.offset, c.keep = int(off), int(max(keep, 0))
	switch {
	case q.sortPath != nil:
		c.path = *q.sortPath
	default:
		name := q.SortName
		if name == "" {
			name = DefaultSortName
		}
		fp, err := compilePath(name)
		if err != nil {
			c.err = paramErr(ParamSortName, "%v", err)
		}
		c.path = fp
	}
	c.ord.fn = q.SortFunc
	switch q.SortFunc {
	case "":
		c.ord.fn = SortString
	case SortString, SortNumber, SortTime:
	default:
		c.err = paramErr(ParamSortFunc, "%s is not string, number or time", quote(string(q.SortFunc)))
	}
	switch q.SortOrder {
	case "", Asc:
	case Desc:
		c.ord.desc = true
	default:
		c.err = paramErr(ParamSortOrder, "%s is not asc or desc", quote(string(q.SortOrder)))
	}
	return c
}

func (c *Collector) fail(err error) (string, error) {
	c.err = err
	return "", err
}

// Add consumes the raw JSON body of the next List chunk and returns its
// metadata.continue token: the caller fetches the next chunk with it, or
// stops when it is "". body must not change while Add runs; Add keeps no
// reference to it, so the caller may reuse the buffer (as fasthttp does)
// once Add returns. After an error the Collector
// is spent and returns the same error again.
func (c *Collector) Add(body []byte) (next string, err error) {
	if c.err != nil {
		return "", c.err
	}
	if c.done {
		return c.fail(errors.New("listquery: Add called after the last chunk"))
	}
	if err := c.stopped(); err != nil {
		return c.fail(err)
	}
	n := c.chunks
	c.chunks++
	c.bytes += int64(len(body))
	if c.lim.MaxBytes > 0 && c.bytes > c.lim.MaxBytes {
		return c.fail(fmt.Errorf("listquery: chunk %d: %w: more than %d bytes", n, ErrTooLarge, c.lim.MaxBytes))
	}
	// Validate first: items are copied to the output as raw bytes, and a
	// broken upstream body must not become a broken response.
	if !gjson.ValidBytes(body) {
		return c.fail(fmt.Errorf("listquery: chunk %d: %w: not valid JSON", n, ErrMalformed))
	}
	// View the chunk as a string without copying it: a copy would double
	// the bytes allocated per list (40 MB for 10 000 pods) and the GC work
	// with them. This is sound because the caller does not modify body
	// while Add runs and nothing that outlives Add points into it: every
	// string kept (items in entry.own, the header, kind, the continue
	// token) is copied first. TestBufferReuse and FuzzCollector overwrite
	// the buffer after Add to hold this line.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return c.fail(fmt.Errorf("listquery: chunk %d: %w: not a JSON object", n, ErrMalformed))
	}
	kind := root.Get("kind").Str
	listKey := "items"
	if n == 0 {
		if kind == "Status" {
			return c.fail(fmt.Errorf("listquery: %w: got a Status: %s", ErrNotList, quote(root.Get("message").Str)))
		}
		c.kind = strings.Clone(kind) // a substring would pin the whole first chunk
		c.table = kind == "Table"
		if c.table {
			listKey = "rows"
		}
		if err := c.keepHeader(root, listKey); err != nil {
			return c.fail(err)
		}
	} else {
		if kind != c.kind {
			return c.fail(fmt.Errorf("listquery: chunk %d: %w: kind %s, the first chunk was %s", n, ErrMalformed, quote(kind), quote(c.kind)))
		}
		if c.table {
			listKey = "rows"
		}
	}
	switch at := memberStart(root.Raw, listKey); {
	case at < 0 || root.Raw[at] == 'n':
		// An empty list may be encoded as null; the header check above
		// already ensured the first chunk names the member.
	case root.Raw[at] != '[':
		return c.fail(fmt.Errorf("listquery: chunk %d: %w: %s is not an array", n, ErrMalformed, listKey))
	default:
		var ierr error
		arrayElements(root.Raw, at, func(raw string) bool {
			ierr = c.addItem(n, raw)
			return ierr == nil
		})
		if ierr != nil {
			return c.fail(ierr)
		}
	}
	meta := root.Get("metadata")
	if n == 0 && c.lim.MaxItems > 0 {
		// Fail before fetching more chunks when the apiserver already says
		// how many are left.
		if rem := meta.Get("remainingItemCount"); rem.Type == gjson.Number && int64(c.seen)+rem.Int() > int64(c.lim.MaxItems) {
			return c.fail(fmt.Errorf("listquery: %w: %d items, more than %d", ErrTooLarge, int64(c.seen)+rem.Int(), c.lim.MaxItems))
		}
	}
	next = meta.Get("continue").Str
	if next == "" {
		c.done = true
		return "", nil
	}
	// Clone: the token must not point into the caller's buffer.
	return strings.Clone(next), nil
}

// keepHeader stores the first chunk's top-level members for the output,
// without the list itself, an upstream "total" (ours replaces it), or the
// metadata members that describe the upstream paging.
func (c *Collector) keepHeader(root gjson.Result, listKey string) error {
	seenList := false
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case listKey:
			if !seenList {
				if err = c.take(int64(len(k.Raw))); err != nil {
					return false
				}
				c.header = append(c.header, field{key: strings.Clone(k.Raw), list: true})
				seenList = true
			}
		case "total":
		case "metadata":
			if !v.IsObject() {
				err = fmt.Errorf("listquery: chunk 0: %w: metadata is not an object", ErrMalformed)
				return false
			}
			f := field{key: strings.Clone(k.Raw), value: pagingFreeMeta(v)}
			if err = c.take(int64(len(f.key) + len(f.value))); err != nil {
				return false
			}
			c.header = append(c.header, f)
		default:
			if err = c.take(int64(len(k.Raw) + len(v.Raw))); err != nil {
				return false
			}
			c.header = append(c.header, field{key: strings.Clone(k.Raw), value: strings.Clone(v.Raw)})
		}
		return true
	})
	if err != nil {
		return err
	}
	if !seenList {
		return fmt.Errorf("listquery: %w: kind %s has no %q member", ErrNotList, quote(c.kind), listKey)
	}
	return nil
}

// pagingFreeMeta returns a List's metadata without continue and
// remainingItemCount: the response is complete, and passing the upstream
// token on would invite clients to fetch chunks Berth already merged.
func pagingFreeMeta(meta gjson.Result) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	meta.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "continue" || k.Str == "remainingItemCount" {
			return true
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k.Raw)
		b.WriteByte(':')
		b.WriteString(v.Raw)
		n++
		return true
	})
	b.WriteByte('}')
	return b.String()
}

// addItem filters one item and keeps it if it can still be on the page.
func (c *Collector) addItem(chunk int, raw string) error {
	if err := c.stopped(); err != nil {
		return err
	}
	c.seen++
	if c.lim.MaxItems > 0 && c.seen > c.lim.MaxItems {
		return fmt.Errorf("listquery: chunk %d: %w: more than %d items", chunk, ErrTooLarge, c.lim.MaxItems)
	}
	it := rootOf(raw)
	if raw[0] != '{' {
		return fmt.Errorf("listquery: chunk %d: %w: item %d is not an object", chunk, ErrMalformed, c.seen-1)
	}
	obj := it
	if c.table {
		// Fields are read from the row's object; without
		// includeObject=Object that is only PartialObjectMetadata, or
		// absent (then every field is missing).
		obj = it.Get("object")
		if !obj.IsObject() {
			obj = gjson.Result{}
		}
	}
	if !c.sel.matchTagged(obj, c.tag) {
		return nil
	}
	c.total++
	if c.keep == 0 {
		return nil
	}
	e := entry{raw: raw, seq: c.seen}
	if meta := obj.Get("metadata"); meta.IsObject() {
		e.ns = meta.Get("namespace").Str
		e.name = meta.Get("name").Str
	}
	if c.tag != nil && c.path.text == c.tag.path {
		e.key = makeKey(gjson.Result{Type: gjson.String, Str: c.tag.Value}, true, c.ord.fn)
	} else {
		v, found := first(obj, c.path)
		e.key = makeKey(v, found, c.ord.fn)
	}
	if c.tag != nil {
		e.src = c.tag.Value
		if len(c.kept) == c.keep && c.ord.compare(&e, &c.kept[0]) >= 0 {
			return nil // not on the page: no need to tag it
		}
		tagged, err := c.tagItem(raw)
		if err != nil {
			return fmt.Errorf("listquery: chunk %d: %w: item %d: %v", chunk, ErrMalformed, c.seen-1, err)
		}
		// The tagged copy is the item's own already; own() copies it
		// once more with the keys, which keeps one code path.
		e.raw = tagged
	}
	switch {
	case len(c.kept) < c.keep:
		if len(c.kept) == cap(c.kept) {
			if err := c.growKept(); err != nil {
				return err
			}
		}
		if err := c.take(e.size()); err != nil {
			return err
		}
		e.own()
		c.kept = append(c.kept, e)
		if len(c.kept) == c.keep {
			c.ord.heapify(c.kept)
		}
	case c.ord.compare(&e, &c.kept[0]) < 0:
		if err := c.take(e.size()); err != nil {
			return err
		}
		e.own()
		c.give(c.kept[0].size())
		c.kept[0] = e
		c.ord.siftDown(c.kept, 0)
	}
	return nil
}

// entryBytes is what one slot of the kept array costs, besides the item.
const entryBytes = int64(unsafe.Sizeof(entry{}))

// growKept doubles the kept array (up to the page window), taking the new
// array's bytes from the budget before it exists and giving the old one's
// back once it is copied.
func (c *Collector) growKept() error {
	n := min(max(2*cap(c.kept), 64), c.keep)
	if err := c.take(int64(n) * entryBytes); err != nil {
		return err
	}
	grown := make([]entry, len(c.kept), n)
	copy(grown, c.kept)
	c.give(int64(cap(c.kept)) * entryBytes)
	c.kept = grown
	return nil
}

// Held returns the bytes the collector has taken from its Budget and not
// given back: while collecting, the kept items; after Result, the body it
// returned. A caller gives them back when it is done with the collector
// and the body.
func (c *Collector) Held() int64 { return c.held }

// Result returns the response body: the first chunk's List with metadata
// continue and remainingItemCount removed, the list member ("items", or
// "rows" for a Table) replaced by the requested page (always an array,
// [] past the end), and a top-level "total" counting the items that
// matched the selector, before paging. It fails if a chunk failed or the
// last chunk (empty continue token) has not been added.
func (c *Collector) Result() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if !c.done {
		return nil, errors.New("listquery: Result called before the last chunk was added")
	}
	if c.result != nil {
		return c.result, nil
	}
	if err := c.sortKept(); err != nil {
		c.err = err
		return nil, err
	}
	var page []entry
	if c.offset < len(c.kept) {
		page = c.kept[c.offset:]
	}
	body, _, err := c.build(c.header, page, c.total)
	if err != nil {
		c.err = err
		return nil, err
	}
	// The body holds copies; the kept items and the header can go, and
	// their bytes with them. The body's stay taken (see Held).
	var kept int64
	for i := range c.kept {
		kept += c.kept[i].size()
	}
	for _, f := range c.header {
		kept += int64(len(f.key) + len(f.value))
	}
	c.give(kept + int64(cap(c.kept))*entryBytes)
	c.kept, c.header = nil, nil
	c.result = body
	return c.result, nil
}

// tagItem returns raw, an item (or a Table row), with c's tag set.
func (c *Collector) tagItem(raw string) (string, error) {
	if c.table {
		return c.tag.applyRow(raw)
	}
	return c.tag.apply(raw)
}

// build writes the answer: header's members with the list member filled
// with page, and total. The body's bytes are taken from the budget first;
// size is how many.
func (c *Collector) build(header []field, page []entry, total int) (body []byte, size int64, err error) {
	n := 64
	for _, f := range header {
		n += len(f.key) + len(f.value) + 2
	}
	for i := range page {
		n += len(page[i].raw) + 1
	}
	n += 20 // the total's digits
	if err := c.take(int64(n)); err != nil {
		return nil, 0, err
	}
	b := bytes.NewBuffer(make([]byte, 0, n))
	b.WriteByte('{')
	for i, f := range header {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.key)
		b.WriteByte(':')
		if !f.list {
			b.WriteString(f.value)
			continue
		}
		b.WriteByte('[')
		for j := range page {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(page[j].raw)
		}
		b.WriteByte(']')
	}
	if len(header) > 0 {
		b.WriteByte(',')
	}
	b.WriteString(`"total":`)
	b.WriteString(strconv.Itoa(total))
	b.WriteByte('}')
	return b.Bytes(), int64(n), nil
}

// sortKept sorts the kept items by c.ord with a heapsort, checking between
// steps whether the context ended: the sort is O(n log n) like any other,
// but it stops within a thousand steps when the client has left.
func (c *Collector) sortKept() error { return sortEntries(c, c.ord, c.kept) }

// sortEntries heapsorts h by ord, stopping when c's context ends.
func sortEntries(c *Collector, ord order, h []entry) error {
	if err := c.stopped(); err != nil {
		return err
	}
	ord.heapify(h) // the worst item at the root
	for end := len(h) - 1; end > 0; end-- {
		if end%1024 == 0 {
			if err := c.stopped(); err != nil {
				return err
			}
		}
		h[0], h[end] = h[end], h[0]
		ord.siftDown(h[:end], 0)
	}
	return nil
}
