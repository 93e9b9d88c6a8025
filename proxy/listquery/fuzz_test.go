package listquery

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ as well as in f.Add, so
// `go test` replays them on every run. Run a campaign with e.g.
//
//	go test -run '^$' -fuzz '^FuzzParseSelector$' -fuzztime 30s ./proxy/listquery/

// FuzzParseSelector checks that the selector parser never panics, reports
// every failure as a *ParamError for "selector", and that String is a
// canonical form: parsing it gives the same selector and the same text.
// It also checks the != semantics on a real pod: a != term holds exactly
// when the same term with = does not.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{
		"metadata.name=web",
		"metadata.name~WEB|api,status.phase!=Failed",
		"metadata.labels.app.kubernetes.io/name=web",
		"spec.containers.image~nginx",
		"spec.replicas=3,spec.paused=true",
		"a===b",
		" a = b , c~ D | e ",
		"a=,b!=,c~",
		"=x",
		"a,,b",
		"a!b=c",
		"spec.containers.0.name=app",
	} {
		f.Add(s)
	}
	root := rootOf(testPod)
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param != ParamSelector {
				t.Fatalf("ParseSelector(%q) error %T %v is not a selector *ParamError", s, err, err)
			}
			if len(pe.Error()) > 400 {
				t.Fatalf("error message is %d bytes", len(pe.Error()))
			}
			if _, err2 := Parse(url.Values{ParamSelector: {s}}); !errors.As(err2, &pe) || pe.Param != ParamSelector {
				t.Fatalf("Parse disagrees with ParseSelector on %q: %v", s, err2)
			}
			return
		}
		if sel.Empty() {
			t.Fatalf("ParseSelector(%q) succeeded with no terms", s)
		}
		canon := sel.String()
		sel2, err := ParseSelector(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if !reflect.DeepEqual(sel, sel2) {
			t.Fatalf("round trip of %q through %q changed the selector:\n%#v\n%#v", s, canon, sel, sel2)
		}
		if again := sel2.String(); again != canon {
			t.Fatalf("String is not canonical: %q then %q", canon, again)
		}
		all := sel.match(root)
		for i := range sel.terms {
			tm := sel.terms[i]
			if tm.op == opFuzzy {
				continue
			}
			neg := tm
			neg.op = opEq + opNotEq - tm.op
			if tm.match(root) == neg.match(root) {
				t.Fatalf("term %d of %q: = and != agree on the test pod", i, canon)
			}
			if !tm.match(root) && all {
				t.Fatalf("%q matches although term %d does not", canon, i)
			}
		}
	})
}

// FuzzSplitPath checks the path splitter: no panic; on success the
// segments join back to the input, none is empty, and only a segment after
// labels/annotations (always the last) contains a dot; sortName gives the
// same verdict wrapped in a *ParamError; walking the path on a pod does
// not panic.
func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{
		"metadata.name",
		"metadata.labels.app.kubernetes.io/name",
		"metadata.annotations.a.b",
		"spec.template.spec.containers.image",
		"spec.containers.0.ports.containerPort",
		"labels",
		"a..b",
		".",
		"spec.Ünïcode",
	} {
		f.Add(s)
	}
	root := rootOf(testPod)
	f.Fuzz(func(t *testing.T, s string) {
		segs, err := splitPath(s)
		q, perr := Parse(url.Values{ParamSortName: {s}})
		if err != nil {
			var pe *ParamError
			if !errors.As(perr, &pe) || pe.Param != ParamSortName {
				t.Fatalf("sortName=%q: %v, want a sortName *ParamError (splitPath: %v)", s, perr, err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("splitPath(%q) succeeded but Parse failed: %v", s, perr)
		}
		if q.sortPath.text != s {
			t.Fatalf("sort path text %q, want %q", q.sortPath.text, s)
		}
		if joinPath(segs) != s {
			t.Fatalf("joinPath(splitPath(%q)) = %q", s, joinPath(segs))
		}
		if len(segs) > maxPathSegments {
			t.Fatalf("%d segments", len(segs))
		}
		for i, seg := range segs {
			if seg == "" {
				t.Fatalf("splitPath(%q) has an empty segment", s)
			}
			if strings.Contains(seg, ".") && (i != len(segs)-1 || i == 0 || !isMapKeyParent(segs[i-1])) {
				t.Fatalf("splitPath(%q): segment %d %q has a dot", s, i, seg)
			}
		}
		v, ok := first(root, *q.sortPath)
		if ok && !v.Exists() {
			t.Fatalf("path %q reached a nonexistent value", s)
		}
	})
}

// FuzzCollector feeds arbitrary bytes as a single chunk. Whatever the input,
// the collector must not panic, must fail only with its sentinel errors,
// and when it accepts the input its output must be a valid JSON object
// with a total, unchanged when the input buffer is overwritten after Add.
func FuzzCollector(f *testing.F) {
	f.Add([]byte(chunk("", 0, pod("a", "b", `"spec":{"n":1}`), pod("c", "d", ""))))
	f.Add([]byte(tableChunk2))
	f.Add([]byte(`{"kind":"PodList","metadata":{"continue":""},"items":null,"total":"x"}`))
	f.Add([]byte(`{"items":[{}],"metadata":{}}`))
	f.Add([]byte(`{"kind":"Status","message":"no"}`))
	f.Add([]byte(`[`))
	q := mustQuery(f, "selector=metadata.name!=x&sortName=spec.n&sortFunc=number&pageSize=3")
	f.Fuzz(func(t *testing.T, body []byte) {
		c := NewCollector(q, Limits{MaxBytes: 1 << 20, MaxItems: 1000})
		// Add reads the buffer in place: feed a copy and destroy it
		// afterwards, then compare with the untouched input's result.
		buf := append([]byte(nil), body...)
		next, err := c.Add(buf)
		for i := range buf {
			buf[i] = 0
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotList) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if next != "" {
			return
		}
		out, err := c.Result()
		if err != nil {
			t.Fatalf("Result: %v", err)
		}
		var l map[string]json.RawMessage
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatalf("output is not a JSON object: %v\n%s", err, out)
		}
		if _, ok := l["total"]; !ok {
			t.Fatalf("no total: %s", out)
		}
		c2 := NewCollector(q, Limits{})
		if _, err := c2.Add(body); err != nil {
			t.Fatal(err)
		}
		if out2, err := c2.Result(); err != nil || string(out2) != string(out) {
			t.Fatalf("result depends on the buffer after Add:\n%s\n%s", out, out2)
		}
	})
}

// FuzzScan checks the single-pass scanner (scan.go) against gjson on every
// input gjson.Valid accepts: the top-level value ends where the input (less
// trailing whitespace) ends, array elements are exactly gjson's, and each
// object member's value is found exactly where gjson finds it.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"kind":"PodList","metadata":{"continue":"x"},"items":[{"a":"b\"]"},{"c":[1,{"d":"\\"}]}]}`,
		` [ 1 , -2.5e3 , "x\\\"" , true , null , [ ] , { } ] `,
		`{"a\u0062":1,"ab":2,"":{"":""}}`,
		`"just a string"`,
		`12`,
		string(chunk("c", 3, pod("ns", "n", `"spec":{"s":"a\\\\"}`))),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !gjson.Valid(s) {
			return
		}
		i := skipWS(s, 0)
		end := valueEnd(s, i)
		if skipWS(s, end) != len(s) {
			t.Fatalf("valueEnd(%q) = %d, want the end of the input", s, end)
		}
		root := gjson.Parse(s)
		switch {
		case root.IsArray():
			var mine, theirs []string
			arrayElements(s, i, func(raw string) bool { mine = append(mine, raw); return true })
			root.ForEach(func(_, v gjson.Result) bool { theirs = append(theirs, v.Raw); return true })
			if !reflect.DeepEqual(mine, theirs) && !(len(mine) == 0 && len(theirs) == 0) {
				t.Fatalf("elements of %q:\n mine   %q\n gjson  %q", s, mine, theirs)
			}
		case root.IsObject():
			seen := map[string]bool{}
			root.ForEach(func(k, v gjson.Result) bool {
				if seen[k.Str] {
					return true
				}
				seen[k.Str] = true
				at := memberStart(s, k.Str)
				if at < 0 || s[at:valueEnd(s, at)] != v.Raw {
					t.Fatalf("member %q of %q: found at %d, gjson has %q", k.Str, s, at, v.Raw)
				}
				return true
			})
			if memberStart(s, "\x00absent") >= 0 && !seen["\x00absent"] {
				t.Fatalf("memberStart found an absent member in %q", s)
			}
		}
	})
}
