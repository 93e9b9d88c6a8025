package listquery

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
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
				c.header = append(c.header, field{key: strings.Clone(k.Raw), list: true})
				seenList = true
			}
		case "total":
		case "metadata":
			if !v.IsObject() {
				err = fmt.Errorf("listquery: chunk 0: %w: metadata is not an object", ErrMalformed)
				return false
			}
			c.header = append(c.header, field{key: strings.Clone(k.Raw), value: pagingFreeMeta(v)})
		default:
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
	if !c.sel.match(obj) {
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
	v, found := first(obj, c.path)
	e.key = makeKey(v, found, c.ord.fn)
	switch {
	case len(c.kept) < c.keep:
		e.own()
		c.kept = append(c.kept, e)
		if len(c.kept) == c.keep {
			c.ord.heapify(c.kept)
		}
	case c.ord.compare(&e, &c.kept[0]) < 0:
		e.own()
		c.kept[0] = e
		c.ord.siftDown(c.kept, 0)
	}
	return nil
}

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
	slices.SortFunc(c.kept, func(a, b entry) int { return c.ord.compare(&a, &b) })
	var page []entry
	if c.offset < len(c.kept) {
		page = c.kept[c.offset:]
	}
	size := 64
	for _, f := range c.header {
		size += len(f.key) + len(f.value) + 2
	}
	for i := range page {
		size += len(page[i].raw) + 1
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteByte('{')
	for i, f := range c.header {
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
	if len(c.header) > 0 {
		b.WriteByte(',')
	}
	b.WriteString(`"total":`)
	b.WriteString(strconv.Itoa(c.total))
	b.WriteByte('}')
	return b.Bytes(), nil
}
