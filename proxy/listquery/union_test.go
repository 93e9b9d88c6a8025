package listquery

import (
	"encoding/json"
	"strings"
	"testing"
)

// countingBudget is a Budget that only counts.
type countingBudget struct{ held, peak int64 }

func (b *countingBudget) Take(n int64) error {
	b.held += n
	b.peak = max(b.peak, b.held)
	return nil
}
func (b *countingBudget) Give(n int64) { b.held -= n }

// union collects one source per chunks entry (keyed by cluster) and merges.
func union(t *testing.T, q *Query, b Budget, sources map[string][][]byte, order ...string) ([]byte, error) {
	t.Helper()
	var parts []*Collector
	for _, name := range order {
		c := NewCollector(q, Limits{}).WithTag(NewTag("berth.dev/cluster", name))
		if b != nil {
			c.WithBudget(b)
		}
		for _, ch := range sources[name] {
			if _, err := c.Add(ch); err != nil {
				return nil, err
			}
		}
		parts = append(parts, c)
	}
	return Merge(parts, `{"berth.dev/clusters":["a","b"]}`)
}

type taggedList struct {
	Metadata map[string]json.RawMessage `json:"metadata"`
	Items    []struct {
		Metadata struct {
			Namespace   string            `json:"namespace"`
			Name        string            `json:"name"`
			Annotations map[string]string `json:"annotations"`
			Labels      map[string]string `json:"labels"`
		} `json:"metadata"`
	} `json:"items"`
	Total int `json:"total"`
}

func (l taggedList) names() string {
	var s []string
	for _, it := range l.Items {
		s = append(s, it.Metadata.Annotations["berth.dev/cluster"]+":"+it.Metadata.Namespace+"/"+it.Metadata.Name)
	}
	return strings.Join(s, " ")
}

func TestUnion(t *testing.T) {
	// Cluster a's pods; one claims to be b's (a tenant's annotation must
	// not pass its pod off as another cluster's).
	a := [][]byte{
		chunk("c1", 0,
			`{"metadata":{"namespace":"web","name":"nginx","annotations":{"berth.dev/cluster":"b","keep":"x"}},"spec":{"n":2}}`,
			`{"metadata":{"namespace":"web","name":"api"},"spec":{"n":5}}`),
		chunk("", 0, `{"metadata":{"namespace":"db","name":"pg","annotations":null},"spec":{"n":1}}`),
	}
	b := [][]byte{
		chunk("", 0,
			`{"metadata":{"namespace":"web","name":"nginx"},"spec":{"n":3}}`,
			`{"spec":{"n":4}}`, // no metadata at all
			`{"metadata":{},"spec":{"n":9}}`),
	}
	src := map[string][][]byte{"a": a, "b": b}
	cases := []struct {
		query string
		want  string
		total int
	}{
		// By name (the default), then namespace, then cluster: a's nginx
		// before b's; items without a name last.
		{"pageSize=10", "a:web/api a:web/nginx b:web/nginx a:db/pg b:/ b:/", 6},
		{"selector=metadata.annotations.berth.dev/cluster=a", "a:web/api a:web/nginx a:db/pg", 3},
		{"selector=metadata.annotations.berth.dev/cluster!=a,metadata.namespace=web", "b:web/nginx", 1},
		{"selector=metadata.annotations.berth.dev/cluster~B", "b:web/nginx b:/ b:/", 3},
		{"selector=metadata.name=nginx&sortName=metadata.annotations.berth.dev/cluster&sortOrder=desc", "b:web/nginx a:web/nginx", 2},
		{"sortName=spec.n&sortFunc=number&sortOrder=desc&pageSize=2&pageNum=2", "b:/ b:web/nginx", 6},
		{"pageSize=4&pageNum=2", "b:/ b:/", 6},
		{"pageNum=9", "", 6},
	}
	for _, tc := range cases {
		for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
			bud := &countingBudget{}
			out, err := union(t, mustQuery(t, tc.query), bud, src, order...)
			if err != nil {
				t.Fatalf("%s: %v", tc.query, err)
			}
			var l taggedList
			if err := json.Unmarshal(out, &l); err != nil {
				t.Fatalf("%s: %v\n%s", tc.query, err, out)
			}
			if got := l.names(); got != tc.want || l.Total != tc.total {
				t.Errorf("%s (order %v): got %q total %d, want %q total %d", tc.query, order, got, l.Total, tc.want, tc.total)
			}
			if string(l.Metadata["berth.dev/clusters"]) != `["a","b"]` || l.Metadata["resourceVersion"] != nil {
				t.Errorf("%s: metadata %s", tc.query, out)
			}
			if bud.held != int64(len(out))+0 && bud.held < int64(len(out)) {
				t.Errorf("%s: budget holds %d for a body of %d", tc.query, bud.held, len(out))
			}
			for _, it := range l.Items {
				if it.Metadata.Name == "nginx" && it.Metadata.Annotations["berth.dev/cluster"] == "a" && it.Metadata.Annotations["keep"] != "x" {
					t.Errorf("other annotations lost: %s", out)
				}
			}
		}
	}
}

// The budget holds exactly the body after Merge: every part gave back
// what it kept.
func TestUnionBudgetReturnsToBody(t *testing.T) {
	bud := &countingBudget{}
	var items []string
	for i := range 300 {
		items = append(items, pod("ns", strings.Repeat("x", i%7)+string(rune('a'+i%26)), `"spec":{"n":1}`))
	}
	src := map[string][][]byte{"a": {chunk("", 0, items...)}, "b": {chunk("", 0, items...)}, "c": {chunk("", 0, items[:10]...)}}
	out, err := union(t, mustQuery(t, "pageSize=50&pageNum=3"), bud, src, "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if bud.held < int64(len(out)) || bud.held > int64(len(out))+64+20+256 {
		t.Fatalf("budget holds %d after Merge; the body is %d bytes", bud.held, len(out))
	}
}

func TestTagApply(t *testing.T) {
	tg := NewTag("berth.dev/cluster", "prod")
	cases := map[string]string{
		`{}`:                                 `{"metadata":{"annotations":{"berth.dev/cluster":"prod"}}}`,
		`{"kind":"Pod"}`:                     `{"metadata":{"annotations":{"berth.dev/cluster":"prod"}},"kind":"Pod"}`,
		`{"metadata":null}`:                  `{"metadata":{"annotations":{"berth.dev/cluster":"prod"}}}`,
		`{"metadata":{ }}`:                   `{"metadata":{"annotations":{"berth.dev/cluster":"prod"} }}`,
		`{"metadata":{"name":"x"}}`:          `{"metadata":{"annotations":{"berth.dev/cluster":"prod"},"name":"x"}}`,
		`{"metadata":{"annotations":{}}}`:    `{"metadata":{"annotations":{"berth.dev/cluster":"prod"}}}`,
		`{"metadata":{"annotations":"bad"}}`: `{"metadata":{"annotations":{"berth.dev/cluster":"prod"}}}`,
		`{"a":1,"metadata":{"annotations":{"berth.dev/cluster":"evil","k":"v"},"name":"x"},"z":[]}`: `{"a":1,"metadata":{"annotations":{"berth.dev/cluster":"prod","k":"v"},"name":"x"},"z":[]}`,
	}
	for in, want := range cases {
		got, err := tg.apply(in)
		if err != nil || got != want {
			t.Errorf("apply(%s) = %s, %v; want %s", in, got, err, want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("apply(%s) is not JSON", in)
		}
	}
	row, err := tg.applyRow(`{"cells":["x"],"object":{"kind":"PartialObjectMetadata","metadata":{"name":"x"}}}`)
	if err != nil || row != `{"cells":["x"],"object":{"kind":"PartialObjectMetadata","metadata":{"annotations":{"berth.dev/cluster":"prod"},"name":"x"}}}` {
		t.Errorf("applyRow = %s, %v", row, err)
	}
}

// TestTagDuplicateKeys: a cluster that answers raw JSON (an aggregated API
// server passes its own bytes through the kube-apiserver) must not get an
// item past the tag with a second metadata, annotations or object member:
// gjson reads the first, while encoding/json, client-go and JSON.parse keep
// the last. Such an item is refused, never passed with the forged member.
func TestTagDuplicateKeys(t *testing.T) {
	tg := NewTag("berth.dev/cluster", "a")
	forged := []string{
		`{"metadata":{"name":"p"},"metadata":{"name":"p","annotations":{"berth.dev/cluster":"b"}}}`,
		`{"metadata":{"name":"p"},"Metadata":{"name":"p","annotations":{"berth.dev/cluster":"b"}}}`,
		`{"metadata":{"name":"p","annotations":{"k":"v"},"annotations":{"berth.dev/cluster":"b"}}}`,
		`{"metadata":{"name":"p","annotations":{"k":"v"},"ANNOTATIONS":{"berth.dev/cluster":"b"}}}`,
		`{"metadata":{"name":"p"},"metadata":null}`,
		`{"metadata":{"annotations":null,"annotations":{"berth.dev/cluster":"b"}}}`,
	}
	for _, in := range forged {
		out, err := tg.apply(in)
		if err != nil {
			continue
		}
		var obj struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if jerr := json.Unmarshal([]byte(out), &obj); jerr != nil || obj.Metadata.Annotations["berth.dev/cluster"] != "a" {
			t.Errorf("apply(%s) = %s: a decoder reads cluster %q", in, out, obj.Metadata.Annotations["berth.dev/cluster"])
		}
	}
	rows := []string{
		`{"cells":["p"],"object":{"metadata":{"name":"p"}},"object":{"metadata":{"name":"p","annotations":{"berth.dev/cluster":"b"}}}}`,
		`{"cells":["p"],"object":{"metadata":{"name":"p"}},"Object":{"metadata":{"name":"p","annotations":{"berth.dev/cluster":"b"}}}}`,
	}
	for _, in := range rows {
		out, err := tg.applyRow(in)
		if err != nil {
			continue
		}
		var row struct {
			Object struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			} `json:"object"`
		}
		if jerr := json.Unmarshal([]byte(out), &row); jerr != nil || row.Object.Metadata.Annotations["berth.dev/cluster"] != "a" {
			t.Errorf("applyRow(%s) = %s: a decoder reads cluster %q", in, out, row.Object.Metadata.Annotations["berth.dev/cluster"])
		}
	}
	// What the kube-apiserver sends is still tagged.
	if _, err := tg.apply(`{"metadata":{"name":"p","annotations":{"metadata":"x","annotations":"y"}},"spec":{"metadata":{}}}`); err != nil {
		t.Errorf("a plain object was refused: %v", err)
	}
}

// TestUnionLeadHeader: the union's List is built on its first source's
// (kind, apiVersion), but a source must not forge the union's metadata
// (which clusters answered, which failed) or slip in items of its own
// beside the list: with an escaped or differently cased "metadata" or
// "items" member, or any other member of its List.
func TestUnionLeadHeader(t *testing.T) {
	lead := []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},` +
		`"metad\u0061ta":{"berth.dev/clusters":["evil"]},"Metadata":{"berth.dev/clusters":["evil"]},` +
		`"extra":{"x":1},"items":[{"metadata":{"name":"p"}}],` +
		`"Items":[{"metadata":{"name":"forged","annotations":{"berth.dev/cluster":"b"}}}]}`)
	out, err := union(t, mustQuery(t, "pageSize=10"), nil, map[string][][]byte{"a": {lead}, "b": {chunk("", 0, `{"metadata":{"name":"q"}}`)}}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	var l taggedList
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := l.names(); got != "a:/p b:/q" || string(l.Metadata["berth.dev/clusters"]) != `["a","b"]` {
		t.Errorf("a source forged the union: items %q, metadata %s\n%s", got, l.Metadata["berth.dev/clusters"], out)
	}
	var members map[string]json.RawMessage
	_ = json.Unmarshal(out, &members)
	if _, ok := members["extra"]; ok || string(members["kind"]) != `"PodList"` || string(members["apiVersion"]) != `"v1"` {
		t.Errorf("union's members: %s", out)
	}
}
