package listquery

import (
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Bounds on a selector. Every item of a list is checked against every
// value of every term, and a ~ value scans the field's whole text, so the
// work per list is about (number of values) × (bytes of the list): these
// bounds keep it a small multiple of reading the list once. Consoles send
// a handful of short terms; a request over a bound is a 400 naming it.
const (
	// maxSelectorLen bounds the selector text as a whole.
	maxSelectorLen = 4096
	// maxTerms bounds the comma-separated terms.
	maxTerms = 16
	// maxFuzzyValues bounds the values of all ~ terms together (v1|v2
	// is two): each reads every field it is compared with. Values of =
	// and != are compared for equality, which costs little, so only the
	// selector's length bounds them (consoles send long name|name|…
	// lists).
	maxFuzzyValues = 32
	// maxValueLen bounds one value, in bytes. Names, labels and images
	// are far shorter; a long ~ value is a search no console makes.
	maxValueLen = 256
)

// op is a selector term's comparison.
type op uint8

const (
	opEq    op = iota // key=v (also key==v, as in Kubernetes label selectors)
	opNotEq           // key!=v
	opFuzzy           // key~v
)

// term is one comparison of a selector.
type term struct {
	path   fieldPath
	op     op
	values []string     // as written
	folded []foldNeedle // for opFuzzy, the values prepared for a linear search; nil otherwise
	// emptyAlt is true when one of the values is "". The empty value also
	// matches a missing (or null) field, so key= finds objects without the
	// field (like Kubernetes' spec.nodeName= finds unscheduled pods) and
	// key!= finds objects that have a non-empty value.
	emptyAlt bool
}

// Selector is a parsed selector parameter: terms that must all hold. The
// zero Selector matches every object. Build one with ParseSelector (or
// Parse): its fields are compiled and not meant to be assembled by hand.
type Selector struct {
	terms []term
}

// ParseSelector parses KubeCube-style selector text: comma-separated terms
// key=v (exact), key~v (case-insensitive substring) and key!=v (not
// equal), ANDed; v1|v2 inside a term means any of them. Whitespace around
// terms, keys and values is ignored (inside a value it is kept). The error
// is always a *ParamError for the "selector" parameter.
func ParseSelector(s string) (Selector, error) {
	if len(s) > maxSelectorLen {
		return Selector{}, paramErr(ParamSelector, "longer than %d bytes", maxSelectorLen)
	}
	if !utf8.ValidString(s) {
		return Selector{}, paramErr(ParamSelector, "not valid UTF-8")
	}
	if strings.TrimSpace(s) == "" {
		return Selector{}, paramErr(ParamSelector, "empty selector")
	}
	if n := strings.Count(s, ",") + 1; n > maxTerms {
		return Selector{}, paramErr(ParamSelector, "%d terms; at most %d are allowed", n, maxTerms)
	}
	var sel Selector
	fuzzy := 0
	for raw := range strings.SplitSeq(s, ",") {
		t, err := parseTerm(raw)
		if err != nil {
			return Selector{}, err
		}
		if t.op == opFuzzy {
			if fuzzy += len(t.values); fuzzy > maxFuzzyValues {
				return Selector{}, paramErr(ParamSelector, "more than %d values in all ~ terms together (v1|v2 counts as two)", maxFuzzyValues)
			}
		}
		sel.terms = append(sel.terms, t)
	}
	return sel, nil
}

func parseTerm(raw string) (term, error) {
	tt := strings.TrimSpace(raw)
	if tt == "" {
		return term{}, paramErr(ParamSelector, "empty term (two commas in a row, or a leading or trailing comma)")
	}
	i, o, width := findOp(tt)
	if i < 0 {
		return term{}, paramErr(ParamSelector, "term %s has no operator (=, != or ~)", quote(tt))
	}
	key := strings.TrimSpace(tt[:i])
	if key == "" {
		return term{}, paramErr(ParamSelector, "term %s has no key", quote(tt))
	}
	fp, err := compilePath(key)
	if err != nil {
		return term{}, paramErr(ParamSelector, "term %s: key: %v", quote(tt), err)
	}
	t := term{path: fp, op: o, values: strings.Split(tt[i+width:], "|")}
	for j, v := range t.values {
		v = strings.TrimSpace(v)
		t.values[j] = v
		if len(v) > maxValueLen {
			return term{}, paramErr(ParamSelector, "term %s: a value is longer than %d bytes", quote(key), maxValueLen)
		}
		if v == "" {
			t.emptyAlt = true
		}
	}
	if o == opFuzzy {
		t.folded = make([]foldNeedle, len(t.values))
		for j, v := range t.values {
			t.folded[j] = newFoldNeedle(v)
		}
	}
	return t, nil
}

// findOp finds the first operator in a term: its byte offset, kind and
// width, or -1. Keys cannot contain '=', '~' or '!', so the first operator
// character ends the key and everything after the operator is the value.
func findOp(t string) (int, op, int) {
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '=':
			if i+1 < len(t) && t[i+1] == '=' {
				return i, opEq, 2
			}
			return i, opEq, 1
		case '~':
			return i, opFuzzy, 1
		case '!':
			if i+1 < len(t) && t[i+1] == '=' {
				return i, opNotEq, 2
			}
		}
	}
	return -1, 0, 0
}

// String returns the selector in canonical form: ParseSelector(s.String())
// yields a Selector equal to s.
func (s Selector) String() string {
	var b strings.Builder
	for i, t := range s.terms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.path.text)
		switch t.op {
		case opEq:
			// A value starting with '=' would be read back as part of
			// "==", so spell the operator out in full then.
			if strings.HasPrefix(t.values[0], "=") {
				b.WriteString("==")
			} else {
				b.WriteByte('=')
			}
		case opNotEq:
			b.WriteString("!=")
		case opFuzzy:
			b.WriteByte('~')
		}
		b.WriteString(strings.Join(t.values, "|"))
	}
	return b.String()
}

// Empty reports whether the selector has no terms and so matches everything.
func (s Selector) Empty() bool { return len(s.terms) == 0 }

// Matches reports whether one JSON object satisfies every term. It copies
// object once; the collector uses the copy-free internal form.
func (s Selector) Matches(object []byte) bool {
	return s.match(rootOf(string(object)))
}

func (s Selector) match(root gjson.Result) bool { return s.matchTagged(root, nil) }

// matchTagged is match for an item of a union, whose tag's field (the
// cluster annotation) has the tag's value whatever the item says.
func (s Selector) matchTagged(root gjson.Result, tg *Tag) bool {
	for i := range s.terms {
		t := &s.terms[i]
		if tg != nil && t.path.text == tg.path {
			hit := t.matchText(tg.Value)
			if t.op == opNotEq {
				hit = !hit
			}
			if !hit {
				return false
			}
			continue
		}
		if !t.match(root) {
			return false
		}
	}
	return true
}

// match evaluates one term. Where the path crosses arrays, = and ~ hold
// when any reached value matches; != is the negation of = (no reached value
// equals any alternative), so a missing field is != every non-empty value,
// as in Kubernetes field and label selectors.
func (t *term) match(root gjson.Result) bool {
	found, hit := false, false
	walk(root, t.path.segs, func(v gjson.Result) bool {
		found = true
		if t.matchText(text(v)) {
			hit = true
			return false
		}
		return true
	})
	if !found {
		hit = t.emptyAlt
	}
	if t.op == opNotEq {
		return !hit
	}
	return hit
}

func (t *term) matchText(s string) bool {
	if t.op == opFuzzy {
		ft := foldText(s)
		for i := range t.folded {
			if t.folded[i].in(ft) {
				return true
			}
		}
		return false
	}
	for _, v := range t.values {
		if s == v {
			return true
		}
	}
	return false
}
