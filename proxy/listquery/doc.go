// Package listquery filters, sorts and pages Kubernetes List responses for
// Berth's cluster proxy, with KubeCube's query parameters:
//
//	selector=metadata.labels.app.kubernetes.io/name=web,status.phase!=Failed
//	sortName=metadata.creationTimestamp&sortOrder=desc&sortFunc=time
//	pageSize=20&pageNum=3
//
// The proxy calls Parse on the request's query. A nil Query means none of
// the six parameters is present: the request is forwarded untouched, so a
// plain `kubectl get -o json` is never cut to a page. Otherwise the proxy
// removes the parameters (StripParams), fetches the whole list in chunks
// (limit/continue), feeds every chunk body to a Collector and answers with
// Collector.Result. The package does no HTTP.
//
// # Selector
//
// Terms are separated by commas and must all hold. key=v is exact (key==v
// is accepted too), key~v is a case-insensitive substring, key!=v is "not
// equal". v1|v2 inside a term means any of them (for != : none of them).
// There is no escaping: values cannot contain ',' or '|'. Whitespace
// around terms, keys and values is ignored.
//
// A selector has at most 16 terms, 32 ~ values in all (v1|v2 is two), 256
// bytes per value and 4 096 bytes of text; past any bound Parse returns a
// *ParamError naming it. Each ~ value reads every field it is compared
// with, so these bounds cap the work per list at a small multiple of
// reading it; = and != values only compare for equality.
//
// ~ runs in time linear in the text: the value is lower-cased once and
// searched with Knuth–Morris–Pratt over the lower-cased text (ASCII text is
// folded byte by byte, without a copy). A value that almost matches at
// every offset, like aaa…ab in a field of aaa…, costs no more than any
// other; the search it replaced tried every offset and cost text × value.
//
// Keys are dotted JSON paths from the object root: metadata.name,
// spec.nodeName, status.phase. After a "labels" or "annotations" segment
// the rest of the key is one map key, so
// metadata.labels.app.kubernetes.io/name works. When a path crosses an
// array it reaches every element (spec.containers.image~nginx matches when
// any container's image does); an all-digit segment on an array picks one
// element (spec.containers.0.name). A path ending at an array reaches its
// elements (metadata.finalizers=foo).
//
// Values are compared on their JSON text: a string's decoded value, the
// raw JSON of anything else, so spec.replicas=3 and spec.paused=true work
// (3.0 and 3 differ, as their text does). An object is compared on its raw
// JSON text.
//
// Missing fields follow Kubernetes selectors: a missing (or null) field
// equals no value, so key=v fails and key!=v holds. The empty value is the
// exception and stands for "missing or empty": key= matches objects
// without the field or with "", and key!= matches objects with a
// non-empty value (like spec.nodeName= for unscheduled pods), and key~
// matches everything, so a console's empty search box filters nothing.
//
// # Sort
//
// sortName is a path as above (default metadata.name); when it crosses an
// array the first value reached is used. sortOrder is asc (default) or
// desc. sortFunc is string (default; byte-wise on the JSON text), number
// (JSON numbers or strings holding one, integers compared exactly, others
// as float64) or time (RFC 3339 strings, with fractions and offsets,
// compared as instants). Items whose field is missing, null, or not
// parseable for the sort function come last in both orders. Ties are
// broken by namespace, then name (both ascending), then upstream order, so
// the order is total and stable and pages never overlap.
//
// # Page
//
// pageSize (default 10, at most ParseOptions.MaxPageSize) items from page
// pageNum (default 1). A page past the end is empty, not an error; total
// still counts the matches.
//
// # Tables
//
// For kind Table (Accept: application/json;as=Table;g=meta.k8s.io;v=v1)
// the rows are filtered, sorted and paged instead of items, and paths are
// evaluated on each row's "object". By default that object is only
// PartialObjectMetadata (metadata fields work); fields such as
// status.phase need the request to carry includeObject=Object. Rows
// without an object have every field missing. columnDefinitions are kept.
//
// # Memory
//
// Items are never decoded into maps (a decoded pod costs several times its
// JSON). Each item stays raw JSON, fields are read from it with gjson, items
// failing the selector are dropped on arrival, and only the best
// pageNum×pageSize matches are kept (a bounded heap), so the first pages of
// a large list need little more than one chunk's memory. Limits caps the
// total bytes and items (ErrTooLarge).
//
// A caller bounding the memory of many lists at once gives each Collector
// a Budget (WithBudget): the Collector takes bytes from it before it keeps
// them — an item's copy, a larger array of kept items, the response — and
// gives them back when it lets them go, and fails with the Budget's error
// when refused. The proxy takes its chunk buffers from the same Budget.
//
// # Stopping
//
// A Collector given a context (WithContext) checks it before every item
// and every 1 024 steps of the final sort (a heapsort, so it can stop half
// way), and fails with an error wrapping context.Cause. The proxy cancels
// the context when the client disconnects or the list's time budget is
// spent, so no CPU is spent on a list nobody will read.
package listquery
