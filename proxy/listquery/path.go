package listquery

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Limits on field paths. They bound the work one selector term or sort key
// can cause per item; real Kubernetes paths are far shorter.
const (
	maxPathLen      = 512
	maxPathSegments = 32
)

// mapKeyParents are the segments after which the rest of a path is one map
// key. Label and annotation keys routinely contain dots
// (app.kubernetes.io/name), and KubeCube users write them unescaped.
var mapKeyParents = [...]string{"labels", "annotations"}

// pathSeg is one compiled path segment.
type pathSeg struct {
	name string
	// plain is true when name can be handed to gjson as a path verbatim:
	// it holds no character gjson gives a meaning to (dots, wildcards,
	// modifiers, escapes). Other names are found by scanning the object's
	// keys, so user input never reaches gjson's path language.
	plain bool
	// index is the array index the segment names when it is all digits,
	// or -1. It only matters when the value being walked is an array.
	index int
}

// fieldPath is a parsed dotted path such as metadata.labels.app.kubernetes.io/name.
type fieldPath struct {
	text string
	segs []pathSeg
}

// splitPath splits a dotted key into segments. After a "labels" or
// "annotations" segment the rest of the key is one segment, so for every
// key it accepts strings.Join(segments, ".") == key. Errors are plain
// (the caller knows which parameter the key came from).
func splitPath(key string) ([]string, error) {
	if key == "" {
		return nil, errors.New("empty path")
	}
	if len(key) > maxPathLen {
		return nil, fmt.Errorf("path longer than %d bytes", maxPathLen)
	}
	if !utf8.ValidString(key) {
		return nil, errors.New("path is not valid UTF-8")
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("path contains a space or control character at byte %d", i)
		}
		if strings.IndexByte(",|=~!", c) >= 0 {
			return nil, fmt.Errorf("path contains %q", c)
		}
	}
	var segs []string
	rest := key
	for {
		if len(segs) == maxPathSegments {
			return nil, fmt.Errorf("path has more than %d segments", maxPathSegments)
		}
		if len(segs) > 0 && isMapKeyParent(segs[len(segs)-1]) {
			// The rest, dots included, is one label or annotation key.
			segs = append(segs, rest)
			return segs, nil
		}
		seg, after, more := strings.Cut(rest, ".")
		if seg == "" {
			return nil, errors.New("path has an empty segment")
		}
		segs = append(segs, seg)
		if !more {
			return segs, nil
		}
		if after == "" {
			return nil, errors.New("path ends with a dot")
		}
		rest = after
	}
}

// joinPath is the inverse of splitPath.
func joinPath(segs []string) string { return strings.Join(segs, ".") }

func isMapKeyParent(seg string) bool {
	for _, p := range mapKeyParents {
		if seg == p {
			return true
		}
	}
	return false
}

// compilePath parses key and precomputes what walking it needs.
func compilePath(key string) (fieldPath, error) {
	names, err := splitPath(key)
	if err != nil {
		return fieldPath{}, err
	}
	fp := fieldPath{text: key, segs: make([]pathSeg, len(names))}
	for i, n := range names {
		fp.segs[i] = pathSeg{name: n, plain: gjson.Escape(n) == n, index: arrayIndex(n)}
	}
	return fp, nil
}

// arrayIndex returns the index a segment of at most 9 digits names, or -1.
func arrayIndex(s string) int {
	if len(s) == 0 || len(s) > 9 {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// rootOf wraps one item's raw JSON for walking without copying it.
func rootOf(raw string) gjson.Result {
	return gjson.Result{Type: gjson.JSON, Raw: raw}
}

// walk calls fn for every value the path reaches from cur, stopping early
// when fn returns false; it returns false if it was stopped. Arrays met on
// the way (or at the end) fan out to their elements, so a path that
// crosses an array reaches every element's value; a digit segment applied
// to an array selects that one element instead. JSON null is treated like
// a missing field, as Kubernetes treats an omitted and a null field alike.
func walk(cur gjson.Result, segs []pathSeg, fn func(gjson.Result) bool) bool {
	switch {
	case !cur.Exists() || cur.Type == gjson.Null:
		return true
	case cur.IsArray():
		if len(segs) > 0 && segs[0].index >= 0 {
			return walk(cur.Get(segs[0].name), segs[1:], fn)
		}
		cont := true
		cur.ForEach(func(_, v gjson.Result) bool {
			cont = walk(v, segs, fn)
			return cont
		})
		return cont
	case len(segs) == 0:
		return fn(cur)
	case cur.IsObject():
		return walk(lookup(cur, segs[0]), segs[1:], fn)
	default:
		// A scalar with path left over: the field is missing.
		return true
	}
}

// lookup returns the member of obj named by seg.
func lookup(obj gjson.Result, seg pathSeg) gjson.Result {
	if seg.plain {
		return obj.Get(seg.name)
	}
	var found gjson.Result
	obj.ForEach(func(k, v gjson.Result) bool {
		if k.Str == seg.name {
			found = v
			return false
		}
		return true
	})
	return found
}

// first returns the first value the path reaches, if any.
func first(root gjson.Result, fp fieldPath) (gjson.Result, bool) {
	var res gjson.Result
	ok := false
	walk(root, fp.segs, func(v gjson.Result) bool {
		res, ok = v, true
		return false
	})
	return res, ok
}

// text is the JSON text a value is compared on: the decoded value of a
// string, the raw JSON of anything else (numbers, booleans, objects).
func text(v gjson.Result) string {
	if v.Type == gjson.String {
		return v.Str
	}
	return v.Raw
}
