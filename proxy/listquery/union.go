package listquery

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// A union is the list of several sources — Berth's fleet path lists one
// collection on many clusters — filtered, sorted and paged as one list.
// Each source gets its own Collector, tagged with the source's name
// (WithTag), all built from the same Query; Merge then answers the union.
// A source that fails is simply left out of Merge: its items never mixed
// with the others', so nothing of it has to be taken back.

// Tag is the annotation every item of one source of a union carries: key
// (berth.dev/cluster) set to Value (the cluster's name) in the item's
// metadata.annotations, replacing whatever the source said under that
// key, so a source cannot pass its items off as another's. Selectors and
// sorts address it as metadata.annotations.<key> and see Value.
type Tag struct {
	Key, Value string

	path   string // metadata.annotations.<Key>, as a selector spells it
	member string // "<Key>":"<Value>", JSON
}

// NewTag makes the tag for one source.
func NewTag(key, value string) *Tag {
	k, _ := json.Marshal(key)
	v, _ := json.Marshal(value)
	return &Tag{Key: key, Value: value, path: "metadata.annotations." + key, member: string(k) + ":" + string(v)}
}

// errTagging: an item's metadata could not be found where gjson placed it,
// or the item has a member a decoder could read in place of the tagged one
// (see twice).
var errTagging = errors.New("item metadata could not be annotated")

// apply returns obj, the raw JSON of an object, with the tag set in its
// metadata.annotations (made if absent).
func (t *Tag) apply(obj string) (string, error) {
	root := rootOf(obj)
	if twice(root, "metadata") {
		return "", errTagging
	}
	meta := root.Get("metadata")
	switch {
	case !meta.Exists():
		rest := obj[1:]
		sep := ","
		if skipWS(obj, 1) < len(obj) && obj[skipWS(obj, 1)] == '}' {
			sep = ""
		}
		return `{"metadata":{"annotations":{` + t.member + `}}` + sep + rest, nil
	case meta.Index <= 0 || meta.Index+len(meta.Raw) > len(obj):
		return "", errTagging
	case !meta.IsObject():
		return splice(obj, meta, `{"annotations":{`+t.member+`}}`), nil
	}
	if twice(meta, "annotations") {
		return "", errTagging
	}
	ann := meta.Get("annotations")
	// gjson places a member found from a member by its offset in the
	// outermost text: make it relative to meta's.
	ann.Index -= meta.Index
	var newMeta string
	switch {
	case !ann.Exists():
		sep := ","
		if at := skipWS(meta.Raw, 1); at < len(meta.Raw) && meta.Raw[at] == '}' {
			sep = ""
		}
		newMeta = `{"annotations":{` + t.member + `}` + sep + meta.Raw[1:]
	case ann.Index <= 0 || ann.Index+len(ann.Raw) > len(meta.Raw):
		return "", errTagging
	case !ann.IsObject():
		newMeta = splice(meta.Raw, ann, `{`+t.member+`}`)
	default:
		var b strings.Builder
		b.Grow(len(ann.Raw) + len(t.member) + 1)
		b.WriteByte('{')
		b.WriteString(t.member)
		ann.ForEach(func(k, v gjson.Result) bool {
			if k.Str != t.Key {
				b.WriteByte(',')
				b.WriteString(k.Raw)
				b.WriteByte(':')
				b.WriteString(v.Raw)
			}
			return true
		})
		b.WriteByte('}')
		newMeta = splice(meta.Raw, ann, b.String())
	}
	return splice(obj, meta, newMeta), nil
}

// applyRow tags a Table row's object, if it has one.
func (t *Tag) applyRow(row string) (string, error) {
	r := rootOf(row)
	if twice(r, "object") {
		return "", errTagging
	}
	obj := r.Get("object")
	if !obj.IsObject() {
		return row, nil
	}
	if obj.Index <= 0 || obj.Index+len(obj.Raw) > len(row) {
		return "", errTagging
	}
	tagged, err := t.apply(obj.Raw)
	if err != nil {
		return "", err
	}
	return splice(row, obj, tagged), nil
}

// twice reports whether obj has more than one member named key, in any
// case. gjson reads the first; encoding/json (which also matches names
// case-insensitively), client-go and JSON.parse keep the last; so the tag
// set in the first would not be what a client reads. The kube-apiserver
// never sends such JSON, but an aggregated API server's bytes pass through
// it untouched.
func twice(obj gjson.Result, key string) bool {
	n := 0
	obj.ForEach(func(k, _ gjson.Result) bool {
		if strings.EqualFold(k.Str, key) {
			n++
		}
		return n < 2
	})
	return n > 1
}

// splice replaces v, a value found in s, with with.
func splice(s string, v gjson.Result, with string) string {
	return s[:v.Index] + with + s[v.Index+len(v.Raw):]
}

// WithTag makes c one source of a union: its items are tagged with t (see
// Tag). It returns c.
func (c *Collector) WithTag(t *Tag) *Collector {
	c.tag = t
	return c
}

// Seen returns how many items the collector has read, matching or not,
// so a caller can bound the items of a whole union.
func (c *Collector) Seen() int { return c.seen }

// Merge answers the union of parts, Collectors of one Query that have each
// taken their source's last chunk: the first part's List (its kind,
// apiVersion and other members) with metadata replaced by meta (raw JSON;
// "" keeps the first part's), the requested page of all parts' matching
// items in the Query's order, and total counting them all. Ties between
// sources are broken by the tag's value, so the order does not depend on
// which source answered first. The parts' bytes move to the answer: after
// Merge they hold nothing, and the first part holds the body (see Held).
// Merge uses the first part's context and Budget.
func Merge(parts []*Collector, meta string) ([]byte, error) {
	if len(parts) == 0 {
		return nil, errors.New("listquery: Merge of no parts")
	}
	lead := parts[0]
	n, total := 0, 0
	for i, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		if !p.done {
			return nil, fmt.Errorf("listquery: Merge: part %d has not taken its last chunk", i)
		}
		n += len(p.kept)
		total += p.total
	}
	if err := lead.take(int64(n) * entryBytes); err != nil {
		return nil, err
	}
	all := make([]entry, 0, n)
	for _, p := range parts {
		all = append(all, p.kept...)
		// The array goes; the items' bytes stay with their part until
		// the body holds copies.
		p.give(int64(cap(p.kept)) * entryBytes)
		p.kept = nil
	}
	if err := sortEntries(lead, lead.ord, all); err != nil {
		return nil, err
	}
	var page []entry
	if lead.offset < len(all) {
		page = all[lead.offset:min(len(all), lead.keep)]
	}
	header := lead.header
	if meta != "" {
		// The union's List is the first source's kind and apiVersion (and
		// a Table's columns), its list, and meta: nothing else of one
		// source's List, which could otherwise forge the union's
		// metadata or slip in items under a member a decoder reads as
		// metadata or items (escaped, or in another case).
		header = make([]field, 0, 5)
		for _, f := range lead.header {
			switch k := gjson.Parse(f.key).Str; {
			case f.list, k == "kind", k == "apiVersion", lead.table && k == "columnDefinitions":
				header = append(header, f)
			}
		}
		header = append(header, field{key: `"metadata"`, value: meta})
	}
	body, size, err := lead.build(header, page, total)
	if err != nil {
		return nil, err
	}
	// The body holds copies: everything else every part holds goes back.
	for _, p := range parts {
		keep := int64(0)
		if p == lead {
			keep = size
		}
		p.give(p.held - keep)
		p.header = nil
	}
	lead.result = body
	return body, nil
}

// Apply returns obj, the raw JSON of one object, with t set in its
// metadata.annotations, as a union's items get it: for watch events.
func (t *Tag) Apply(obj string) (string, error) { return t.apply(obj) }

// MatchTagged reports whether object, one JSON object of the union source
// tagged t (nil: no union), satisfies every term.
func (s Selector) MatchTagged(object string, t *Tag) bool {
	return s.matchTagged(rootOf(object), t)
}

// Everything is the Query of a union asked for without list parameters:
// every item, in the default order, on one page. NewCollector bounds the
// page by Limits.MaxItems.
func Everything() *Query {
	fp, _ := compilePath(DefaultSortName)
	return &Query{PageSize: 999_999_999, PageNum: 1, SortName: DefaultSortName, SortOrder: Asc, SortFunc: SortString, sortPath: &fp}
}
